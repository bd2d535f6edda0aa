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


def terminal_and_page(cli, tmp_path: Path, name: str, *args: str) -> tuple[str, Path, dict]:
    """Run a command as a terminal user does, with --export NAME.html: its terminal text (whitespace
    runs made one space, so that wrapped lines compare), the page, and the page's data (its --json)."""
    page = tmp_path / f"{name}.html"
    result = cli(*args, "--export", page)
    assert result.exit_code == 0, result.stderr
    assert_offline(page)
    return " ".join(result.stdout.split()), page, data_block(page)


def flat(text: str) -> str:
    return " ".join(text.split())


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
        assert f"{document['perplexity']:.4f}" in drawn.text
    elif name == "embeddings":
        cells = drawn.find_elements(By.CSS_SELECTOR, "#similarity .cell.hot")
        assert len(cells) == 9
        assert cells[1].get_attribute("title") == f"cat \u00b7 dog: {document['similarity'][0][1]:.3f}"
        assert browser.find_element(By.ID, "context").is_displayed()
        assert len(browser.find_elements(By.CSS_SELECTOR, "#scatter svg text.point-label")) == 3
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


# --------------------------------------------------------------------------------------------
# A page shows at least what its terminal view shows (issue 28): each against the terminal text and the
# data of the same run


@pytest.mark.parametrize("flags", [(), ("--no-add-special-tokens",)], ids=["added", "none-added"])
def test_tokenize_page_says_what_it_counts(browser, tiny_models, cli, tmp_path, flags):
    from selenium.webdriver.common.by import By

    terminal, page, document = terminal_and_page(cli, tmp_path, "tokens-count", "tokenize", PROMPT,
                                                 "-m", tiny_models["llama"], *flags)
    open_page(browser, page)
    heading = browser.find_element(By.CSS_SELECTOR, "#tokens h2").text
    assert heading in terminal  # the same words as the terminal's totals line
    added = len(document["added_special_tokens"])
    assert (added > 0) == (flags == ())
    from_text = document["num_tokens"] - added
    per_token = document["num_characters"] / from_text  # the division the line shows adds up
    assert document["characters_per_token"] == pytest.approx(per_token)
    if added:
        assert heading == (f"{document['num_tokens']} tokens ({from_text} from the text + {added} added) \u00b7 "
                           f"{document['num_characters']} characters / {from_text} = {per_token:.2f} per text token")
    else:
        assert heading == (f"{document['num_tokens']} tokens \u00b7 {document['num_characters']} characters \u00b7 "
                           f"{per_token:.2f} characters per token")
    # the added tokens are marked in the table and explained, as in the terminal
    rows = browser.find_elements(By.CSS_SELECTOR, "#tokens table.data tbody tr")
    assert len(rows) == document["num_tokens"]
    marked = [i for i, row in enumerate(rows) if row.find_elements(By.TAG_NAME, "td")[4].text == "added"]
    assert marked == [a["position"] for a in document["added_special_tokens"]]
    notes = flat(browser.find_element(By.ID, "token-added").text)
    for a in document["added_special_tokens"]:
        assert flat(a["reason"]) in notes and flat(a["reason"]) in terminal
    if not added:
        assert notes == "Special tokens not added (--no-add-special-tokens)." and notes in terminal


