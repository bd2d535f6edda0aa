"""Rich rendering of an EmbeddingReport (``llmscope embeddings``): tokens, a cosine heatmap,
neighbours, the analogy, the per-layer context bars, and a PCA scatter drawn on a character grid."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from llmscope.forward.embeddings import Analogy, ContextReport, EmbeddingReport, Point, WordNeighbors
from llmscope.render import visible

_EIGHTHS = " ▏▎▍▌▋▊▉█"
PLOT_WIDTH = 56  # character cells of the scatter's drawing area
PLOT_HEIGHT = 15
POINT_STYLES = ("bold red", "bold green", "bold blue", "bold magenta", "bold cyan", "bold yellow")


def _short(text: str, width: int) -> str:
    text = visible(text) or "∅"
    return text if len(text) <= width else text[: width - 1] + "…"


def cosine_style(c: float) -> str:
    """A heatmap cell: warm for positive cosines, blue for negative, darker towards 0."""
    t = max(-1.0, min(1.0, c))
    lo = (40, 40, 40)
    hi = (215, 80, 40) if t >= 0 else (40, 100, 215)
    r, g, b = (int(a + (z - a) * abs(t)) for a, z in zip(lo, hi))
    return f"{'bold ' if abs(t) >= 0.5 else ''}white on rgb({r},{g},{b})"


def bar(value: float, width: int) -> Text:
    """|value| (0..1) as a bar of ``width`` cells in eighths; negative values in red."""
    cells = max(0.0, min(1.0, abs(value))) * width
    full, rest = int(cells), int((cells - int(cells)) * 8)
    text = "█" * full + (_EIGHTHS[rest] if full < width and rest else "")
    return Text(text.ljust(width), style="cyan" if value >= 0 else "red")


def _title(text: str) -> dict:
    return dict(title=text, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)


# --------------------------------------------------------------------------------------------
# One view each


def words_table(r: EmbeddingReport) -> Table:
    t = Table(**_title("Words and their tokens"))
    t.add_column("word", no_wrap=True, style="bold")
    t.add_column("tokens", overflow="fold")
    t.add_column("ids", style="dim", overflow="fold")
    for w in r.words:
        tokens = Text()
        for i, token in enumerate(w.tokens):
            tokens.append(" " if i else "")
            tokens.append(visible(token) or "∅", style=("black on grey85", "black on light_sky_blue1")[i % 2])
        t.add_row(w.text, tokens, " ".join(map(str, w.token_ids)))
    return t


def similarity_table(r: EmbeddingReport) -> Table:
    """Words x words; with many words the columns are numbered so that ten or so fit in 80 columns."""
    numbered = len(r.words) > 6
    t = Table(**_title("Cosine similarity"), padding=(0, 0) if numbered else (0, 1))  # box adds a space
    t.add_column("", no_wrap=True, style="bold", max_width=12, overflow="ellipsis")
    width = max(5, min(10, max(len(w.text) for w in r.words)))
    for i, w in enumerate(r.words, 1):
        t.add_column(str(i) if numbered else _short(w.text, width), justify="right", no_wrap=True, min_width=5)
    for i, (w, row) in enumerate(zip(r.words, r.similarity), 1):
        label = f"{i} {w.text}" if numbered else w.text
        t.add_row(label, *[Text(f"{c:5.2f}", style=cosine_style(c)) for c in row])
    return t


def neighbors_table(neighbors: list[WordNeighbors], *, among_words: bool) -> Table:
    title = "Nearest other words (cosine)" if among_words else "Nearest vocabulary tokens (cosine)"
    t = Table(**_title(title), caption=None if among_words else "the word's own tokens left out",
              caption_justify="left", caption_style="dim")
    t.add_column("word", no_wrap=True, style="bold", max_width=12, overflow="ellipsis")
    for rank in range(max((len(n.top) for n in neighbors), default=0)):
        t.add_column(str(rank + 1), no_wrap=True, max_width=12, overflow="ellipsis")
    for n in neighbors:
        cells = [Text.assemble((_short(x.token, 12), "bold"), "\n", (f"{x.cosine:.3f}", "dim")) for x in n.top]
        t.add_row(n.word, *cells)
    return t


def analogy_table(a: Analogy) -> Table:
    signs = ["" if i == 0 and s > 0 else "+ " if s > 0 else "- " for i, (s, _) in enumerate(a.terms)]
    expression = " ".join(sign + w for sign, (_, w) in zip(signs, a.terms))
    t = Table(**_title(f"{expression} ≈"))
    t.add_column("#", justify="right", style="dim")
    t.add_column("token", no_wrap=True, max_width=18, overflow="ellipsis", style="bold")
    t.add_column("id", justify="right", style="dim")
    t.add_column("cosine", justify="right")
    t.add_column("", no_wrap=True)
    for rank, n in enumerate(a.top, 1):
        t.add_row(str(rank), visible(n.token) or "∅", str(n.id), f"{n.cosine:.3f}", bar(n.cosine, 20))
    return t


def analogy_note(a: Analogy, layer: int | None) -> Text:
    text = Text("3CosAdd: each term's vector made unit length, added or subtracted"
                + ("" if layer is None else "; input embeddings, not --layer"), style="dim")
    if a.left_out:
        text.append("\nleft out, the terms' own tokens: ", style="dim")
        text.append(", ".join(f"{visible(t) or '∅'} (#{rank}, {c:.3f})" for t, rank, c in a.left_out), style="dim")
    return text


def _layer_name(layer: int | str | None) -> str:
    """The row name every view uses: "embed" for the embedding output, else the layer's number from 0."""
    return "embed" if layer is None or layer == "embed" else str(layer)


