"""The terminal form of ``llmscope report``: each view's own rendering, one after another."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.rule import Rule

from llmscope.views import PromptReport


def render_report(report: PromptReport) -> RenderableType:
    from llmscope.render import renderable

    parts: list[RenderableType] = []
    for title, result in (
        ("Architecture", report.inspect),
        ("Tokens", report.tokens),
        ("Next token", report.next_token),
        ("Layers", report.layers),
        ("Attention (last layer, mean over heads)", report.attention),
    ):
        parts += [Rule(title, style="dim"), renderable(result), ""]
    return Group(*parts)
