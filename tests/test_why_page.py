"""The ``why`` page in headless Chromium: the coloured units carry the document's values, the unit select
regroups the token values into words and sentences as the API does, and --generate has its matrix."""

from __future__ import annotations

import pytest

from test_pages import browser, open_page, terminal_and_page  # noqa: F401 - the browser fixture

PROMPT = "the cat sat. the dog ran on the mat"


def _titles(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [s.get_attribute("title") for s in driver.find_elements(By.CSS_SELECTOR, "#why-text span.tok")]


def test_why_page_units_switch_and_checks(browser, tiny_models, loaded_models, cli, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from llmscope import why

    text, page, data = terminal_and_page(cli, tmp_path, "why", "why", PROMPT, "-m", str(tiny_models["gpt2"]),
                                         "--target", " cat", "--steps", "8")
    assert "completeness gap" in text
    open_page(browser, page)
    shown = _titles(browser)
    assert len(shown) == len(data["units"])
    for title, unit in zip(shown, data["units"]):
        assert f"{unit['attribution']:+.4f}".lstrip("+") in title
    checks = browser.find_element(By.ID, "why-checks").text
    assert "completeness gap" in checks and f"{data['gap']:.4f}" in checks
    api = why(PROMPT, model=loaded_models["gpt2"], target=" cat", steps=8, by="sentence")
    Select(browser.find_element(By.ID, "why-by")).select_by_value("sentence")
    shown = _titles(browser)
    assert len(shown) == len(api.units) == 2
    for title, unit in zip(shown, api.units):
        assert f"{unit.attribution:.4f}" in title
    Select(browser.find_element(By.ID, "why-by")).select_by_value("token")
    assert len(_titles(browser)) == len(loaded_models["gpt2"].tokenizer(PROMPT)["input_ids"])


def test_why_page_generation_matrix(browser, tiny_models, cli, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _, page, data = terminal_and_page(cli, tmp_path, "whygen", "why", "the cat sat", "-m", str(tiny_models["llama"]),
                                      "--generate", "3", "--method", "grad-x-input")
    open_page(browser, page)
    rows = browser.find_elements(By.CSS_SELECTOR, "#why-matrix tbody tr")
    assert len(rows) == len(data["steps"]) == 3
    select = Select(browser.find_element(By.ID, "why-row"))
    select.select_by_value("2")
    last = data["steps"][2]["units"]
    shown = _titles(browser)
    assert len(shown) == len(last)
    assert shown[0].endswith("held fixed (not attributed)")  # the BOS
    assert f"{last[-1]['attribution']:.4f}".lstrip("-") in shown[-1]


@pytest.mark.parametrize("method", ["occlusion"])
def test_occlusion_page_has_no_regrouping(browser, tiny_models, cli, tmp_path, method):  # noqa: F811
    from selenium.webdriver.common.by import By

    _, page, data = terminal_and_page(cli, tmp_path, "whyocc", "why", PROMPT, "-m", str(tiny_models["gpt2"]),
                                      "--method", method)
    open_page(browser, page)
    options = browser.find_elements(By.CSS_SELECTOR, "#why-by option")
    assert [o.get_attribute("value") for o in options] == ["word"]
    assert "need another run" in browser.find_element(By.ID, "why").text
