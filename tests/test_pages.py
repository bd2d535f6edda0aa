"""Interactive pages (``--export FILE.html``) opened in a real headless Chromium.

Each page must be one offline file whose data block is the command's ``--json`` document, draw
without console errors, and show the numbers the Python API returns. The browser comes from
Debian's ``chromium`` and ``chromium-driver`` packages, driven by selenium; without them these tests
skip with the command that installs them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

INSTALL = "apt-get install -y chromium chromium-driver && pip install selenium (or the test extra)"
PROMPT = "The cat sat on the mat because it was tired"


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def browser():
    found = _chromium()
    if found is None:
        pytest.skip(f"no Chromium here: {INSTALL}")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip(f"selenium is not installed: {INSTALL}")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page(driver, path: Path) -> None:
    """Load a page from file:// and fail on any console error or failed request."""
    driver.get(path.resolve().as_uri())
    driver.execute_script("return document.readyState")
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors


def data_block(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="llmscope-data">(.*?)</script>', text, re.S)
    assert match, "no llmscope-data block"
    return json.loads(match.group(1))


def assert_offline(path: Path) -> None:
    """No remote resource: no http(s) or protocol-relative URL in src, href or CSS url()."""
    text = path.read_text(encoding="utf-8")
    for pattern in (r'(?:src|href)\s*=\s*["\']?\s*(?:https?:)?//', r"url\(\s*[\"']?\s*(?:https?:)?//", r"@import"):
        assert not re.search(pattern, text, re.I), pattern
    assert "</script>" not in text.split('id="llmscope-data">', 1)[1].split("</script>", 1)[0]


def export(cli, tmp_path: Path, name: str, *args: str) -> tuple[Path, dict]:
    """Run a command with --json and --export NAME.html; return the page and the printed document."""
    page = tmp_path / f"{name}.html"
    result = cli(*args, "--json", "--export", page)
    assert result.exit_code == 0, result.stderr
    assert page.is_file()
    assert_offline(page)
    document = result.json()
    assert data_block(page) == document
    return page, document


# --------------------------------------------------------------------------------------------
# Without a browser: the file itself


def test_data_block_cannot_end_the_script_early(tiny_models, cli, tmp_path):
    page, document = export(cli, tmp_path, "tokens", "tokenize", "a </script><script>alert(1)</script> b",
                            "-m", tiny_models["llama"])
    assert "</script><script>alert" in document["text"]
    assert data_block(page)["text"] == document["text"]


def test_svg_and_txt_keep_the_terminal_picture(tiny_models, cli, tmp_path):
    for suffix in ("svg", "txt"):
        target = tmp_path / f"t.{suffix}"
        result = cli("tokenize", "Hello world", "-m", tiny_models["llama"], "--export", target)
        assert result.exit_code == 0, result.stderr
        assert "llmscope-data" not in target.read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# In the browser


def test_attention_page_layers_heads_and_titles(browser, tiny_models, loaded_models, cli, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    import llmscope

    page, document = export(cli, tmp_path, "attention", "attention", PROMPT, "-m", tiny_models["llama"])
    assert [entry["layer"] for entry in document["layers"]] == [0, 1]
    for entry in document["layers"]:
        for head in entry["heads"]:
            for row in head:
                assert sum(row) == pytest.approx(1.0, abs=2e-3)  # rounded to 4 decimals
    open_page(browser, page)
    Select(browser.find_element(By.CSS_SELECTOR, 'select[name="layer"]')).select_by_value("1")
    Select(browser.find_element(By.CSS_SELECTOR, 'select[name="head"]')).select_by_value("2")
    expected = llmscope.attention_weights(PROMPT, model=loaded_models["llama"], layer=1, head=2)
    tokens = expected.tokens
    q, k = 5, 2
    cell = browser.find_element(By.CSS_SELECTOR, f'#heatmap [data-q="{q}"][data-k="{k}"]')
    shown = lambda t: t.replace(" ", "\u00b7").replace("\n", "\u21b5")  # noqa: E731
    assert cell.get_attribute("title") == f"{shown(tokens[q])} \u2192 {shown(tokens[k])}: {expected.weights[q][k]:.3f}"
    Select(browser.find_element(By.CSS_SELECTOR, 'select[name="head"]')).select_by_value("mean")
    mean = llmscope.attention_weights(PROMPT, model=loaded_models["llama"], layer=1)
    cell = browser.find_element(By.CSS_SELECTOR, f'#heatmap [data-q="{q}"][data-k="{k}"]')
    assert cell.get_attribute("title").endswith(f": {mean.weights[q][k]:.3f}")
    # GQA is said, as the terminal says it (4 query heads, 2 key/value heads)
    assert "GQA" in browser.find_element(By.ID, "attention").text
    # clicking a query token ranks, in every layer, the keys it attends to most
    browser.find_element(By.CSS_SELECTOR, f'#heatmap [data-query="{q}"]').click()
    ranking = browser.find_element(By.ID, "ranking")
    rows = ranking.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 2
    ranked = llmscope.attention_weights(PROMPT, model=loaded_models["llama"], token=str(q), top=1)
    for row, layer in zip(rows, ranked.ranking):
        assert shown(layer.top[0].token) in row.find_elements(By.TAG_NAME, "td")[1].text


@pytest.mark.parametrize(
    "name, args, section",
    [
        ("tokenize", ("tokenize", PROMPT), "tokens"),
        ("next-token", ("next-token", PROMPT, "--steps", "3"), "steps"),
        ("generate", ("generate", "Once upon a time", "-n", "5"), "generation"),
        ("compare", ("compare", "Once upon a time", "-n", "4", "-S", "greedy,top-k"), "compare"),
        ("layers", ("layers", PROMPT, "--all-tokens"), "layers"),
        ("score", ("score", PROMPT), "score"),
        ("embeddings", ("embeddings", "cat", "dog", "mat", "--context", "the cat sat", "--context", "a cat ran",
                        "--word", "cat", "--plot"), "embeddings"),
    ],
)
def test_each_page_draws_its_tokens(browser, tiny_models, cli, tmp_path, name, args, section):
    from selenium.webdriver.common.by import By

    page, document = export(cli, tmp_path, name, *args, "-m", tiny_models["llama"])
    open_page(browser, page)
    drawn = browser.find_element(By.ID, section)
    assert drawn.is_displayed()
    if name == "tokenize":
        spans = drawn.find_elements(By.CSS_SELECTOR, "#token-text .tok")
        assert [int(s.get_attribute("data-id")) for s in spans] == document["ids"]
    elif name == "next-token":
        spans = drawn.find_elements(By.CSS_SELECTOR, "#step-text .tok")
        assert len(spans) == len(document["steps"])
        spans[0].click()
        assert document["steps"][0]["candidates"][0]["token"].replace(" ", "\u00b7") in \
            browser.find_element(By.ID, "step-detail").text
    elif name == "generate":
        spans = drawn.find_elements(By.CSS_SELECTOR, ".tok")
        assert len(spans) == document["num_tokens"]
        assert f"id {document['tokens'][0]['id']}" in spans[0].get_attribute("title")
    elif name == "compare":
        assert len(drawn.find_elements(By.TAG_NAME, "h3")) == len(document["results"])
    elif name == "score":
        spans = drawn.find_elements(By.CSS_SELECTOR, "#score-text .tok")
        assert [int(s.get_attribute("title").split(" id ")[1].split(":")[0]) for s in spans] == \
            [t["id"] for t in document["tokens"]]
        second = document["tokens"][1]
        assert f"rank {second['rank']}" in spans[1].get_attribute("title")
        assert f"{document['perplexity']:.3f}" in drawn.text
    elif name == "embeddings":
        cells = drawn.find_elements(By.CSS_SELECTOR, "#similarity .cell.hot")
        assert len(cells) == 9
        assert cells[1].get_attribute("title") == f"cat \u00b7 dog: {document['similarity'][0][1]:.3f}"
        assert browser.find_element(By.ID, "context").is_displayed()
        assert len(browser.find_elements(By.CSS_SELECTOR, "#scatter svg text")) == 3
    elif name == "layers":
        cells = drawn.find_elements(By.CSS_SELECTOR, "#lens-grid .cell.hot")
        assert len(cells) == len(document["layers"]) * len(document["tokens"])
        last = document["grid"][-1][-1]
        cell = drawn.find_element(
            By.CSS_SELECTOR, f'#lens-grid [data-layer="{len(document["layers"]) - 1}"][data-pos="{len(document["tokens"]) - 1}"]'
        )
        assert json.dumps(last["token"], ensure_ascii=False) in cell.get_attribute("title")


def test_report_page_has_every_section(browser, tiny_models, cli, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page, document = export(cli, tmp_path, "report", "report", PROMPT, "-m", tiny_models["llama"])
    open_page(browser, page)
    for section in ("inspect", "tokens", "next-token", "layers", "attention"):
        assert browser.find_element(By.ID, section).is_displayed(), section
    assert document["inspect"]["parameters"]["total"] > 0
    Select(browser.find_element(By.CSS_SELECTOR, 'select[name="head"]')).select_by_value("1")
    assert browser.find_elements(By.CSS_SELECTOR, '#heatmap [data-q="0"][data-k="0"]')


def test_pages_follow_the_dark_colour_scheme(browser, tiny_models, cli, tmp_path):
    from selenium.webdriver.common.by import By

    page, _ = export(cli, tmp_path, "tokens-dark", "tokenize", PROMPT, "-m", tiny_models["llama"])
    open_page(browser, page)
    light = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    browser.find_element(By.ID, "theme").click()
    dark = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert light != dark
    text = browser.execute_script("return getComputedStyle(document.body).color")
    assert text != dark


def test_attention_page_stays_small(tmp_path, cli, tiny_models):
    """A 64-token prompt on a 30-layer, 9-head model (SmolLM-135M's attention shape) stays near 5 MB."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=72, intermediate_size=96, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=len(tokenizer), max_position_embeddings=256)
    folder = tmp_path / "thirty-layers"
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    words = "the cat sat on the mat because it was tired and then it slept".split()
    prompt = " ".join(words[i % len(words)] for i in range(200))
    ids = tokenizer(prompt)["input_ids"]
    prompt = tokenizer.decode(ids[1:64], skip_special_tokens=True)  # 64 tokens with the BOS
    page = tmp_path / "big.html"
    result = cli("attention", prompt, "-m", folder, "--export", page)
    assert result.exit_code == 0, result.stderr
    document = data_block(page)
    assert len(document["tokens"]) == 64
    assert len(document["layers"]) == 30 and len(document["layers"][0]["heads"]) == 9
    assert page.stat().st_size < 5 * 2**20, page.stat().st_size


def test_score_comparison_page(browser, tiny_models, cli, tmp_path):
    from selenium.webdriver.common.by import By

    page, document = export(cli, tmp_path, "score-compare", "score", PROMPT, "-m", tiny_models["llama"],
                            "--compare-model", tiny_models["gpt2"])
    open_page(browser, page)
    drawn = browser.find_element(By.ID, "score")
    assert [m["model"] for m in document["models"]][1] in drawn.text
    for i, model in enumerate(document["models"]):
        spans = browser.find_elements(By.CSS_SELECTOR, f"#score-model-{i} .tok")
        assert len(spans) == model["num_tokens"]
