"""Rich rendering of a GenerationResult (``llmscope generate``) and a ComparisonResult (``compare``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from llmscope.decoding.sampling import SAMPLING
from llmscope.decoding.generation import ComparisonResult, GenerationResult, KVCacheComparison

if TYPE_CHECKING:  # pragma: no cover
    from llmscope.decoding.loop import GeneratedToken
    from llmscope.decoding.sampling import DecodingSettings

# Probability bands for --show-probs, most to least likely: (lower bound, style, legend label).
PROB_BANDS = (
    (0.9, "bold green", "≥ 90%"),
    (0.5, "green", "50–90%"),
    (0.2, "yellow", "20–50%"),
    (0.05, "dark_orange", "5–20%"),
    (0.0, "bold red", "< 5%"),
)


def prob_style(prob: float) -> str:
    for low, style, _ in PROB_BANDS:
        if prob >= low:
            return style
    return PROB_BANDS[-1][1]


def prob_legend() -> Text:
    text = Text("colour = the model's probability of each token: ", style="dim")
    for i, (_, style, label) in enumerate(PROB_BANDS):
        text.append("■ ", style=style)
        text.append(label, style=style)
        if i < len(PROB_BANDS) - 1:
            text.append("  ")
    return text


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:{fmt}}{unit}"


def _seconds(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value * 1000:,.0f} ms" if value < 1 else f"{value:,.2f} s"


def generated_text(result: GenerationResult, *, show_probs: bool = False) -> Text:
    """The generated text, each token coloured by its probability with ``show_probs``."""
    if not show_probs:
        return Text(result.text)
    text = Text()
    for piece, prob in zip(result.token_texts, result.token_probs):
        text.append(piece, style=prob_style(prob))
    return text


def announce_generation(settings: DecodingSettings, *, kv_cache: bool = True) -> None:
    """What ``generate`` is about to do when it is not what a reader expects: on stderr, dim."""
    from llmscope import render

    if settings.strategy == "beam":
        render.stderr.print(f"[dim]Beam search with {settings.num_beams} beams: "
                            "the text comes when it is done.[/dim]")
    if not kv_cache:
        render.stderr.print("[dim]Generating without the KV cache, then again with it to compare.[/dim]")


class TokenStream:
    """``generate``'s text on stdout as it is written (``on_token``): the prompt once the model has
    accepted it (with its first token), then each token, coloured by its probability with ``show_probs``."""

    def __init__(self, prompt: str, *, chat: bool = False, show_probs: bool = False) -> None:
        from llmscope import render

        self.out = render.stdout
        self.prompt, self.chat, self.show_probs = prompt, chat, show_probs
        self.started = False

    def __call__(self, token: GeneratedToken) -> None:
        self.started = True
        if token.index == 0 and not self.chat:  # a chat prompt is the template's text: not repeated
            self.out.print(Text(self.prompt, style="dim"), end="", soft_wrap=True)
        if token.text:
            style = prob_style(token.prob) if self.show_probs else ""
            self.out.print(Text(token.text, style=style), end="", soft_wrap=True)
            self.out.file.flush()

    def end(self) -> None:
        """End the streamed text's line, and leave one blank line before the statistics."""
        self.out.print()
        self.out.print()

    def cut(self) -> None:
        """Generation failed mid-way: end the text streamed so far on its own line, so that the error
        after it starts a line of its own on a terminal."""
        if self.started:
            self.out.print()


def render_stats(result: GenerationResult) -> Table:
    t = Table(box=box.SIMPLE_HEAD, show_header=False, pad_edge=False, expand=False)
    t.add_column(style="bold cyan", no_wrap=True)
    t.add_column()
    t.add_row("strategy", result.settings.label)
    stop = {"eos": "end of text (EOS)", "length": "length (--max-new-tokens)",
            "context": "the model's context length (before --max-new-tokens)"}.get(result.stop_reason, result.stop_reason)
    t.add_row("tokens", f"{result.num_tokens:,} generated after {result.prompt_tokens:,} prompt tokens; stop: {stop}")
    first = _seconds(result.time_to_first_token) if result.time_to_first_token is not None else "- (beam search)"
    t.add_row("speed", f"{_num(result.tokens_per_second, ',.1f')} tokens/s; first token after {first}; "
                       f"total {_seconds(result.total_time)}")
    t.add_row("confidence", f"mean log-prob {_num(result.mean_logprob, '.3f')}, "
                            f"perplexity {_num(result.perplexity, ',.2f')}")
    c = result.kv_cache_comparison
    if c is not None:
        for label, value in kv_cache_lines(c):
            t.add_row(label, value)
    return t


