"""Rich rendering of a ContributionsResult (``llmscope contributions``): a table by layer with bars and the
running total, the top heads with --by head, and the check of the sum against the model's own logit."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from llmscope.explain.contributions import ContributionsResult
from llmscope.render import visible
from llmscope.render.why import _ink


def _bar(value: float, scale: float, width: int = 7) -> Text:
    n = round(width * abs(value) / scale) if scale else 0
    return Text(("█" * n).rjust(width) + "│" if value < 0 else " " * width + "│" + "█" * n,
                style=_ink(value / scale if scale else 0.0))


def layer_table(r: ContributionsResult) -> Table:
    scale = max([abs(r.embedding)] + [max(abs(x.attention), abs(x.mlp)) for x in r.layers]) or 1.0
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="What each part wrote, projected onto the answer",
              title_justify="left", title_style="bold")
    t.add_column("layer", justify="right", no_wrap=True)
    t.add_column("attention", justify="right", no_wrap=True)
    t.add_column("", no_wrap=True)
    t.add_column("MLP", justify="right", no_wrap=True)
    t.add_column("", no_wrap=True)
    t.add_column("total so far", justify="right", style="dim", no_wrap=True)
    t.add_row("embed", f"{r.embedding:+.3f}", _bar(r.embedding, scale), "", "", f"{r.embedding:+.3f}")
    for layer, total in zip(r.layers, r.running()):
        t.add_row(str(layer.layer), f"{layer.attention:+.3f}", _bar(layer.attention, scale), f"{layer.mlp:+.3f}",
                  _bar(layer.mlp, scale), f"{total:+.3f}")
    return t


def head_table(r: ContributionsResult, n: int) -> Table:
    heads = [(layer.layer, h, v) for layer in r.layers for h, v in enumerate(layer.heads or [])]
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"Top {n} heads by |share|", title_justify="left",
              title_style="bold")
    t.add_column("layer", justify="right")
    t.add_column("head", justify="right")
    t.add_column("share", justify="right")
    scale = max((abs(v) for _, _, v in heads), default=1.0) or 1.0
    t.add_column("", no_wrap=True)
    for layer, head, value in sorted(heads, key=lambda x: -abs(x[2]))[:n]:
        t.add_row(str(layer), str(head), f"{value:+.3f}", _bar(value, scale))
    return t


def render_contributions(r: ContributionsResult, top: int = 10) -> RenderableType:
    head = Text()
    what = f"logit({r.target!r})" + (f" - logit({r.versus!r})" if r.versus is not None else "")
    head.append(f"Who wrote {what}?", style="bold")
    head.append(f"  at the last position, by {r.by}, {r.dtype}\n  {r.model}\n", style="dim")
    head.append("input: " + "".join(visible(t) for t in r.tokens)[:200], style="dim")
    parts: list[RenderableType] = [head, layer_table(r)]
    if r.by == "head":
        parts.append(head_table(r, top))
    check = Text()
    check.append(f"embedding {r.embedding:+.4f} + layers {r.sum - r.embedding - r.bias:+.4f} + bias {r.bias:+.4f} "
                 f"= {r.sum:+.4f}\n")
    if r.logit_before_softcap is not None:
        check.append(f"the model's logit before its final soft-cap: {r.logit_before_softcap:+.4f}; after it: "
                     f"{r.logit:+.4f}\n")
    else:
        check.append(f"the model's own logit: {r.logit:+.4f}\n")
    check.append(f"check: |sum - logit| / max(1, |logit|) = {r.error:.1e}"
                 + (" (the parts add up)" if r.error < 1e-4 else " (OVER 1e-4: the parts do not add up)"),
                 style="dim" if r.error < 1e-4 else "bold red")
    parts.append(check)
    parts.append(Text("Each part goes through the final norm with its scale frozen at the value the real forward pass "
                      "computed. A share is the part's direct effect: later layers also read what it wrote, which this "
                      "does not count.", style="dim"))
    return Group(*parts)
