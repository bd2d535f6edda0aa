"""Rich rendering of a WhyResult (``llmscope why``): the prompt coloured by each unit's share of f, the top
units, and the checks (f at the input and the baseline, the completeness gap, the inputs_embeds check)."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

from llmscope.explain.why import CONVERGED_SHARE, WhyResult, WhyUnit
from llmscope.render import visible

# ColorBrewer RdBu, as the pages use it: blue below 0 (away from the target), red above (towards it)
RDBU = ((33, 102, 172), (103, 169, 207), (209, 229, 240), (247, 247, 247), (253, 219, 199), (239, 138, 98),
        (178, 24, 43))
METHOD_NAMES = {"grad-x-input": "gradient x input", "integrated-gradients": "integrated gradients",
                "occlusion": "occlusion"}


def signed_rgb(value: float) -> tuple[int, int, int]:
    """VALUE in [-1, 1] on the diverging scale (clamped)."""
    v = max(-1.0, min(1.0, value))
    x = (v + 1) / 2 * (len(RDBU) - 1)
    i = min(int(x), len(RDBU) - 2)
    f = x - i
    a, b = RDBU[i], RDBU[i + 1]
    return (round(a[0] + f * (b[0] - a[0])), round(a[1] + f * (b[1] - a[1])), round(a[2] + f * (b[2] - a[2])))


def _ink(value: float) -> Style:
    return Style(color="rgb({},{},{})".format(*signed_rgb(value)))


def _style(value: float) -> Style:
    r, g, b = signed_rgb(value)
    ink = "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 110 else "white"
    return Style(bgcolor=f"rgb({r},{g},{b})", color=ink)


def _scale(units: list[WhyUnit]) -> float:
    values = [abs(u.attribution) for u in units if u.attribution is not None]
    return max(values) if values and max(values) > 0 else 1.0


def _label(u: WhyUnit) -> str:
    return visible(u.text.strip()) or visible(u.text) or "∅"


def coloured_text(units: list[WhyUnit]) -> Text:
    """The input, each unit on its colour; special tokens dim in brackets (held fixed)."""
    scale = _scale(units)
    out = Text()
    for u in units:
        if u.special:
            out.append(f"[{visible(u.text) or '∅'}]", style="dim")
        else:
            out.append(u.text.replace("\n", "↵\n"), style=_style((u.attribution or 0.0) / scale))
    return out


def f_description(r: WhyResult) -> str:
    if r.steps is not None:
        return f"each of the {len(r.steps)} generated tokens: f = log p(token | prompt and the tokens before it)"
    target = repr(r.target)
    if r.versus is not None:
        return f"f = log p({target}) - log p({r.versus!r}), in nats: why {target} rather than {r.versus!r}"
    tokens = f" ({len(r.target_ids)} tokens, teacher-forced)" if len(r.target_ids) > 1 else ""
    return f"f = log p({target} | prompt){tokens}, in nats"


def top_table(r: WhyResult, n: int) -> Table:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"Top {n} units by |attribution|", title_justify="left",
              title_style="bold")
    t.add_column("#", justify="right", style="dim")
    t.add_column(r.by)
    t.add_column("attribution", justify="right")
    t.add_column("", no_wrap=True)
    t.add_column("share", justify="right", style="dim")
    scored = [u for u in r.units if u.attribution is not None]
    total = sum(abs(u.attribution or 0.0) for u in scored) or 1.0
    scale = _scale(r.units)
    for k, u in enumerate(sorted(scored, key=lambda u: -abs(u.attribution or 0.0))[:n], 1):
        a = u.attribution or 0.0
        bar = "█" * max(1, round(10 * abs(a) / scale)) if a else ""
        label = _label(u)
        if u.first:
            label += " (first token)"
        t.add_row(str(k), label, f"{a:+.4f}", Text(bar, style=_ink(a / scale)),
                  f"{abs(a) / total:.0%}")
    return t


def checks(r: WhyResult) -> Text:
    """f, f(baseline), the gap and what it means, and the inputs_embeds check."""
    out = Text()
    out.append(f"f(x) = {r.f:+.4f} nats", style="bold")
    if r.f_baseline is not None:
        out.append(f"   f(baseline) = {r.f_baseline:+.4f}   f(x) - f(baseline) = {r.f - r.f_baseline:+.4f}")
    out.append(f"   sum of attributions = {r.total:+.4f}\n")
    if r.gap is not None and r.f_baseline is not None:
        diff = abs(r.f - r.f_baseline)
        share = abs(r.gap) / diff if diff else float("inf")
        out.append(f"completeness gap = sum - (f(x) - f(baseline)) = {r.gap:+.4f} ({share:.1%} of the difference)")
        if r.converged:
            out.append(f": converged (within {CONVERGED_SHARE:.0%})\n", style="green")
        else:
            out.append(f"\nNOT CONVERGED: the gap is over {CONVERGED_SHARE:.0%}, so the integral did not converge and "
                       "these numbers are not a decomposition of f(x) - f(baseline): try more --steps or another "
                       "--baseline\n", style="bold red")
    elif r.method == "occlusion":
        out.append("occlusion: each value is f(x) - f(x with that unit replaced by the baseline), recomputed; "
                   "the values need not add up to f(x) - f(baseline)\n", style="dim")
    else:
        out.append("grad x input is a first-order estimate: its values need not add up to anything\n", style="dim")
    out.append(f"check: |f through inputs_embeds - f through input_ids| = {r.check:.2e}", style="dim")
    return out


def matrix(r: WhyResult, strongest: int = 3) -> Table:
    """Rows: the generated tokens; each a strip with one cell per unit before it (in the text's order), and
    its strongest units with their values."""
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="Each generated token (row) explained by the units before it",
              title_justify="left", title_style="bold")
    t.add_column("token", no_wrap=True)
    t.add_column("f", justify="right", style="dim")
    t.add_column("units, in the text's order", no_wrap=True)
    t.add_column(f"strongest {strongest}")
    for step in r.steps or []:
        scale = _scale(step.units)
        strip = Text()
        for u in step.units:
            if u.special or u.attribution is None:
                strip.append("·", style="dim")
            else:
                strip.append("█", style=_ink(u.attribution / scale))
        scored = sorted((u for u in step.units if u.attribution is not None), key=lambda u: -abs(u.attribution or 0))
        best = ", ".join(f"{_label(u)} {u.attribution:+.2f}" for u in scored[:strongest])
        t.add_row(visible(step.token), f"{step.f:.2f}", strip, best)
    return t


def render_why(r: WhyResult, top: int = 10) -> RenderableType:
    head = Text()
    head.append(f"Why {r.target!r}?" if r.steps is None else f"Why {r.target!r}, token by token?", style="bold")
    what = METHOD_NAMES[r.method] + (f", {r.n_steps} steps" if r.n_steps else "")
    baseline = f", baseline {r.baseline}" if r.baseline is not None else ""
    head.append(f"  {what}, by {r.by}{baseline}, {r.dtype}\n  {r.model}\n", style="dim")
    head.append(f_description(r), style="dim")
    legend = Text("  towards the target ", style="dim")
    for v in (1.0, 0.5):
        legend.append("  ", style=_style(v))
    legend.append(" 0 ", style="dim")
    for v in (-0.5, -1.0):
        legend.append("  ", style=_style(v))
    legend.append(" away from it; [special]: held fixed, not attributed", style="dim")
    parts: list[RenderableType] = [head]
    if r.steps is not None:
        parts += [coloured_text(r.units), matrix(r), _step_checks(r)]
    else:
        parts += [coloured_text(r.units), legend, top_table(r, top), checks(r)]
        if any(u.first and not u.special for u in r.units):
            parts.append(Text("first token: the sequence's first token takes attention (an attention sink) without "
                              "meaning importance; read its share with that in mind", style="dim"))
    return Group(*parts)


def _step_checks(r: WhyResult) -> Text:
    out = Text()
    rows = r.steps or []
    out.append(f"f per row is log p(token); total log p(generation) = {r.f:+.4f} nats\n", style="dim")
    if r.gap is not None:
        bad = [s for s in rows if not s.converged]
        out.append(f"largest completeness gap = {r.gap:+.4f}; ")
        if bad:
            out.append(f"{len(bad)} of {len(rows)} rows NOT CONVERGED (gap over {CONVERGED_SHARE:.0%} of |f(x) - "
                       "f(baseline)|): their numbers are not a decomposition; try more --steps\n", style="bold red")
        else:
            out.append(f"every row converged (within {CONVERGED_SHARE:.0%})\n", style="green")
    out.append(f"check: |f through inputs_embeds - f through input_ids| <= {r.check:.2e}", style="dim")
    return out