def kv_cache_lines(c: KVCacheComparison) -> list[tuple[str, str]]:
    """The KV-cache lesson: the work each way (exact, whatever the load), then the wall times."""
    same = "same tokens" if c.same_token_ids else "tokens differ (rounding)"
    lines = []
    if c.uncached_positions is not None and c.cached_positions:
        lines.append((
            "KV cache work",
            f"without: {c.uncached_positions:,} token positions computed (the whole text every step); "
            f"with: {c.cached_positions:,} (the prompt once, then one per step): "
            f"[bold]{c.uncached_positions / c.cached_positions:.1f}x fewer[/bold]; attention scores per head and "
            f"layer {c.uncached_attention_pairs:,} vs {c.cached_attention_pairs:,}",
        ))
    if not math.isfinite(c.speedup):
        verdict = "no timing"
    elif c.speedup >= 1:
        verdict = f"[bold]{c.speedup:.1f}x faster with the cache[/bold]"
    else:
        verdict = f"{1 / c.speedup:.1f}x slower with the cache (timing noise: the machine is busy)"
    lines.append((
        "KV cache time",
        f"without: {_num(c.uncached_tokens_per_second, ',.1f')} tokens/s ({_seconds(c.uncached_seconds)}); "
        f"with: {_num(c.cached_tokens_per_second, ',.1f')} tokens/s ({_seconds(c.cached_seconds)}); {verdict}, {same}",
    ))
    return lines


def render_generation(
    result: GenerationResult, *, show_text: bool = True, show_probs: bool = False
) -> RenderableType:
    """The text (unless it was already streamed), the statistics, and the colour legend."""
    parts: list[RenderableType] = []
    if show_text:
        prompt = Text("" if result.chat else result.prompt, style="dim")
        parts.append(prompt + generated_text(result, show_probs=show_probs))
        parts.append(Text())
    parts.append(render_stats(result))
    if show_probs:
        parts.append(prob_legend())
    return Group(*parts)


def _one_line(text: str) -> str:
    return text.replace("\r", "").replace("\n", "↵ ").strip()


def render_comparison(result: ComparisonResult) -> RenderableType:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=True, title_justify="left")
    t.add_column("strategy", style="bold cyan", no_wrap=True)
    t.add_column("text", ratio=1, overflow="fold")
    t.add_column("mean\nlog-p", justify="right", no_wrap=True)
    t.add_column("dist-\n1/2", justify="right", no_wrap=True)
    t.add_column("rep", justify="right", no_wrap=True)
    t.add_column("len", justify="right", no_wrap=True)
    t.add_column("kept", justify="right", no_wrap=True)
    t.add_column("time", justify="right", no_wrap=True)
    same = {label for labels in result.coinciding for label in labels}
    for r in result.results:
        length = f"{r.num_tokens}" + ("" if r.stop_reason in ("length", "context") else "·")
        t.add_row(
            (r.settings.label.replace(" ", "\n", 1) if len(r.settings.label) > 10 else r.settings.label)
            + (" =" if r.settings.label in same else ""),
            Text(_one_line(r.text)),
            _num(r.mean_logprob, ".2f"),
            f"{_num(r.distinct_1, '.2f')}\n{_num(r.distinct_2, '.2f')}",
            _num(r.repetition, ".2f"),
            length,
            kept_range(r.candidates_kept),
            _seconds(r.total_time),
        )
    prompt = Text("prompt: ", style="dim") + Text(_one_line(result.prompt))
    beam = any(r.settings.strategy == "beam" for r in result.results)
    notes = Text(
        f"{len(result.batched)} strategies ran as one batch, one forward pass per step "
        f"({_seconds(result.batch_time)}){'; beam search ran apart' if beam else ''}. "
        f"Total {_seconds(result.total_time)}.\n"
        "mean log-p: the model's own log-probability per token (higher = more expected); dist-1/2: distinct "
        "unigrams/bigrams (diversity); rep: share of 4-grams repeated; len: tokens (· = stopped at EOS); "
        "kept: tokens each step's pick chose from, min-median-max (1: the argmax); "
        "time: when the row finished.",
        style="dim",
    )
    parts: list[RenderableType] = [prompt, t, notes]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, r in enumerate(result.results):
        groups.setdefault(tuple(r.token_ids), []).append(i)
    for rows in (g for g in groups.values() if len(g) > 1):
        labels = [result.results[i].settings.label for i in rows]
        named = " and ".join(labels) if len(set(labels)) == len(labels) else \
            " and ".join(f"row {i + 1} ({label})" for i, label in zip(rows, labels))
        sampled = sum(label.split()[0] in SAMPLING for label in labels) > 1
        parts.append(Text(
            f"= {named} wrote the same tokens: "
            + ("each sampling row draws with the same seed, and here the filters kept every token drawn" if sampled
               else "the most likely token was also the one drawn at every step" if len(set(labels)) > 1
               else "the same settings"),
            style="yellow",
        ))
    return Group(*parts)


def kept_range(kept: list[int]) -> str:
    """min-median-max of the tokens each step chose from ("1" for greedy, "-" for beam search)."""
    if not kept:
        return "-"
    ordered = sorted(kept)
    low, mid, high = ordered[0], ordered[len(ordered) // 2], ordered[-1]
    return f"{low:,}" if low == high else f"{_short(low)}-{_short(mid)}-{_short(high)}"


def _short(n: int) -> str:
    return f"{n / 1000:.0f}k" if n >= 10_000 else str(n)
