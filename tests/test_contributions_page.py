"""The contributions page in headless Chromium: a cell per layer and head holding the document's share, the
layer table's running total, and the check."""

from __future__ import annotations

from test_pages import browser, open_page, terminal_and_page  # noqa: F401 - the browser fixture


def test_contributions_page_heads_and_check(browser, tiny_models, cli, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    text, page, data = terminal_and_page(cli, tmp_path, "contributions", "contributions", "the cat sat on the mat",
                                         "-m", str(tiny_models["llama"]), "--by", "head")
    assert "the parts add up" in text
    open_page(browser, page)
    cells = browser.find_elements(By.CSS_SELECTOR, "#contributions-heads .cell.hot")
    assert len(cells) == sum(len(layer["heads"]) for layer in data["layers"]) == 2 * 4
    for c in cells:
        layer, head = int(c.get_attribute("data-layer")), int(c.get_attribute("data-head"))
        value = data["layers"][layer]["heads"][head]
        assert c.get_attribute("title").endswith(("+" if value >= 0 else "") + f"{value:.4f}")
    rows = browser.find_elements(By.CSS_SELECTOR, "#contributions-layers tbody tr")
    assert len(rows) == 1 + len(data["layers"])
    last_total = float(rows[-1].find_elements(By.TAG_NAME, "td")[3].text)
    assert abs(last_total - (data["sum"] - data["bias"])) < 1e-3
    assert "the parts add up" in browser.find_element(By.ID, "contributions-check").text
