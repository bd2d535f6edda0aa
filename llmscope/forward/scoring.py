"""How likely a model finds a text, token by token: log-probabilities, ranks, perplexity, bits per byte.

The text is tokenized as the model reads it (special tokens the tokenizer adds included). Every token
after the first is scored: ``log p(token | the tokens before it)``, its rank in that distribution and
the model's top choice there. Perplexity is ``exp(mean NLL)``; bits per byte is the total NLL in bits
over the text's UTF-8 bytes, which compares across tokenizers.

Long texts are scored in windows of ``window`` tokens that start every ``stride`` tokens, as in the
Hugging Face perplexity guide: each window scores only the tokens the one before did not, so every
token is scored once, with as much left context as its window holds. A window of N tokens makes N-1
predictions (its first token is context only), so windows start every ``min(stride, window - 1)``
tokens. A text within the window is one forward pass.

How the logits of each window are made and reduced (never ``window x vocab`` at once for a long
window): ``token_logprobs``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmscope import loading
from llmscope.forward import logprobs
from llmscope.errors import UsageError
from llmscope.progress import reporter

if TYPE_CHECKING:  # pragma: no cover
    from llmscope.loading.model import LoadedModel


# --------------------------------------------------------------------------------------------
# Result types


@dataclasses.dataclass(frozen=True)
class TopChoice:
    """The token the model found most likely at a position."""

    id: int
    token: str
    prob: float


@dataclasses.dataclass(frozen=True)
class TokenScore:
    """One token of the text. ``logprob``, ``rank`` and ``top`` are None for the first token."""

    id: int
    token: str
    logprob: float | None  # nats, log p(this token | the ones before it)
    rank: int | None  # 1 = the model's top choice, over the whole vocabulary
    top: TopChoice | None
    start: int | None = dataclasses.field(default=None, repr=False)  # character span in the text
    end: int | None = dataclasses.field(default=None, repr=False)  # (None: no offsets, or a special token)

    @property
    def prob(self) -> float | None:
        return None if self.logprob is None else math.exp(self.logprob)


@dataclasses.dataclass(frozen=True)
class ScoreResult:
    """A text scored by one model."""

    model: str
    text: str
    num_tokens: int
    window: int
    stride: int  # windows start every ``stride`` tokens (at most window - 1)
    windows: int  # forward passes
    tokens: list[TokenScore]
    scored: int  # tokens with a score: num_tokens - 1
    total_nll: float  # nats
    mean_nll: float  # nats per scored token
    perplexity: float  # exp(mean_nll)
    bits_per_byte: float  # total_nll / ln 2 / bytes
    bytes: int  # UTF-8 bytes of the text
    dtype: str

    def surprising(self, n: int) -> list[tuple[int, TokenScore]]:
        """The ``n`` least likely tokens, as (position, token), least likely first."""
        scored = [(i, t) for i, t in enumerate(self.tokens) if t.logprob is not None]
        return sorted(scored, key=lambda item: item[1].logprob)[:n]  # type: ignore[arg-type, return-value]


@dataclasses.dataclass(frozen=True)
class Disagreement:
    """A stretch of the text (a word with the spaces before it) the models find unequally surprising."""

    start: int
    end: int
    text: str
    bits: list[float]  # per model, in the order of ``ScoreComparison.models``
    spread: float  # max(bits) - min(bits)


@dataclasses.dataclass(frozen=True)
class ScoreComparison:
    """The same text under several models: their scores side by side, and where they disagree."""

    model: str  # the first model
    text: str
    bytes: int
    models: list[ScoreResult]
    disagreements: list[Disagreement]


# --------------------------------------------------------------------------------------------
# Checks that need no model


def check_text(text: str) -> None:
    if not isinstance(text, str):
        raise UsageError(f"the text must be a str, not {type(text).__name__}")
    if text == "":
        raise UsageError("the text is empty", hint="give some text to score")
    from llmscope.text.prompts import check_prompt_options

    check_prompt_options(text, chat=False, system=None)


def check_window(window: int | None, stride: int | None) -> None:
    """Window and stride values that cannot work whatever the model (checked before loading)."""
    if window is not None and window < 2:
        raise UsageError(f"`window={window}`: must be at least 2", hint="a window of N tokens scores N-1 of them")
    if stride is not None and stride < 1:
        raise UsageError(f"`stride={stride}`: must be at least 1")
    if window is not None and stride is not None and stride > window:
        raise UsageError(f"`stride={stride}` is larger than `window={window}`",
                         hint="tokens between windows would never be scored; use a stride up to the window")


def plan_windows(num_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first target) of each forward pass: ids[begin:end] are read, and the targets
    first..end-1 (those the window before did not score) are scored."""
    step = min(stride, window - 1)
    plan, scored_to, begin = [], 1, 0
    while scored_to < num_tokens:
        end = min(begin + window, num_tokens)
        plan.append((begin, end, scored_to))
        scored_to, begin = end, begin + step
    return plan


# --------------------------------------------------------------------------------------------
# One model


def _causal(lm: LoadedModel) -> LoadedModel:
    return lm.require_causal("give a left-to-right probability for a text",
                             hint="score with a causal model (GPT-2, Llama, Gemma...)")


