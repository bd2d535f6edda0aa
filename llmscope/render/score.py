"""Rich views of ``llmscope score``: the text coloured by probability, the surprises, the totals."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from llmscope.render import page, visible
from llmscope.forward.scoring import ScoreComparison, ScoreResult
from llmscope.units import fmt_int, fmt_prob

# Probability buckets, likely to surprising, on viridis (its steps differ in lightness, so they stay
# apart for colour-blind readers and in grey).
BUCKETS: tuple[tuple[float, str, str], ...] = (
    (0.5, "≥50%", "black on #fde725"),
    (0.1, "10-50%", "black on #7ad151"),
    (0.01, "1-10%", "black on #22a884"),
    (0.001, "0.1-1%", "white on #31688e"),
    (0.0, "<0.1%", "bold white on #440154"),
)
UNSCORED = "dim"


def style_for(prob: float | None) -> str:
    if prob is None:
        return UNSCORED
    return next(style for floor, _, style in BUCKETS if prob >= floor)


def coloured_text(result: ScoreResult) -> Text:
    """The text, each token on the colour of its probability; the first token dim (no score).

    Tokens that share characters (byte-level pieces of one character) draw the character once, in
    the colour of the least likely of them."""
    segments: list[list] = []  # [piece, prob, scored]
    covered = 0  # characters of the text drawn so far
    for token in result.tokens:
        spanned = token.start is not None and token.end is not None and token.end > token.start
        if spanned and token.end <= covered and segments:  # type: ignore[operator]
            last = segments[-1]
            if token.prob is not None and (last[1] is None or token.prob < last[1]):
                last[1] = token.prob if last[2] else last[1]
            continue
        if spanned and token.start > covered:  # type: ignore[operator]
            segments.append([result.text[covered : token.start], None, False])  # text no token covers
        piece = result.text[max(covered, token.start) : token.end] if spanned else token.token  # type: ignore[arg-type]
        segments.append([piece, token.prob, token.logprob is not None])
        if spanned:
            covered = token.end  # type: ignore[assignment]
    text = Text()
    for piece, prob, scored in segments:
        text.append(piece, style=style_for(prob if scored else None))
    return text


def legend() -> Text:
    text = Text()
    text.append("probability: ", style="dim")
    for _, label, style in BUCKETS:
        text.append(f" {label} ", style=style)
        text.append(" ")
    text.append(" not scored", style=UNSCORED)
    return text


def surprises_table(result: ScoreResult, n: int) -> Table:
    t = Table(box=box.SIMPLE_HEAD, title=f"Most surprising tokens (top {n})", title_justify="left",
              title_style="bold", pad_edge=False)
    t.add_column("pos", justify="right", style="dim")
    t.add_column("token", no_wrap=True, max_width=18, overflow="ellipsis")
    t.add_column("prob", justify="right")
    t.add_column("bits", justify="right")
    t.add_column("rank", justify="right")
    t.add_column("model expected", no_wrap=True, max_width=18, overflow="ellipsis")
    t.add_column("its prob", justify="right")
    for position, token in result.surprising(n):
        top = token.top
        t.add_row(
            str(position), Text(visible(token.token) or "∅", style=style_for(token.prob)), fmt_prob(token.prob),
            f"{-token.logprob / 0.6931471805599453:.2f}" if token.logprob is not None else "-",
            fmt_int(token.rank), visible(top.token) if top else "-", fmt_prob(top.prob) if top else "-",
        )
    return t


def totals(result: ScoreResult) -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="dim")
    t.add_column()
    passes = "1 forward pass" if result.windows == 1 else f"{result.windows:,} windows, every {result.stride:,} tokens"
    t.add_row("tokens", f"{result.num_tokens:,} ({result.scored:,} scored; the first has no score)")
    t.add_row("window", f"{result.window:,} tokens, {passes}")
    t.add_row("mean NLL", f"{result.mean_nll:.4f} nats per token")
    t.add_row("perplexity", Text(f"{result.perplexity:.4f}", style="bold"))
    t.add_row("bits per byte", Text(f"{result.bits_per_byte:.4f}", style="bold")
              .append(f"  ({result.bytes:,} UTF-8 bytes)", style="dim"))
    return t


def header(result: ScoreResult) -> Text:
    text = Text(result.model, style="bold")
    text.append(f"  {result.num_tokens:,} tokens, {result.dtype}", style="dim")
    return text


def render_score(result: ScoreResult, top: int = 10) -> RenderableType:
    page.remember_options(result, top=top)  # its page (--export FILE.html) shows as many rows
    parts: list[RenderableType] = [header(result), coloured_text(result), legend()]
    if top > 0:
        parts.append(surprises_table(result, top))
    parts.append(totals(result))
    return Group(*parts)


def comparison_table(comparison: ScoreComparison) -> Table:
    t = Table(box=box.SIMPLE_HEAD, title="Models", title_justify="left", title_style="bold", pad_edge=False)
    t.add_column("model", no_wrap=True, max_width=28, overflow="ellipsis")
    t.add_column("tokens", justify="right")
    t.add_column("mean NLL", justify="right")
    t.add_column("perplexity", justify="right")
    t.add_column("bits/byte", justify="right", style="bold")
    best = min(r.bits_per_byte for r in comparison.models)
    for r in comparison.models:
        t.add_row(r.model, fmt_int(r.num_tokens), f"{r.mean_nll:.4f}", f"{r.perplexity:.3f}",
                  Text(f"{r.bits_per_byte:.4f}", style="green" if r.bits_per_byte == best else ""))
    return t


def disagreement_table(comparison: ScoreComparison, n: int) -> Table:
    t = Table(box=box.SIMPLE_HEAD, title=f"Where they disagree most (bits per word, top {n})",
              title_justify="left", title_style="bold", pad_edge=False)
    t.add_column("text", no_wrap=True, max_width=20, overflow="ellipsis")
    for i, _ in enumerate(comparison.models, 1):
        t.add_column(f"model {i}", justify="right")
    t.add_column("spread", justify="right", style="bold")
    for d in comparison.disagreements[:n]:
        low, high = min(d.bits), max(d.bits)
        cells = [Text(f"{b:.2f}", style="red" if b == high else ("green" if b == low else "")) for b in d.bits]
        t.add_row(visible(d.text.strip()) or "∅", *cells, f"{d.spread:.2f}")
    return t


def render_comparison(comparison: ScoreComparison, top: int = 10) -> RenderableType:
    page.remember_options(comparison, top=top)
    parts: list[RenderableType] = [comparison_table(comparison)]
    if top > 0 and comparison.disagreements:
        parts.append(disagreement_table(comparison, top))
    elif top > 0:
        parts.append(Text("No disagreement spans: a tokenizer gives no character offsets.", style="dim"))
    parts.append(Text("Perplexity depends on the tokenizer; compare models by bits per byte.", style="dim"))
    return Group(*parts)
