"""The interactive pages' Content-Security-Policy lets only the page's own script run (issue 34, item 11).

Every page escapes its data, but its policy used to allow any inline script: a ``<script>`` planted in
the file ran. ``script-src`` now names the SHA-256 of each script the page writes, recomputed here from
the file itself (an HTML parser, not page.py's code), and a planted script stays inert in Chromium
while the page's own still draws.
"""

from __future__ import annotations

import base64
import hashlib
import html.parser
from pathlib import Path

import pytest
from test_pages import PROMPT, browser, export, open_page  # noqa: F401 - browser is a fixture

PLANTED = "<script>document.title='pwned'</script>"
DATA_TYPES = ("application/json",)  # data blocks: never run, so a policy need not name them


class _Page(html.parser.HTMLParser):
    """The page's policy (its meta tag) and the text of every <script> it holds, as a browser reads them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.policy: str | None = None
        self.scripts: list[tuple[str | None, str]] = []  # (type, text)
        self._open: tuple[str | None, list[str]] | None = None

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        if tag == "meta" and (found.get("http-equiv") or "").lower() == "content-security-policy":
            assert self.policy is None, "two policies"
            self.policy = found["content"]
        if tag == "script":
            self._open = (found.get("type"), [])

    def handle_data(self, data):
        if self._open is not None:
            self._open[1].append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._open is not None:
            self.scripts.append((self._open[0], "".join(self._open[1])))
            self._open = None


def read_page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def script_src(policy: str) -> list[str]:
    directives = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in policy.split(";")) if d}
    return directives["script-src"]


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


PAGES = {
    "tokenize": ("tokenize", PROMPT),
    "next-token": ("next-token", PROMPT, "--steps", "2"),
    "generate": ("generate", "Once upon a time", "-n", "3"),
    "compare": ("compare", "Once upon a time", "-n", "3", "-S", "greedy,top-k"),
    "layers": ("layers", PROMPT),
    "score": ("score", PROMPT),
    "attention": ("attention", PROMPT),
    "report": ("report", PROMPT),
}


@pytest.mark.parametrize("name", PAGES)
def test_the_policy_names_exactly_the_scripts_in_the_file(cli, tiny_models, tmp_path: Path, name: str):
    page, _ = export(cli, tmp_path, name, *PAGES[name], "-m", tiny_models["llama"])
    read = read_page(page)
    assert read.policy is not None
    allowed = script_src(read.policy)
    code = [text for kind, text in read.scripts if kind not in DATA_TYPES]
    assert len(code) == 1 and "LS.start();" in code[0]
    assert allowed == [sha256_source(text) for text in code]
    assert "'unsafe-inline'" not in allowed and "'unsafe-eval'" not in allowed
    assert "default-src 'none'" in read.policy


def test_every_view_s_page_is_hashed(tiny_models):
    """Each view's page as page_html writes it (views the CLI tests above do not reach included)."""
    from llmscope.render import page

    for view in dict.fromkeys(page.VIEWS.values()):
        text = page.page_html({"model": "m"}, view, title="t")
        read = _Page()
        read.feed(text)
        code = [t for kind, t in read.scripts if kind not in DATA_TYPES]
        assert script_src(read.policy) == [sha256_source(t) for t in code], view


def _planted(page: Path, *, policy: str | None = None) -> Path:
    """A copy of PAGE with a control script planted at the end of its body (and, given, another policy)."""
    text = page.read_text(encoding="utf-8")
    assert text.count("</body>") == 1
    text = text.replace("</body>", PLANTED + "\n</body>")
    if policy is not None:
        before = read_page(page).policy
        text = text.replace(f'content="{before}"', f'content="{policy}"')
    planted = page.with_name("planted-" + page.name)
    planted.write_text(text, encoding="utf-8")
    return planted


def _drawn_tokens(driver) -> list[int]:
    from selenium.webdriver.common.by import By

    return [int(s.get_attribute("data-id")) for s in driver.find_elements(By.CSS_SELECTOR, "#token-text .tok")]


def test_a_planted_script_does_not_run_and_the_page_s_own_does(browser, cli, tiny_models, tmp_path: Path):  # noqa: F811
    page, document = export(cli, tmp_path, "tokens", "tokenize", PROMPT, "-m", tiny_models["llama"])
    open_page(browser, page)
    title = browser.title
    assert title != "pwned" and _drawn_tokens(browser) == document["ids"]

    browser.get(_planted(page).resolve().as_uri())
    assert browser.title == title  # the planted script was refused
    assert _drawn_tokens(browser) == document["ids"]  # the page's own script still drew the tokens
    refused = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert any("Content Security Policy" in message for message in refused), refused


def test_the_old_policy_would_have_run_it(browser, cli, tiny_models, tmp_path: Path):  # noqa: F811
    """The control: the same planted page under the policy pages had before ('unsafe-inline') runs it,
    so the test above fails if the hash is ever replaced by 'unsafe-inline' again."""
    page, _ = export(cli, tmp_path, "tokens", "tokenize", PROMPT, "-m", tiny_models["llama"])
    old = read_page(page).policy.replace(script_src(read_page(page).policy)[0], "'unsafe-inline'")
    browser.get(_planted(page, policy=old).resolve().as_uri())
    assert browser.title == "pwned"
    browser.get_log("browser")  # drain, for the next test
