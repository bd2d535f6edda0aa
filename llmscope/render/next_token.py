"""Rich rendering of a NextTokenResult (``llmscope next-token``) and of one interactive step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from llmscope.decoding.distribution import Candidate, Distribution, NextTokenResult, Step, other_modality
from llmscope.render import visible
from llmscope.render.tokens import SPECIAL_STYLE
from llmscope.units import fmt_prob

if TYPE_CHECKING:  # pragma: no cover
    from llmscope.decoding.sampling import DecodingSettings
    from llmscope.decoding.stepping import Stepper

BAR_WIDTH = 10
_EIGHTHS = " ▏▎▍▌▋▊▉█"


def bar(prob: float, width: int = BAR_WIDTH) -> str:
    """A probability as a bar of ``width`` cells (full = 1.0), in eighths of a cell."""
    cells = max(0.0, min(1.0, prob)) * width
    full = int(cells)
    rest = int((cells - full) * 8)
    text = "█" * full + (_EIGHTHS[rest] if full < width and rest else "")
    return text.ljust(width)


# One probability format for the whole tool (percentages); render/layers uses this name too.
pct = fmt_prob

# Why stepping ended, as the summary line says it.
STOP_REASONS = {
    "eos": "stopped at an end token",
    "steps": "all steps taken",
    "stopped": "stopped by you",
    "context": "the model's context is full",
}


def token_cell(token: str, *, special: bool = False) -> Text:
    return Text(visible(token) or "∅", style=SPECIAL_STYLE if special else "bold")


# The input an added token such as <start_of_image> marks, as the note under the table names it.
_MODALITY_WORDS = {"image": "image", "vision": "image", "video": "video", "audio": "audio", "speech": "speech",
                   "multimodal": "non-text"}


def special_note(candidates: list[Candidate]) -> Text | None:
    """Dim lines under the table when special tokens are among the candidates shown: what they are
    (one line for markers of another modality, one for the tokenizer's other special tokens)."""
    markers = [c for c in candidates if c.special and other_modality(c.token)]
    others = [c for c in candidates if c.special and not other_modality(c.token)]
    lines = []
    if markers:
        names = _names(markers)
        kinds = " and ".join(dict.fromkeys(_MODALITY_WORDS[other_modality(c.token)] for c in markers))
        one = len(markers) == 1
        lines.append(f"{names} {'marks' if one else 'mark'} {kinds} input (a multimodal vocabulary), not text")
    if others:
        names = _names(others)
        lines.append(f"{names} {'is a special token' if len(others) == 1 else 'are special tokens'}, not text")
    return Text("\n".join(lines), style="dim") if lines else None


def _names(candidates: list[Candidate], most: int = 3) -> str:
    """The first MOST tokens' texts, then how many more: the note stays one line."""
    names = ", ".join(visible(c.token) or "∅" for c in candidates[:most])
    return names + (f" and {len(candidates) - most} more" if len(candidates) > most else "")


def _with_note(table: Table, d: Distribution) -> list[RenderableType]:
    note = special_note(d.candidates)
    return [table] if note is None else [table, note]


def _filters(settings: DecodingSettings) -> list[str]:
    """What reshapes the distribution under SETTINGS, in the order transformers applies it."""
    if not settings.do_sample:
        return []
    named = [f"T={settings.temperature:g}"] if settings.temperature != 1.0 else []
    for label, value in (("top-k", settings.top_k), ("top-p", settings.top_p), ("min-p", settings.min_p),
                         ("typical", settings.typical_p)):
        if value is not None:
            named.append(f"{label} {value:g}")
    return named


def candidate_table(d: Distribution, settings: DecodingSettings, *, title: str | None = None) -> Table:
    """The candidates; when sampling reshapes them: the tempered probability, each filter's verdict
    and what sampling draws with (greedy shows the running total instead)."""
    sampled = settings.do_sample
    t = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", title_style="bold", pad_edge=False)
    t.add_column("#", justify="right", style="dim")
    t.add_column("token", no_wrap=True, max_width=18, overflow="ellipsis")
    t.add_column("id", justify="right", style="dim")
    t.add_column("prob", justify="right")
    t.add_column("", no_wrap=True, style="cyan")
    if not sampled:  # the sampling columns take its place (the JSON keeps every logprob)
        t.add_column("logprob", justify="right")
    tempered = sampled and settings.temperature != 1.0
    if sampled:
        if tempered:
            t.add_column(f"T={settings.temperature:g}", justify="right")
        if settings.top_k is not None:
            t.add_column(f"top-k {settings.top_k}", justify="center")
        if settings.top_p is not None:
            t.add_column(f"top-p {settings.top_p:g}", justify="center")
        t.add_column("sampled", justify="right")
    else:
        t.add_column("cumul.", justify="right", style="dim")

    def verdict(kept: bool | None) -> Text:
        return Text("kept", style="green") if kept else Text("cut", style="red")

    for c in d.candidates:
        row: list[RenderableType] = [str(c.rank), token_cell(c.token, special=c.special), str(c.id), pct(c.prob),
                                     bar(c.prob)]
        if not sampled:
            row.append(f"{c.logprob:.2f}")
        if sampled:
            if tempered:
                row.append(pct(c.prob_temperature))
            if settings.top_k is not None:
                row.append(verdict(c.kept_top_k))
            if settings.top_p is not None:
                row.append(verdict(c.kept_top_p))
            row.append(pct(c.prob_sampling) if c.prob_sampling else Text("0", style="dim"))
        else:
            row.append(pct(c.cumulative_prob))
        t.add_row(*row)
    return t


def summary(d: Distribution, settings: DecodingSettings) -> Text:
    text = Text()
    text.append("entropy ", style="dim")
    text.append(f"{d.entropy:.3f} nats ({d.entropy_bits:.2f} bits)")
    if d.entropy_temperature is not None:
        text.append(f", at T={settings.temperature:g}: {d.entropy_temperature:.3f} nats")
    applied = _filters(settings)
    if applied:
        text.append("\nsampling draws from ", style="dim")
        text.append(f"{d.sampling_kept:,} token{'s' if d.sampling_kept != 1 else ''}")
        text.append(f" ({', '.join(applied)} applied)", style="dim")
        if d.top_k_kept is not None and settings.top_p is not None:
            text.append(f"; top-k alone keeps {d.top_k_kept:,}, top-p alone {d.top_p_kept:,}", style="dim")
    elif settings.do_sample:
        text.append("\nsampling draws from the whole distribution (no temperature, no filter)", style="dim")
    return text


def shown_table(d: Distribution) -> Table | None:
    if not d.shown:
        return None
    t = Table(box=box.SIMPLE_HEAD, title="Asked about", title_justify="left", title_style="bold", pad_edge=False)
    t.add_column("text", no_wrap=True, max_width=20, overflow="ellipsis")
    t.add_column("tokens", max_width=24, overflow="ellipsis")
    t.add_column("rank", justify="right")
    t.add_column("prob", justify="right")
    t.add_column("logprob", justify="right")
    t.add_column("all tokens", justify="right")
    for s in d.shown:
        t.add_row(
            token_cell(s.text),
            " ".join(visible(x) for x in s.tokens),
            f"{s.rank:,}",
            pct(s.prob),
            f"{s.logprob:.2f}",
            pct(s.sequence_prob) if s.sequence_prob is not None else "-",
        )
    return t


def steps_table(steps: list[Step], runners_up: int = 3, *, title: str = "Steps") -> Table:
    t = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", title_style="bold", pad_edge=False)
    t.add_column("step", justify="right", style="dim")
    t.add_column("chosen", no_wrap=True, max_width=16, overflow="ellipsis")
    t.add_column("prob", justify="right")
    t.add_column("runners-up", overflow="ellipsis", no_wrap=True)
    for i, s in enumerate(steps, 1):
        chosen = token_cell(s.chosen.token)
        if s.chosen.typed:
            chosen.append(" (typed)", style="magenta")
        others = [c for c in s.candidates if c.id != s.chosen.id or s.chosen.typed][:runners_up]
        rest = Text()
        for j, c in enumerate(others):
            if j:
                rest.append("  ")
            rest.append(visible(c.token) or "∅")
            rest.append(f" {pct(c.prob)}", style="dim")
        t.add_row(str(i), chosen, pct(s.chosen.prob), rest)
    return t


def header(r: NextTokenResult) -> Text:
    text = Text()
    text.append(r.model, style="bold")
    text.append(f"  {len(r.input_ids)} prompt tokens, {r.dtype}", style="dim")
    text.append("\n")
    text.append(visible(r.text) if len(r.text) <= 200 else visible(r.text[-200:]), style="cyan")
    return text


def render_next_token(r: NextTokenResult) -> RenderableType:
    parts: list[RenderableType] = [header(r)]
    if r.kind == "masked":
        for m in r.masks:
            title = f"Mask at position {m.position}"
            parts.extend(_with_note(candidate_table(m.distribution, r.settings, title=title), m.distribution))
            parts.append(summary(m.distribution, r.settings))
        shown = shown_table(r.masks[0].distribution) if r.masks else None
    else:
        d = r.distribution
        assert d is not None
        parts.extend(_with_note(candidate_table(d, r.settings, title="Next token"), d))
        parts.append(summary(d, r.settings))
        shown = shown_table(d)
    if shown is not None:
        parts.append(shown)
    if r.steps:
        parts.append(steps_table(r.steps, title=f"Steps ({r.settings.label}, seed {r.settings.seed})"
                                 if r.settings.do_sample else f"Steps ({r.settings.label})"))
        text = Text("continuation: ", style="dim")
        text.append(visible(r.generated_text), style="bold")
        if r.stop_reason:
            text.append(f"  ({STOP_REASONS.get(r.stop_reason, r.stop_reason)})", style="dim")
        parts.append(text)
    return Group(*parts)


def render_step_choices(run: Stepper) -> RenderableType:
    """One interactive step: the text so far and the candidates for the next token."""
    text = Text()
    text.append(visible(run.text), style="dim")
    text.append(visible(run.generated_text), style="bold cyan")
    d = run.distribution
    title = f"Step {len(run.steps) + 1}: next token"
    return Group(text, *_with_note(candidate_table(d, run.settings, title=title), d), summary(d, run.settings))


__all__ = ["bar", "candidate_table", "render_next_token", "render_step_choices", "Candidate"]