@pytest.mark.parametrize("top", [3, 0])
def test_score_page_follows_top(browser, tiny_models, cli, tmp_path, top):
    import math

    from selenium.webdriver.common.by import By

    terminal, page, document = terminal_and_page(cli, tmp_path, f"score-top-{top}", "score", PROMPT,
                                                 "-m", tiny_models["llama"], "--top", str(top))
    open_page(browser, page)
    drawn = browser.find_element(By.ID, "score")
    least_likely = sorted((t["logprob"], i) for i, t in enumerate(document["tokens"]) if t["logprob"] is not None)
    if top == 0:
        assert not browser.find_elements(By.ID, "surprising")
        assert "Most surprising" not in drawn.text and "Most surprising" not in terminal
    else:
        assert f"Most surprising tokens (top {top})" in drawn.text and f"Most surprising tokens (top {top})" in terminal
        rows = browser.find_elements(By.CSS_SELECTOR, "#surprising tbody tr")
        assert len(rows) == top
        for row, (logprob, i) in zip(rows, least_likely):
            cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
            token = document["tokens"][i]
            assert int(cells[0]) == i
            assert cells[3] == f"{-logprob / math.log(2):.2f}" and cells[3] in terminal  # bits, as the terminal
            assert cells[4] == f"{token['rank']:,}"
            assert cells[6] == browser.execute_script("return LS.pct(arguments[0])", token["top"]["prob"])
    # the totals the terminal gives: the window, the passes, the bytes
    totals = flat(browser.find_element(By.ID, "score-totals").text)
    for shown in (f"{document['window']:,} tokens, 1 forward pass", f"{document['mean_nll']:.4f} nats per token",
                  f"{document['perplexity']:.4f}",
                  f"{document['bits_per_byte']:.4f} ({document['bytes']:,} UTF-8 bytes)",
                  f"{document['num_tokens']} ({document['scored']} scored; the first has no score)"):
        assert shown in totals and shown in terminal


def test_score_comparison_page_follows_top(browser, tiny_models, cli, tmp_path):
    from selenium.webdriver.common.by import By

    terminal, page, document = terminal_and_page(cli, tmp_path, "score-compare-top", "score", PROMPT,
                                                 "-m", tiny_models["llama"], "--compare-model", tiny_models["gpt2"],
                                                 "--top", "2")
    open_page(browser, page)
    assert len(document["disagreements"]) > 2  # the data keeps more than it shows
    rows = browser.find_elements(By.CSS_SELECTOR, "#disagreements tbody tr")
    assert len(rows) == 2
    for row, spread in zip(rows, document["disagreements"]):
        assert row.find_elements(By.TAG_NAME, "td")[-1].text == f"{spread['spread']:.2f}"
    assert "Where they disagree most (bits per word, top 2)" in browser.find_element(By.ID, "score").text
    assert "Where they disagree most (bits per word, top 2)" in terminal
    note = "Perplexity depends on the tokenizer; compare models by bits per byte."
    assert note in browser.find_element(By.ID, "score").text and note in terminal


def test_layers_page_shows_the_head_and_the_cache(browser, tiny_models, cli, tmp_path):
    from selenium.webdriver.common.by import By

    terminal, page, document = terminal_and_page(cli, tmp_path, "layers-head", "layers", PROMPT,
                                                 "-m", tiny_models["llama"])
    open_page(browser, page)
    head = document["head_output"]
    assert head["shape"][-1] > 0 and len(head["shape"]) == 3
    shape = flat(browser.find_element(By.ID, "head-shape").text)
    assert shape.startswith(f"logits {'×'.join(f'{n:,}' for n in head['shape'])} (batch, tokens, vocab)")
    assert f"LM head: {shape}" in terminal  # the terminal's line, word for word
    if head["computed"] != head["shape"]:
        assert f"{'×'.join(f'{n:,}' for n in head['computed'])}" in shape
    prediction = flat(browser.find_element(By.ID, "head-prediction").text)
    p = head["prediction"]
    assert prediction.startswith(f"row {head['position']} (the last token) → argmax ")
    assert f"(id {p['id']}, " in prediction and prediction in terminal
    # the KV cache, its axes named
    kv = document["kv_cache"]
    section = browser.find_element(By.ID, "kv-cache")
    axes = "×".join(a.replace("kv_heads", "KV heads") for a in kv["axes"])
    assert f"key ({axes})" in section.text and f"key ({axes})" in terminal
    assert f"KV cache ({kv['cache_class']}, {kv['dtype']})" in section.text
    for layer in kv["layers"]:
        assert "×".join(map(str, layer["key_shape"])) in section.text
    total = section.find_elements(By.CSS_SELECTOR, "tbody tr")[-1].text
    assert total.startswith("total") and total.split()[-2] in terminal
    # the header line: the focus token and the lens the terminal names
    about = browser.find_element(By.ID, "layers-about").text
    assert f"(position {document['position']})" in about and document["lm_head"] in about