def context_view(c: ContextReport, num_layers: int) -> Group:
    head = Text()
    for i, s in enumerate(c.sentences, 1):
        head.append(f"{i}  ", style="bold")
        head.append(s.text)
        head.append(f"   {c.word!r} = " + " ".join(visible(t) or "∅" for t in s.tokens), style="dim")
        head.append(f" (position {', '.join(map(str, s.positions))})\n", style="dim")
    head.append(f"embed: the embedding output; N: the output of layer N (0 to {num_layers - 1}, before the final "
                "norm, as in layers and attention); each sentence read with its special tokens", style="dim")
    t = Table(**_title(f"{c.word!r} across the sentences: cosine at every depth"))
    t.add_column("layer", justify="right", no_wrap=True)
    pairs = [(a, b) for a in range(len(c.sentences)) for b in range(a + 1, len(c.sentences))]
    if len(pairs) == 1:
        t.add_column("cosine", justify="right")
        t.add_column("", no_wrap=True)
        t.add_column("others", justify="right", style="dim")
        for row in c.layers:
            other = "-" if row.baseline is None else f"{row.baseline:.3f}"
            t.add_row(_layer_name(row.layer), f"{row.cosine:.3f}", bar(row.cosine, 36), other)
        head.append("\nothers: the mean cosine between the other tokens of the two sentences, what any two "
                    "tokens share at that depth", style="dim")
    else:  # every pair: small bars for up to four pairs, heatmap-coloured numbers past that
        width = max(4, min(10, 60 // len(pairs) - 6))
        if len(pairs) > 4:
            t.padding = (0, 0, 0, 1)
        for a, b in pairs:
            t.add_column(f"{a + 1}~{b + 1}", no_wrap=True, justify="right" if len(pairs) > 4 else "left")
        for row in c.layers:
            values = [row.similarity[a][b] for a, b in pairs]
            cells = ([Text.assemble(f"{v:.2f} ", bar(v, width)) for v in values] if len(pairs) <= 4
                     else [Text(f"{v:5.2f}", style=cosine_style(v)) for v in values])
            t.add_row(_layer_name(row.layer), *cells)
    return Group(head, t)


def scatter(points: list[Point], explained: list[float] | None, *, width: int = PLOT_WIDTH,
            height: int = PLOT_HEIGHT) -> Text:
    """The points on a character grid, each a coloured ● with its label beside it where there is room."""
    xs, ys = [p.x for p in points], [p.y for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    grid: list[list[tuple[str, str]]] = [[(" ", "")] * width for _ in range(height)]

    def cell(value: float, low: float, high: float, n: int) -> int:
        return round((value - low) / (high - low) * (n - 1)) if high > low else (n - 1) // 2

    for i, p in enumerate(points):
        style = POINT_STYLES[i % len(POINT_STYLES)]
        col, row = cell(p.x, x0, x1, width), height - 1 - cell(p.y, y0, y1, height)
        grid[row][col] = ("●", style)
        label = visible(p.label)[: width - 2]
        for r in (row, row - 1, row + 1, row - 2, row + 2):  # beside the point, else a row above/below
            for start in (col + 2, col - 1 - len(label)):
                span = range(start, start + len(label))
                if 0 <= r < height and start >= 0 and start + len(label) <= width and all(
                    grid[r][k][0] == " " for k in range(max(0, start - 1), min(width, start + len(label) + 1))
                    if k != col or r != row
                ):
                    for k, ch in zip(span, label):
                        grid[r][k] = (ch, style)
                    break
            else:
                continue
            break
    share = explained or [0.0, 0.0]
    text = Text(f"PC2 ({100 * share[1]:.0f}% of the variance)\n", style="dim")
    for cells in grid:
        text.append("│", style="dim")
        for ch, style in cells:
            text.append(ch, style=style)
        text.append("\n")
    text.append("└" + "─" * width + "\n", style="dim")
    text.append(f"PC1 ({100 * share[0]:.0f}% of the variance)".rjust(width + 1), style="dim")
    return text


# --------------------------------------------------------------------------------------------
# The whole report


def render_embeddings(r: EmbeddingReport) -> RenderableType:
    head = Text()
    head.append(r.model, style="bold")
    tied = ", tied to the LM head" if r.tied else ""
    head.append(f"\ninput embeddings: {r.vocab_size:,} rows × {r.hidden_size:,} ({r.dtype}{tied}); "
                f"{r.num_layers} layers", style="dim")
    if r.words:
        vectors = ("the mean of each word's rows of the input embeddings" if r.layer is None else
                   ("the embedding output" if r.layer == "embed" else f"the output of layer {r.layer}")
                   + ", each word run alone, mean over its tokens")
        head.append(f"\nword vectors: {vectors}", style="dim")
    parts: list[RenderableType] = [head]
    if r.words:
        parts += [words_table(r), similarity_table(r)]
    if any(n.top for n in r.neighbors):  # (one word with --layer has no other word to rank)
        parts.append(neighbors_table(r.neighbors, among_words=r.layer is not None))
    if r.analogy is not None:
        parts.append(analogy_table(r.analogy))
        parts.append(analogy_note(r.analogy, r.layer))
    if r.context is not None:
        parts.append(context_view(r.context, r.num_layers))
    if r.projection is not None:
        parts.append(Text("The words in two dimensions (PCA of the unit vectors)", style="bold"))
        parts.append(scatter(r.projection, r.explained))
    return Group(*parts)
