"""Rich rendering of an ExpertRoutingResult (``llmscope experts``): routing grid, load, parameters."""

from __future__ import annotations

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.style import Style
from rich.table import Table
from rich.text import Text

from llmscope.forward.experts import ExpertRoutingResult
from llmscope.render import visible
from llmscope.units import fmt_count, fmt_int

PALETTE = ["cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta",
           "bright_green", "bright_yellow", "bright_blue", "bright_red"]
BARS = " ▁▂▃▄▅▆▇█"
TOKEN_WIDTH = 12


def expert_style(expert: int, weight: float = 1.0) -> Style:
    return Style(color=PALETTE[expert % len(PALETTE)], bold=weight >= 0.5, dim=weight < 0.2)


class RoutingGrid:
    """Tokens down, MoE layers across; each cell the chosen experts, highest weight first."""

    def __init__(self, r: ExpertRoutingResult) -> None:
        self.r = r

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        r = self.r
        digits = len(str(r.num_experts - 1))
        cell = r.num_experts_per_tok * (digits + 1) + 1
        fit = max(1, (options.max_width - TOKEN_WIDTH - 5) // cell)
        layers = r.layers[:fit]
        header = Text(" " * (TOKEN_WIDTH + 5), no_wrap=True)
        for layer in layers:
            header.append(f"L{layer.layer}".ljust(cell), style="bold")
        yield header
        for p, token in enumerate(r.tokens):
            piece = visible(token)
            if len(piece) > TOKEN_WIDTH:
                piece = piece[: TOKEN_WIDTH - 1] + "…"
            line = Text(f"{p:>3}  {piece.ljust(TOKEN_WIDTH)}", no_wrap=True)
            for layer in layers:
                t = layer.tokens[p]
                for e, w in zip(t.experts, t.weights):
                    line.append(f"{e:>{digits}}", style=expert_style(e, w))
                    line.append(" ")
                line.append(" " * (cell - r.num_experts_per_tok * (digits + 1)))
            yield line
        if len(layers) < len(r.layers):
            yield Text(
                f"Showing MoE layers {layers[0].layer}-{layers[-1].layer} of {len(r.layers)} (the console is too "
                "narrow for more); --json has all of them.",
                style="yellow",
            )


def _load(r: ExpertRoutingResult) -> Table:
    t = Table(
        box=box.SIMPLE_HEAD,
        title="Expert load (tokens per expert)",
        title_justify="left",
        title_style="bold",
    )
    t.add_column("layer", justify="right")
    t.add_column(f"experts 0-{r.num_experts - 1}", no_wrap=True)
    t.add_column("used", justify="right")
    t.add_column("busiest", justify="right")
    for layer in r.layers:
        peak = max(layer.load) or 1
        bars = Text(no_wrap=True)
        for e, count in enumerate(layer.load):
            level = 0 if count == 0 else max(1, round(8 * count / peak))
            bars.append(BARS[level] if count else "·", style=expert_style(e) if count else "dim")
        busiest = max(range(r.num_experts), key=lambda e: layer.load[e])
        used = sum(1 for c in layer.load if c)
        t.add_row(str(layer.layer), bars, f"{used}/{r.num_experts}", f"{busiest} ({layer.load[busiest]})")
    return t


def _parameters(r: ExpertRoutingResult) -> Table:
    p = r.parameters
    t = Table(box=box.SIMPLE_HEAD, title="Parameters", title_justify="left", title_style="bold")
    t.add_column("what")
    t.add_column("parameters", justify="right")
    t.add_column("share", justify="right")
    t.add_column("", style="dim")
    share = (lambda v: f"{100 * v / p.total:.1f}%") if p.total else (lambda v: "-")
    t.add_row("total", fmt_int(p.total), share(p.total), fmt_count(p.total))
    t.add_row("active per token", fmt_int(p.active), share(p.active),
              f"{r.num_experts_per_tok} of {r.num_experts} experts per layer")
    t.add_row("used by this prompt", fmt_int(p.prompt), share(p.prompt), "experts any token chose")
    t.add_row("one expert", fmt_int(p.per_expert), share(p.per_expert), "of one layer")
    return t


def render_experts(r: ExpertRoutingResult) -> RenderableType:
    title = Text()
    title.append("Expert routing", style="bold")
    title.append(
        f"  {r.num_experts} experts per layer, top-{r.num_experts_per_tok} per token, {len(r.layers)} MoE layers",
        style="cyan",
    )
    title.append(f"  {r.model}", style="dim")
    how = (
        "the router's own choices (brighter = larger weight); weights in --json"
        if r.method == "router"
        else "recomputed from the router logits: softmax, top-k (brighter = larger weight); weights in --json"
    )
    return Group(title, Text(f"  {how}", style="dim"), Text(""), RoutingGrid(r), Text(""), _load(r), _parameters(r))