def test_layers_page_of_an_encoder_says_it_has_no_cache(browser, tiny_models, cli, tmp_path):
    from selenium.webdriver.common.by import By

    terminal, page, document = terminal_and_page(cli, tmp_path, "layers-bert", "layers", "the cat [MASK] on the mat",
                                                 "-m", tiny_models["bert"])
    open_page(browser, page)
    assert document["kv_cache"] is None
    assert "none (an encoder sees the whole text at once)" in browser.find_element(By.ID, "kv-cache").text
    assert "KV cache: none (an encoder sees the whole text at once)" in terminal
    if document.get("head_output"):
        prediction = flat(browser.find_element(By.ID, "head-prediction").text)
        assert prediction.startswith(f"row {document['head_output']['position']} (the mask)") and prediction in terminal


def test_embeddings_page_keeps_the_terminal_notes(browser, tiny_models, cli, tmp_path):
    from selenium.webdriver.common.by import By

    terminal, page, document = terminal_and_page(cli, tmp_path, "embeddings-notes", "embeddings", "cat", "dog", "mat",
                                                 "tired", "--analogy", "cat - dog + mat", "--plot",
                                                 "-m", tiny_models["llama"])
    open_page(browser, page)
    # what the vectors are
    about = browser.find_element(By.ID, "embeddings-about").text.splitlines()
    assert len(about) == 2 and about[0].startswith("input embeddings: ") and about[1].startswith("word vectors: ")
    for line in about:
        assert flat(line) in terminal
    # the analogy's caveat: how it is computed, and the terms' own tokens it left out
    caveat = browser.find_element(By.ID, "analogy-caveat").text.splitlines()
    assert caveat[0].startswith("3CosAdd: ")
    assert any(line.startswith("left out, the terms' own tokens: ") for line in caveat) == ("left out," in terminal)
    for line in caveat:
        assert flat(line) in terminal
    assert f"{document['analogy']['expression']} ≈" in browser.find_element(By.ID, "analogy").text
    assert "the word's own tokens left out" in browser.find_element(By.ID, "neighbors").text
    # the PCA picture: both axes named with their share of the variance, as in the terminal
    for axis, name in (("axis-x", "PC1"), ("axis-y", "PC2")):
        label = browser.find_element(By.ID, axis).text
        assert re.fullmatch(rf"{name} \(\d+% of the variance\)", label) and label in terminal
    # every point's label inside the picture, none clipped at an edge
    boxes = browser.execute_script("""
        const svg = document.querySelector('#scatter svg'), v = svg.viewBox.baseVal;
        return [...svg.querySelectorAll('text.point-label')].map((t) => {
          const b = t.getBBox();
          return [b.x, b.y, b.x + b.width, b.y + b.height, v.width, v.height, t.textContent]; });""")
    assert sorted(b[6] for b in boxes) == sorted(q["label"] for q in document["projection"])
    for x0, y0, x1, y1, width, height, label in boxes:
        assert 0 <= x0 and x1 <= width and 0 <= y0 and y1 <= height, label
    # cosine cells: readable text on every colour (WCAG AA, 4.5:1), and different values on different colours
    colours = browser.execute_script("""
        return [...document.querySelectorAll('#similarity .cell.hot')].map((c) => {
          const s = getComputedStyle(c); return [s.color, s.backgroundColor]; });""")

    def luminance(css: str) -> float:
        channels = [int(v) / 255 for v in re.findall(r"\d+", css)[:3]]
        r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    values = [c for row in document["similarity"] for c in row]
    for (fg, bg), value in zip(colours, values):
        high, low = sorted((luminance(fg), luminance(bg)), reverse=True)
        assert (high + 0.05) / (low + 0.05) >= 4.5, (value, fg, bg)
    by_value = {round(v, 2): bg for (_, bg), v in zip(colours, values)}
    assert len(set(by_value.values())) == len(by_value)


