"""Interactive HTML pages: one self-contained file per view, drawn in the browser from its --json data.

A page is the command's ``--json`` document in ``<script type="application/json" id="llmscope-data">``
plus inline CSS and a small script that draws it: no server, no network, nothing fetched (the Content
Security Policy forbids it), so the file opens from ``file://`` over SSH or as an e-mail attachment.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

# result class name -> the view script that draws it (assets/view_<name>.js)
VIEWS = {
    "TokenizationResult": "tokens",
    "NextTokenResult": "next_token",
    "GenerationResult": "generation",
    "ComparisonResult": "compare",
    "AttentionResult": "attention",
    "LayerReport": "layers",
    "ScoreResult": "score",
    "ScoreComparison": "score",
    "EmbeddingReport": "embeddings",
    "PromptReport": "report",
}
# the view scripts a page needs besides its own (a report page draws the views of its sections)
_NEEDS = {
    "compare": ("generation",),
    "report": ("architecture", "tokens", "next_token", "layers", "attention"),
}

CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
    "base-uri 'none'; form-action 'none'"
)


def _asset(name: str) -> str:
    return resources.files("llmscope.render").joinpath("assets", name).read_text(encoding="utf-8")


def data_block(document: Any) -> str:
    """The document as JSON that cannot end its <script> element early: '<', '>' and '&' escaped."""
    text = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )


def page_html(document: dict[str, Any], view: str, *, title: str) -> str:
    """The whole page for one view (or ``report``, which draws several) as a string."""
    views = (*_NEEDS.get(view, ()), view)
    scripts = [_asset("page.js")] + [_asset(f"view_{v}.js") for v in dict.fromkeys(views)]
    return "\n".join([
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
        f"<title>{html.escape(title)}</title>",
        f"<style>\n{_asset('page.css')}\n</style>",
        "</head>",
        f'<body data-view="{html.escape(view)}">',
        '<header id="top"></header>',
        '<main id="app"></main>',
        '<div id="hover-info" aria-live="polite"></div>',
        f'<script type="application/json" id="llmscope-data">{data_block(document)}</script>',
        "<script>\n" + "\n".join(scripts) + "\nLS.start();\n</script>",
        "</body>",
        "</html>",
        "",
    ])


def view_for(result: Any) -> str | None:
    """The page view that draws ``result``, or None where there is no interactive page for it."""
    return VIEWS.get(type(result).__name__)


def write_page(result: Any, document: dict[str, Any], path: Path) -> None:
    """Write ``result``'s page to ``path`` (``document`` is its --json document)."""
    view = view_for(result)
    if view is None:  # pragma: no cover - callers check view_for first
        raise TypeError(f"no interactive page for {type(result).__name__}")
    model = document.get("model") or ""
    title = f"llmscope {view.replace('_', '-')} · {model}" if model else f"llmscope {view}"
    path.write_text(page_html(document, view, title=title), encoding="utf-8")
