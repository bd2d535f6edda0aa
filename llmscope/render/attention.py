"""Rich rendering of an AttentionResult (``llmscope attention``): a token x token heatmap."""

from __future__ import annotations

import math

from rich import box
from rich.color import Color
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.style import Style
from rich.table import Table
from rich.text import Text

from llmscope.forward.attention import AttentionResult
from llmscope.render import visible

LABEL_WIDTH = 14
CELL = 2  # characters per key column

# dark blue -> purple -> orange -> yellow, the way "magma"-like scales read on dark and light terminals
_STOPS = [(0.0, (20, 20, 60)), (0.35, (110, 40, 140)), (0.7, (230, 100, 60)), (1.0, (255, 230, 90))]


def weight_color(value: float) -> Color:
    """Colour of a weight in [0, 1] (already scaled)."""
    value = min(max(value, 0.0), 1.0)
    for (x0, c0), (x1, c1) in zip(_STOPS, _STOPS[1:]):
        if value <= x1:
            t = (value - x0) / (x1 - x0) if x1 > x0 else 0.0
            return Color.from_rgb(*(round(a + (b - a) * t) for a, b in zip(c0, c1)))
    return Color.from_rgb(*_STOPS[-1][1])


SHADES = "·░▒▓█"


def shade(weight: float, peak: float) -> str:
    """A block character for a weight (sqrt scale), readable without colour too."""
    scaled = math.sqrt(max(weight, 0.0) / peak) if peak else 0.0
    return SHADES[min(len(SHADES) - 1, int(scaled * len(SHADES)))]


def _label(position: int, token: str, width: int = LABEL_WIDTH) -> Text:
    piece = visible(token)
    room = width - 4
    if len(piece) > room:
        piece = piece[: room - 1] + "…"
    return Text(f"{position:>3} {piece}".ljust(width), no_wrap=True)


def _head_text(r: AttentionResult) -> str:
    return f"head {r.head}" if r.head is not None else f"mean of {r.kind.num_attention_heads} heads"


def kind_notes(r: AttentionResult) -> list[str]:
    """One line each: attention kind (GQA/MQA), sliding windows, the causal mask."""
    k = r.kind
    notes = []
    if k.num_key_value_heads == 1 and k.num_attention_heads > 1:
        notes.append(f"MQA: all {k.num_attention_heads} query heads share one key/value head")
    elif k.gqa_group_size > 1:
        extra = ""
        if r.head is not None:
            group = r.head // k.gqa_group_size
            first = group * k.gqa_group_size
            extra = f"; head {r.head} uses key/value head {group} with heads {first}-{first + k.gqa_group_size - 1}"
        notes.append(
            f"GQA: {k.num_attention_heads} query heads in {k.num_key_value_heads} groups of {k.gqa_group_size}{extra}"
        )
    if r.layer_type == "sliding_attention" and k.sliding_window:
        n = len(r.tokens)
        reach = "longer than" if n > k.sliding_window else "within"
        notes.append(f"layer {r.layer} slides: each token sees at most the last {k.sliding_window:,} tokens")
        notes.append(f"(this prompt, {n} tokens, is {reach} the window)")
    elif r.layer_type and k.sliding_window:
        kind = r.layer_type.replace("_", " ")
        notes.append(f"layer {r.layer} is a {kind} layer (others slide over {k.sliding_window:,})")
    if k.causal:
        notes.append("causal: a token sees only itself and earlier tokens (the empty upper triangle)")
    else:
        notes.append("bidirectional: every token sees every token")
    return notes


def column_numbers(columns: int) -> list[Text]:
    """The key columns' numbers above the heatmap, each ending at its cell's right edge. Up to 10
    columns: one line. More: two lines, the even columns' numbers on the first and the odd ones' on
    the second, so "10" and "11" never run together (a number up to 3 digits keeps a space either side)."""
    rows = [range(columns)] if columns <= 10 else [range(0, columns, 2), range(1, columns, 2)]
    lines = []
    for row in rows:
        line = [" "] * (LABEL_WIDTH + columns * CELL)
        for j in row:
            label = str(j)
            end = LABEL_WIDTH + (j + 1) * CELL
            line[end - len(label):end] = label
        lines.append(Text("".join(line).rstrip(), style="dim", no_wrap=True))
    return lines


class Heatmap:
    """Query rows x key columns, each cell coloured by weight; sized to the console width."""

    def __init__(self, r: AttentionResult) -> None:
        self.r = r

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        r = self.r
        n = len(r.tokens)
        fit = max(4, (options.max_width - LABEL_WIDTH - 1) // CELL)
        shown = min(n, fit)
        weights = [row[:shown] for row in r.weights[:shown]]
        peak = max((w for row in weights for w in row), default=0.0) or 1.0
        yield from column_numbers(shown)
        for i in range(shown):
            line = _label(i, r.tokens[i])
            if r.query is not None and i == r.query.position:
                line.stylize("bold reverse", 0, LABEL_WIDTH - 1)  # the --token row
            for j in range(shown):
                w = weights[i][j]
                if w == 0.0:  # masked out (causal or outside the window): nothing drawn
                    line.append(" " * CELL)
                else:
                    line.append(shade(w, peak) * CELL, style=Style(color=weight_color(math.sqrt(w / peak))))
            yield line
        legend = Text(" " * LABEL_WIDTH + "0 ", style="dim", no_wrap=True)
        for step in range(12):
            w = ((step + 0.5) / 12) ** 2
            legend.append(shade(w, 1.0), style=Style(color=weight_color(math.sqrt(w))))
        legend.append(f" {peak:.3f}   colour ~ sqrt(weight / max); blank = masked", style="dim")
        yield legend
        if shown < n:
            yield Text(
                f"Showing tokens 0-{shown - 1} of {n} (the console fits {fit} columns); --json has all of them.",
                style="yellow",
            )


def _ranking(r: AttentionResult) -> Table:
    assert r.query is not None and r.ranking is not None
    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"Where {visible(r.query.token)!s} (token {r.query.position}) looks, {_head_text(r)}",
        title_justify="left",
        title_style="bold",
    )
    table.add_column("layer", justify="right")
    if any(x.layer_type for x in r.ranking):
        table.add_column("kind", style="dim")
    table.add_column("most attended tokens (weight)")
    for row in r.ranking:
        cells: list[RenderableType] = [str(row.layer)]
        if any(x.layer_type for x in r.ranking):
            cells.append((row.layer_type or "").replace("_attention", ""))
        text = Text()
        for i, t in enumerate(row.top):
            if i:
                text.append("  ")
            text.append(f"{visible(t.token)}", style=Style(bold=i == 0, color=weight_color(math.sqrt(t.weight))))
            text.append(f" {t.weight:.2f}", style="dim")
        cells.append(text)
        table.add_row(*cells)
    return table


def render_attention(r: AttentionResult) -> RenderableType:
    title = Text()
    title.append(f"Attention, layer {r.layer}", style="bold")
    title.append(f" of 0-{r.num_layers - 1}, {_head_text(r)}", style="cyan")
    title.append(f"\n  {r.source}", style="dim")
    parts: list[RenderableType] = [title]
    parts.extend(Text(f"  {note}", style="dim") for note in kind_notes(r))
    parts.append(Text(""))
    if r.ranking is not None:
        parts.append(_ranking(r))
        parts.append(Text(f"Heatmap of layer {r.layer}:", style="bold"))
    parts.append(Heatmap(r))
    return Group(*parts)