def test_embeddings_page_names_layers_as_the_terminal_does(browser, tiny_models, cli, tmp_path):
    from selenium.webdriver.common.by import By

    terminal, page, document = terminal_and_page(cli, tmp_path, "embeddings-layers", "embeddings", "cat", "dog",
                                                 "--layer", "1", "--context", "the cat sat", "--context", "a cat ran",
                                                 "--word", "cat", "-m", tiny_models["llama"])
    open_page(browser, page)
    assert browser.find_element(By.CSS_SELECTOR, "#embeddings h2").text == "The output of layer 1"
    vectors = browser.find_element(By.ID, "embeddings-about").text.splitlines()[-1]
    assert vectors == "word vectors: the output of layer 1, each word run alone, mean over its tokens"
    assert vectors in terminal
    assert "Nearest other words (cosine)" in browser.find_element(By.ID, "neighbors").text
    rows = browser.find_elements(By.CSS_SELECTOR, "#context-layers tbody tr")
    layers = document["context"]["layers"]
    assert len(rows) == len(layers)
    for row, layer in zip(rows, layers):
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        assert cells[0] == ("embed" if layer["layer"] is None else str(layer["layer"]))
        assert cells[1] == f"{layer['cosine']:.3f}"
        assert f"{cells[0]} {cells[1]}" in terminal  # the terminal's row starts the same
        assert re.fullmatch(r"-?\d\.\d{3}", cells[3])  # the other tokens' cosine, the terminal's "others"
        assert cells[3] in terminal
    assert cells[0] == str(len(layers) - 2)  # the last row is the last layer, numbered from 0


