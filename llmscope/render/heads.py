"""Rich rendering of a HeadsReport (``llmscope heads``): a layer x head heatmap per pattern, the top heads
of each, and with --query/--key the heads ranked by the weight one token gives another."""

from __future__ import annotations

from rich import box
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

from llmscope.forward.heads import PATTERNS, HeadsReport
from llmscope.render import visible
from llmscope.render.attention import weight_color
from llmscope.render.next_token import bar, pct

TITLES = {
    "previous_token": "previous token",
    "first_token": "first token (sink)",
    "self": "self",
    "duplicate_token": "duplicate token",
    "induction": "induction",
}
SHADES = " ░▒▓█"


def _cell(value: float | None) -> Text:
    if value is None:
        return Text("--", style="dim")
    v = min(max(value, 0.0), 1.0)
    char = SHADES[min(len(SHADES) - 1, int(v * len(SHADES)))]
    return Text(char * 2, style=Style(color=weight_color(v)))


def heatmap(r: HeadsReport, pattern: str) -> Group:
    """Layers down, heads across (grouped by the KV head they read), shaded by the score in [0, 1]."""
    t = Table(box=None, pad_edge=False, padding=(0, 0), show_header=True, header_style="dim")
    t.add_column("", justify="right", style="dim", no_wrap=True)
    t.add_column("", width=1)  # a gap after the layer numbers
    groups = r.num_heads // r.num_key_value_heads
    for h in range(r.num_heads):
        gap = " " if h and h % groups == 0 and groups > 1 else ""
        t.add_column(f"{gap}{h % 100:>2}", no_wrap=True, justify="right", width=len(gap) + 2)
    by = {(s.layer, s.head): getattr(s, pattern) for s in r.heads}
    if all(v is None for v in by.values()):
        return Group(Text(TITLES[pattern], style="bold"), Text("not defined:\nno token repeats", style="dim"))
    for layer in range(r.num_layers):
        t.add_row(str(layer), "", *[_cell(by[layer, h]) for h in range(r.num_heads)])
    return Group(Text(TITLES[pattern], style="bold"), t)


def top_table(r: HeadsReport, n: int) -> Table:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"Top {n} heads per pattern", title_justify="left",
              title_style="bold")
    t.add_column("pattern", style="bold cyan", no_wrap=True)
    for i in range(n):
        t.add_column(f"#{i + 1}", no_wrap=True)
    for pattern in PATTERNS:
        cells = [f"L{h.layer} H{h.head} {getattr(h, pattern):.2f}" for h in r.top(pattern, n)]
        t.add_row(TITLES[pattern], *(cells or ["not defined on this input"]), *[""] * (n - max(1, len(cells))))
    return t


def ranking_table(r: HeadsReport, n: int) -> Table:
    q, k = r.query, r.key
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left", title_style="bold",
              title=f"Heads ranked by the weight {visible(q['token'])} (position {q['position']}) gives "
                    f"{visible(k['token'])} (position {k['position']})")
    t.add_column("layer", justify="right")
    t.add_column("head", justify="right")
    t.add_column("weight", justify="right")
    t.add_column("", no_wrap=True, style="cyan")
    t.add_column("first token", justify="right", style="dim")
    for link in (r.ranking or [])[:n]:
        t.add_row(str(link.layer), str(link.head), pct(link.weight), bar(link.weight, 10), pct(link.first_token))
    return t


def _input_line(r: HeadsReport) -> Text:
    text = Text()
    if r.probe:
        n = (len(r.tokens) - 1) // 2 if len(r.tokens) % 2 else len(r.tokens) // 2
        bos = "BOS, then " if len(r.tokens) % 2 else ""
        text.append(f"input: the induction probe: {bos}{n} random ordinary tokens (seed {r.seed}), then the same "
                    f"{n} again ({len(r.tokens)} tokens): an induction head, seeing a token the second time, looks "
                    "at the token that followed it the first time", style="dim")
    else:
        shown = "".join(visible(t) for t in r.token_texts)
        text.append(f"input: {shown[:200]} ({len(r.tokens)} tokens)", style="dim")
    return text


def render_heads(r: HeadsReport, top: int = 5) -> RenderableType:
    head = Text()
    head.append(f"Attention heads: {r.num_layers} layers x {r.num_heads} heads", style="bold")
    if r.num_key_value_heads == 1:
        head.append(f" (MQA: all {r.num_heads} heads read one KV head)", style="dim")
    elif r.num_key_value_heads != r.num_heads:
        head.append(f" (GQA, {r.num_key_value_heads} KV heads: the columns are grouped by the KV head they read)",
                    style="dim")
    head.append(f"\n  {r.model}\n", style="dim")
    head.append_text(_input_line(r))
    maps = Columns([heatmap(r, p) for p in PATTERNS], padding=(0, 3))
    legend = Text("score 0 ", style="dim")
    for v in (0.1, 0.3, 0.5, 0.7, 0.95):
        legend.append_text(_cell(v))
    legend.append(" 1; --: not defined on this input. Each score is a mean over the queries where the pattern "
                  "is defined (docs/commands/heads.md has the definitions).", style="dim")
    parts: list[RenderableType] = [head, maps, legend, top_table(r, top)]
    if r.ranking is not None:
        parts.append(ranking_table(r, top))
        mean_first = sum(link.first_token for link in r.ranking) / len(r.ranking)
        parts.append(Text(
            f"first token: the share of that head's row on the first token; over all heads it takes "
            f"{pct(mean_first)} on average. That is an attention sink (a place to put weight that carries "
            "little), not meaning: the mean over heads is dominated by it, which hides the one head that links "
            "the two words.", style="dim"))
    return Group(*parts)
