"""Interactive HTML pages: one self-contained file per view, drawn in the browser from its --json data.

A page is the command's ``--json`` document in ``<script type="application/json" id="llmscope-data">``
plus inline CSS and a small script that draws it: no server, no network, nothing fetched (the Content
Security Policy forbids it), so the file opens from ``file://`` over SSH or as an e-mail attachment.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import weakref
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
    "AttentionWalk": "walk",
    "HeadsReport": "heads",
    "WhyResult": "why",
    "ContributionsResult": "contributions",
    "PatchResult": "patch",
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

# Nothing is fetched (default-src 'none'), and the only script that runs is the page's own: script-src
# names its SHA-256, so a <script> planted in the file (or written into it by a data bug) does not run.
CSP = (
    "default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; img-src data: blob:; "
    "base-uri 'none'; form-action 'none'"
)


def script_hash(source: str) -> str:
    """The CSP source that lets exactly this inline script run: 'sha256-' and the base64 SHA-256 of the
    UTF-8 text between its <script> and </script>."""
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def content_security_policy(scripts: list[str]) -> str:
    """The page's policy: only the inline SCRIPTS (their exact texts) may run."""
    return CSP.format(scripts=" ".join(dict.fromkeys(script_hash(s) for s in scripts)))


def _asset(name: str) -> str:
    return resources.files("llmscope.render").joinpath("assets", name).read_text(encoding="utf-8")


def data_block(document: Any) -> str:
    """The document as JSON that cannot end its <script> element early: '<', '>' and '&' escaped."""
    text = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )


# --------------------------------------------------------------------------------------------
# What the terminal view shows beyond the --json document
#
# The data block is exactly the --json document. A terminal view also draws fields the JSON leaves out
# by design (``repr=False`` fields, for the Rich views) and follows display options of its command
# (score --top); a page shows at least what its terminal view shows, so those travel beside the data,
# in a second block (``llmscope-view``) the views read as ``LS.extra``.

_OPTIONS: dict[int, tuple[weakref.ref, dict[str, Any]]] = {}


def remember_options(result: Any, **options: Any) -> None:
    """The display options ``result``'s terminal view was drawn with (``top=`` for score), for its
    page: the renderer records them, ``write_page`` reads them back for that same object."""
    key = id(result)
    try:
        ref = weakref.ref(result, lambda _, key=key: _OPTIONS.pop(key, None))
    except TypeError:  # pragma: no cover - every result type is a plain dataclass
        return
    _OPTIONS[key] = (ref, dict(options))


def _options(result: Any) -> dict[str, Any]:
    entry = _OPTIONS.get(id(result))
    return dict(entry[1]) if entry is not None and entry[0]() is result else {}


def _embedding_extra(result: Any) -> dict[str, Any]:
    """An EmbeddingReport's view-only fields: what the vectors are, the analogy's terms and the tokens
    it left out, the PCA axes' share of the variance, the context tokens and the other-token baseline."""
    extra: dict[str, Any] = {
        key: getattr(result, key, None)
        for key in ("layer", "dtype", "vocab_size", "hidden_size", "num_layers", "explained", "tied")
    }
    analogy = getattr(result, "analogy", None)
    if analogy is not None:
        extra["analogy"] = {
            "terms": [[sign, word] for sign, word in getattr(analogy, "terms", None) or []],
            "left_out": [{"token": t, "rank": rank, "cosine": c}
                         for t, rank, c in getattr(analogy, "left_out", None) or []],
        }
    context = getattr(result, "context", None)
    if context is not None:
        extra["context"] = {
            "tokens": [list(getattr(s, "tokens", None) or []) for s in context.sentences],
            "baseline": [getattr(row, "baseline", None) for row in context.layers],
        }
    return extra


def _why_extra(result: Any) -> dict[str, Any]:
    """A WhyResult's units under every grouping its token-level values allow (gradient methods), for the
    page's unit switch."""
    return {"by_unit": dict(getattr(result, "by_unit", None) or {})}


_EXTRA = {"EmbeddingReport": _embedding_extra, "WhyResult": _why_extra}


def view_extra(result: Any) -> dict[str, Any]:
    """What ``result``'s terminal view shows that its --json document does not: view-only fields and
    the display options it was drawn with."""
    build = _EXTRA.get(type(result).__name__)
    extra = build(result) if build is not None else {}
    options = _options(result)
    if options:
        extra["options"] = options
    return extra


def page_html(document: dict[str, Any], view: str, *, title: str, extra: dict[str, Any] | None = None) -> str:
    """The whole page for one view (or ``report``, which draws several) as a string; ``extra`` is what
    the terminal view shows beyond ``document`` (view_extra)."""
    views = (*_NEEDS.get(view, ()), view)
    assets = [_asset("page.js")] + [_asset(f"view_{v}.js") for v in dict.fromkeys(views)]
    script = "\n" + "\n".join(assets) + "\nLS.start();\n"  # the page's one script, hashed as written
    return "\n".join([
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{content_security_policy([script])}">',
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
        f'<script type="application/json" id="llmscope-view">{data_block(extra or {})}</script>',
        f"<script>{script}</script>",
        "</body>",
        "</html>",
        "",
    ])


def view_for(result: Any) -> str | None:
    """The page view that draws ``result``, or None where there is no interactive page for it."""
    return VIEWS.get(type(result).__name__)


def write_page(result: Any, document: dict[str, Any], path: Path, extra: dict[str, Any] | None = None) -> None:
    """Write ``result``'s page to ``path`` (``document`` is its --json document, ``extra`` its
    ``view_extra``, both already plain JSON values)."""
    view = view_for(result)
    if view is None:  # pragma: no cover - callers check view_for first
        raise TypeError(f"no interactive page for {type(result).__name__}")
    model = document.get("model") or ""
    title = f"llmscope {view.replace('_', '-')} · {model}" if model else f"llmscope {view}"
    path.write_text(page_html(document, view, title=title, extra=extra or {}), encoding="utf-8")
