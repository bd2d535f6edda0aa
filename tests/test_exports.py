"""``--export`` files make no request when they are opened (issue 34, item 10): Rich's SVG linked four
Fira Code font files from a CDN; llmscope's SVG is Rich's own template without those @font-face rules,
its text in the fonts the machine has. Rich's HTML and text exports, and the interactive pages, hold no
remote URL either.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def remote_references(text: str) -> list[str]:
    """Every absolute or protocol-relative URL in TEXT outside XML comments (a comment is never
    fetched) but the SVG namespace, and every CSS ``url(...)`` that is not a ``#fragment`` of the file."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    urls = [u for u in re.findall(r"(?:https?:)?//[^\s\"'<>()]+", text, flags=re.IGNORECASE) if u != SVG_NAMESPACE]
    urls = [u for u in urls if "://" in u or re.match(r"//[\w.-]+\.\w", u)]  # not a JS comment's "//"
    urls += re.findall(r"url\(\s*[\"']?\s*(?!#)[^)]*\)", text, flags=re.IGNORECASE)
    urls += re.findall(r"@import[^;]*", text, flags=re.IGNORECASE)
    return urls


def test_the_check_sees_rich_s_own_font_links():
    """Rich's default template links its fonts (the check would catch it), and llmscope's has no link."""
    from rich.console import Console

    from llmscope import render

    rich_default = inspect.signature(Console.save_svg).parameters["code_format"].default
    found = remote_references(rich_default)
    assert any("cdnjs.cloudflare.com" in u for u in found), found
    assert remote_references(render.svg_format()) == []


def test_rich_s_template_is_still_the_one_the_removal_fits():
    """Fails when a Rich upgrade changes what svg_format edits: its @font-face rules, its font-family."""
    from rich.console import Console

    from llmscope import render

    rich_default = inspect.signature(Console.save_svg).parameters["code_format"].default
    faces = render._FONT_FACE.findall(rich_default)
    assert len(faces) == rich_default.count("@font-face") >= 1, "Rich's @font-face rules changed shape"
    assert all("url(" in face for face in faces)
    assert render._RICH_FONT in rich_default, "Rich's font-family line changed: update render._RICH_FONT"
    ours = render.svg_format()
    assert "@font-face" not in ours and render.LOCAL_FONTS in ours
    # everything else is Rich's template unchanged: its placeholders all still there
    assert re.findall(r"(?<!\{)\{(\w+)\}(?!\})", ours) == re.findall(r"(?<!\{)\{(\w+)\}(?!\})", rich_default)


@pytest.mark.parametrize("suffix", ["svg", "html", "txt"])
def test_inspect_exports_link_nothing(cli, config_folder, tmp_path: Path, suffix: str):
    """inspect has no interactive page: each format is Rich's own export."""
    out = tmp_path / f"gpt2.{suffix}"
    result = cli("inspect", config_folder("gpt2"), "--export", out)
    assert result.exit_code == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert "GPT2LMHeadModel" in text or "gpt2" in text.lower()  # the picture itself was written
    assert remote_references(text) == []
    if suffix == "svg":
        assert text.startswith("<svg") and f'xmlns="{SVG_NAMESPACE}"' in text
        assert "@font-face" not in text and "cdnjs" not in text
        assert "'DejaVu Sans Mono'" in text  # the text still names a monospace font the machine may have


@pytest.mark.parametrize("suffix", ["svg", "html", "txt"])
def test_tokenize_exports_link_nothing(cli, tiny_models, tmp_path: Path, suffix: str):
    """tokenize's .html is an interactive page (scripts and CSS inline); its .svg and .txt are Rich's."""
    out = tmp_path / f"tokens.{suffix}"
    result = cli("tokenize", "The cat sat on the mat", "-m", tiny_models["llama"], "--export", out)
    assert result.exit_code == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert "mat" in text  # the picture (or page) itself was written
    assert remote_references(text) == []