@pytest.fixture(scope="module")
def unusual_tokens(tiny_models, tmp_path_factory):
    """The tiny llama with whole tokens for characters that pages often cannot draw: Thai (a lone
    combining vowel, a letter), CJK punctuation, a private-use character; and one every font has."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    words = ["\u0e34\u0e01", "\u3011", "\ue000", "caf\u00e9"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    tokenizer.add_tokens(words)
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    folder = tmp_path_factory.mktemp("tiny-llama-unusual")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, words


def _drawable_here(ch: str) -> bool | None:
    """Whether an installed font has the character, as fontconfig (which Chromium asks on Linux) says;
    None without fc-list. Control, format, private-use and unassigned code points never are."""
    import subprocess
    import unicodedata

    if unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"):
        return False
    if 0x20 <= ord(ch) < 0x7F:
        return True
    if shutil.which("fc-list") is None:
        return None
    found = subprocess.run(["fc-list", f":charset={ord(ch):x}", "family"], capture_output=True, text=True, check=False)
    return bool(found.stdout.strip())


def _escaped(ch: str) -> str:
    c = ord(ch)
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}"


def test_lens_grid_escapes_what_no_font_draws(browser, unusual_tokens, cli, tmp_path):
    from selenium.webdriver.common.by import By

    model, words = unusual_tokens
    page, document = export(cli, tmp_path, "layers-glyphs", "layers", "a " + " ".join(words), "-m", model,
                            "--all-tokens")
    open_page(browser, page)
    checked = 0
    for position, token in enumerate(document["tokens"]):
        if token not in words:
            continue
        drawable = [_drawable_here(ch) for ch in token]
        if None in drawable:
            continue  # no fontconfig to say which fonts there are: only the code-point rules below apply
        expected = "".join(ch if ok else _escaped(ch) for ch, ok in zip(token, drawable))
        label = browser.find_element(By.CSS_SELECTOR, f'#lens-grid .collabel[data-pos="{position}"]')
        assert label.text == expected, (token, label.text)
        title = label.get_attribute("title")
        assert json.dumps(token, ensure_ascii=False) in title  # the raw token stays in the title
        if expected != token:
            assert f"({expected})" in title
        checked += 1
    assert checked == len(words) or shutil.which("fc-list") is None
    # whatever fonts are installed: a private-use character is always escaped, an ASCII one never
    assert browser.execute_script("return LS.vis(arguments[0])", "\ue000a\u0007 b") == "\\ue000a\\x07\u00b7b"
    short = browser.execute_script("return LS.short(arguments[0], 3)", "\ue000\ue001\ue002\ue003")
    assert short == "\\ue000\\ue001\u2026"  # an escape counts as one character and is never cut


# --------------------------------------------------------------------------------------------
# attention --walk and heads


def test_walk_page_shows_every_query_tokens_walk(browser, tiny_models, cli, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    prompt = "the cat sat on the mat"
    text, page, data = terminal_and_page(cli, tmp_path, "walk", "attention", prompt, "-m", str(tiny_models["llama"]),
                                         "--walk", "--head", "1")
    assert len(data["queries"]) == len(data["tokens"])  # the page holds every query token's walk
    open_page(browser, page)
    select = Select(browser.find_element(By.NAME, "query"))
    assert len(select.options) == len(data["tokens"])
    last = data["walk"]["query"]["position"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#walk table.data tbody tr")
    assert len(rows) == len(data["tokens"])
    shown = [r.find_elements(By.TAG_NAME, "td")[4].text for r in rows]
    from llmscope.units import fmt_prob

    assert shown == [fmt_prob(k["weight"]) for k in data["walk"]["keys"]]
    assert "check: recomputed weights" in browser.find_element(By.ID, "walk").text and "check: recomputed" in text
    select.select_by_value("1")  # an earlier query: every later key masked
    masked = [r.find_elements(By.TAG_NAME, "td")[3].text for r in
              browser.find_elements(By.CSS_SELECTOR, "#walk table.data tbody tr")]
    assert masked.count("masked") == len(data["tokens"]) - 2 and last != 1
    # every other (layer, head) is on the page too: pick one and see its own weights
    other = next(v for v in data["views"] if v["layer"] != data["walk"]["layer"] and v["head"] == 2)
    Select(browser.find_element(By.NAME, "layer")).select_by_value(str(other["layer"]))
    Select(browser.find_element(By.NAME, "head")).select_by_value("2")
    select.select_by_value(str(last))
    rows = browser.find_elements(By.CSS_SELECTOR, "#walk table.data tbody tr")
    want = next(r for r in other["rows"] if r["position"] == last)
    assert [r.find_elements(By.TAG_NAME, "td")[4].text for r in rows] == [fmt_prob(k["weight"]) for k in want["keys"]]
    heads = data["walk"]["num_heads"]
    assert len(data["views"]) == 2 * heads - 1  # the tiny llama's 2 layers x 4 heads, less the walked one


def test_heads_page_draws_a_cell_per_head_and_the_ranking(browser, tiny_models, cli, tmp_path):
    from selenium.webdriver.common.by import By

    text, page, data = terminal_and_page(cli, tmp_path, "heads", "heads", "the cat sat on the mat", "-m",
                                         str(tiny_models["llama"]), "--query", "mat", "--key", "cat")
    open_page(browser, page)
    cells = browser.find_elements(By.CSS_SELECTOR, "#heads .cell.hot, #heads .cell.masked")
    assert len(cells) == 5 * len(data["heads"])  # five patterns, one cell per head of every layer
    best = data["ranking"][0]
    ranking = browser.find_element(By.ID, "ranking").text
    assert f"{best['layer']} {best['head']}" in " ".join(ranking.split())
    assert "L" in text and "Heads ranked by the weight" in text