def _settle_window(lm: LoadedModel, window: int | None, stride: int | None, num_tokens: int) -> tuple[int, int]:
    from llmscope.config.values import context_length

    limit = context_length(lm.config)
    if window is not None and limit is not None and window > limit:
        raise UsageError(f"`window={window:,}` is longer than the model's context of {limit:,} tokens",
                         hint=f"use `window={limit}` or less")
    if window is None:
        window = limit or num_tokens
    window = max(2, window)
    if stride is not None and stride > window:
        raise UsageError(f"`stride={stride:,}` is larger than the window of {window:,} tokens",
                         hint="use a stride up to the window")
    return window, min(stride or window, window - 1)


def _score_loaded(lm: LoadedModel, text: str, window: int | None, stride: int | None) -> ScoreResult:
    from llmscope.text.prompts import encode, token_text

    name = lm.source.display_name
    encoded = encode(lm.tokenizer, text, name=name)
    for warning in encoded.warnings:  # e.g. two BOS tokens at the start
        reporter().notice(warning)
    ids = encoded.ids
    if len(ids) < 2:
        raise UsageError(f"the text is {len(ids)} token for {name}: there is nothing to score after the first",
                         hint="give a longer text")
    window, stride = _settle_window(lm, window, stride, len(ids))
    plan = plan_windows(len(ids), window, stride)
    scores = logprobs.score_ids(lm, ids, plan, window)

    def text_of(token_id: int) -> str:
        try:
            return token_text(lm.tokenizer, token_id)
        except Exception:  # noqa: BLE001 - an id past the tokenizer's vocabulary (padded LM heads)
            return f"<id {token_id}>"

    tokens = []
    for i, token_id in enumerate(ids):
        start, end = encoded.offsets[i] if encoded.offsets and i not in encoded.added else (None, None)
        if i == 0:
            tokens.append(TokenScore(token_id, text_of(token_id), None, None, None, start, end))
            continue
        logprob, rank, top_id, top_prob = scores[i - 1]
        top = TopChoice(top_id, text_of(top_id), top_prob)
        tokens.append(TokenScore(token_id, text_of(token_id), logprob, rank, top, start, end))
    total = -sum(s[0] for s in scores)
    mean = total / len(scores)
    size = len(text.encode("utf-8"))
    return ScoreResult(
        model=name, text=text, num_tokens=len(ids), window=window, stride=stride, windows=len(plan),
        tokens=tokens, scored=len(scores), total_nll=total, mean_nll=mean, perplexity=_exp(mean),
        bits_per_byte=total / math.log(2) / size, bytes=size, dtype=lm.dtype,
    )


def _exp(value: float) -> float:
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


def score_text(
    text: str,
    model: loading.ModelLike = None,
    *,
    window: int | None = None,
    stride: int | None = None,
) -> ScoreResult:
    """Score ``text`` under ``model``: every token's log-probability, rank and the model's top choice,
    then the mean NLL, perplexity and bits per byte.

    ``window`` (default: the model's context length) and ``stride`` (default: the window) set how
    a long text is cut into forward passes; see the module docstring for the rule.
    """
    check_text(text)
    check_window(window, stride)
    lm = _causal(loading.load(model))
    return _score_loaded(lm, text, window, stride)


# --------------------------------------------------------------------------------------------
# Several models


def _char_bits(result: ScoreResult) -> tuple[list[float], list[bool]] | None:
    """Each character's share of the NLL in bits (a token's NLL spread over its characters), and
    which characters belong to an unscored token. None without offsets."""
    n = len(result.text)
    bits, unscored = [0.0] * n, [False] * n
    has_offsets = False
    for token in result.tokens:
        if token.start is None or token.end is None or token.end <= token.start:
            continue
        has_offsets = True
        if token.logprob is None:
            for c in range(token.start, token.end):
                unscored[c] = True
            continue
        share = -token.logprob / math.log(2) / (token.end - token.start)
        for c in range(token.start, token.end):
            bits[c] += share
    return (bits, unscored) if has_offsets else None


def disagreements(results: Sequence[ScoreResult], n: int = 10) -> list[Disagreement]:
    """The ``n`` words (with the spaces before them) whose bits differ most between the models.

    Tokenizers cut the text differently, so each model's NLL is spread over characters first and
    summed per word; words touching an unscored token (a first token) are left out."""
    per_model = [_char_bits(r) for r in results]
    if len(results) < 2 or any(p is None for p in per_model):
        return []
    text = results[0].text
    spans = []
    for match in re.finditer(r"\s*\S+", text):
        s, e = match.span()
        if any(any(p[1][s:e]) for p in per_model):  # type: ignore[index]
            continue
        bits = [sum(p[0][s:e]) for p in per_model]  # type: ignore[index]
        spans.append(Disagreement(s, e, text[s:e], bits, max(bits) - min(bits)))
    return sorted(spans, key=lambda d: -d.spread)[:n]


def compare_scores(
    text: str,
    models: Sequence[loading.ModelLike],
    *,
    window: int | None = None,
    stride: int | None = None,
    spans: int = 10,
) -> ScoreComparison:
    """Score ``text`` under each of ``models`` (each a hub id, path, LoadSpec or LoadedModel, loaded one
    after the other) and find the ``spans`` words where they disagree most."""
    check_text(text)
    check_window(window, stride)
    if len(models) < 2:
        raise UsageError("comparing needs at least two `models`", hint="give a second model to compare with")
    results = []
    for model in models:
        lm = _causal(loading.load(model))
        results.append(_score_loaded(lm, text, window, stride))
        del lm  # one model in memory at a time (unless the caller holds it)
    return ScoreComparison(
        model=results[0].model, text=text, bytes=results[0].bytes, models=results,
        disagreements=disagreements(results, spans),
    )
