"""Generate and compare: one strategy streamed, or several side by side, with their results.

The tokens are chosen by the batched decode loop or beam search (``llmscope.decoding.loop``) with the
settings, processors and stop ids of ``llmscope.decoding.sampling``. The probability recorded for a token is
the model's own (softmax of the raw logits), before the strategy reshaped the distribution, so mean
log-probability and perplexity compare strategies on one scale: how likely the model finds the text
each strategy wrote.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from llmscope import loading
from llmscope.text import prompts
from llmscope.decoding.loop import (
    GeneratedToken, Row, Streamer, beam_search, check_decode_work, context_room, decode_rows, token_texts,
)
from llmscope.decoding.sampling import (
    DEFAULT_COMPARE,
    DecodingSettings,
    as_settings,
    parse_strategy_list,
    stop_token_ids,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from llmscope.loading.model import LoadedModel


# --------------------------------------------------------------------------------------------
# Results


@dataclasses.dataclass(frozen=True)
class KVCacheComparison:
    """The same generation run with and without the KV cache."""

    uncached_seconds: float
    cached_seconds: float
    uncached_tokens_per_second: float
    cached_tokens_per_second: float
    speedup: float  # cached tokens/s / uncached tokens/s
    same_token_ids: bool
    # The work each way, which no machine load changes (None for beam search, run by model.generate):
    uncached_positions: int | None = None  # token positions computed: the whole sequence every step
    cached_positions: int | None = None  # the prompt once, then one new token per step
    uncached_attention_pairs: int | None = None  # query-key scores per head and layer, causal
    cached_attention_pairs: int | None = None


@dataclasses.dataclass(frozen=True)
class GenerationResult:
    """What one strategy wrote, how sure the model was of each token, and how fast it went."""

    model: str
    prompt: str
    chat: bool
    settings: DecodingSettings
    text: str
    token_ids: list[int]
    token_texts: list[str]  # the text each token added (may be "" for a partial character)
    token_probs: list[float]  # the model's probability of each chosen token (raw logits)
    prompt_tokens: int
    stop_reason: str  # "eos", "length" (--max-new-tokens) or "context" (the model's context is full)
    time_to_first_token: float | None  # seconds; None for beam search
    total_time: float  # seconds, prefill included
    kv_cache: bool
    kv_cache_comparison: KVCacheComparison | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)  # about the prompt and the settings
    candidates_kept: list[int] = dataclasses.field(default_factory=list)  # per step: tokens the pick chose from

    @property
    def strategy(self) -> str:
        return self.settings.strategy

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def tokens_per_second(self) -> float:
        return self.num_tokens / self.total_time if self.total_time > 0 else float("nan")

    @property
    def mean_logprob(self) -> float:
        if not self.token_probs:
            return float("nan")
        return sum(math.log(max(p, 1e-45)) for p in self.token_probs) / len(self.token_probs)

    @property
    def perplexity(self) -> float:
        m = self.mean_logprob
        return math.exp(-m) if math.isfinite(m) else float("nan")

    @property
    def distinct_1(self) -> float:
        return distinct_n(self.token_ids, 1)

    @property
    def distinct_2(self) -> float:
        return distinct_n(self.token_ids, 2)

    @property
    def repetition(self) -> float:
        return repetition_rate(self.token_ids)

    def to_json(self) -> dict[str, Any]:
        s = self.settings
        return {
            "strategy": s.strategy,
            "label": s.label,
            "text": self.text,
            "token_ids": self.token_ids,
            "tokens": [
                {"id": i, "text": t, "prob": p} for i, t, p in zip(self.token_ids, self.token_texts, self.token_probs)
            ],
            "num_tokens": self.num_tokens,
            "prompt": self.prompt,
            "prompt_tokens": self.prompt_tokens,
            "chat": self.chat,
            "model": self.model,
            "settings": {f.name: getattr(s, f.name) for f in dataclasses.fields(s) if f.name != "notes"},
            "stop_reason": self.stop_reason,
            "time_to_first_token": self.time_to_first_token,
            "total_time": self.total_time,
            "tokens_per_second": self.tokens_per_second,
            "mean_logprob": self.mean_logprob,
            "perplexity": self.perplexity,
            "distinct_1": self.distinct_1,
            "distinct_2": self.distinct_2,
            "repetition": self.repetition,
            "kv_cache": self.kv_cache,
            "kv_cache_comparison": self.kv_cache_comparison,
            "candidates_kept": self.candidates_kept,
            "warnings": self.warnings,
        }


@dataclasses.dataclass(frozen=True)
class ComparisonResult:
    """Several strategies on one prompt; sampling rows ran as one batch."""

    model: str
    prompt: str
    chat: bool
    results: list[GenerationResult]
    batched: list[str]  # labels of the rows that ran together, one forward pass per step
    batch_time: float  # seconds for the batched rows together
    total_time: float
    warnings: list[str] = dataclasses.field(default_factory=list)  # about the prompt

    @property
    def coinciding(self) -> list[list[str]]:
        """Groups of rows (their labels) that wrote the very same tokens, in row order."""
        groups: dict[tuple[int, ...], list[str]] = {}
        for r in self.results:
            groups.setdefault(tuple(r.token_ids), []).append(r.settings.label)
        return [labels for labels in groups.values() if len(labels) > 1]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt": self.prompt,
            "chat": self.chat,
            "results": self.results,
            "batched": self.batched,
            "batch_time": self.batch_time,
            "total_time": self.total_time,
            "coinciding": self.coinciding,
            "warnings": self.warnings,
        }


def distinct_n(ids: Sequence[int], n: int) -> float:
    """Distinct n-grams / all n-grams of the generated tokens (1.0: no n-gram repeats)."""
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def repetition_rate(ids: Sequence[int], n: int = 4) -> float:
    """Share of the 4-grams that repeat an earlier one (seq-rep-4; 0.0: none repeats)."""
    d = distinct_n(ids, n)
    return 1.0 - d if math.isfinite(d) else 0.0


# --------------------------------------------------------------------------------------------
# Prompt, stop tokens, processors


def _result(
    lm: LoadedModel, prompt: str, chat: bool, row: Row, prompt_tokens: int, *, kv_cache: bool,
    ttft: float | None, comparison: KVCacheComparison | None = None, warnings: Sequence[str] = (),
) -> GenerationResult:
    text, pieces = token_texts(lm.tokenizer, row.ids)
    return GenerationResult(
        model=lm.source.display_name,
        prompt=prompt,
        chat=chat,
        settings=row.settings,
        text=text,
        token_ids=list(row.ids),
        token_texts=pieces,
        token_probs=list(row.probs),
        prompt_tokens=prompt_tokens,
        stop_reason=row.stop_reason,
        time_to_first_token=ttft,
        total_time=float(row.finished_at or 0.0),
        kv_cache=kv_cache,
        kv_cache_comparison=comparison,
        warnings=list(warnings) + list(row.settings.notes),
        candidates_kept=list(row.kept),
    )


# --------------------------------------------------------------------------------------------
# The API


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """What generate and compare start from."""

    lm: LoadedModel
    prompt_ids: torch.Tensor  # (1, prompt tokens)
    stop_ids: list[int]
    warnings: list[str]


def _prepare(prompt: str, model: loading.ModelLike, *, chat: bool, system: str | None) -> _Prepared:
    """Check the prompt options (before any load), load the causal model, encode the prompt, find the stop ids."""
    import torch

    prompts.check_prompt_options(prompt, chat=chat, system=system, allow_empty=True)
    lm = loading.load(model)
    lm.require_causal("write text left to right", hint="use a causal model such as gpt2 or the embedded default")
    encoded = prompts.encode_for(lm, prompt, chat=chat, system=system, empty="bos")  # plain "": from BOS
    prompt_ids, warnings = torch.tensor([encoded.ids], device=lm.device), list(encoded.warnings)
    context_room(lm, prompt_ids.shape[-1])
    stops = stop_token_ids(lm.model, lm.tokenizer, lm.config, chat=chat)
    return _Prepared(lm, prompt_ids, stops, warnings)


def generate(
    prompt: str,
    *,
    model: loading.ModelLike = None,
    settings: DecodingSettings | str | None = None,
    chat: bool = False,
    system: str | None = None,
    kv_cache: bool = True,
    on_token: Callable[[GeneratedToken], None] | None = None,
) -> GenerationResult:
    """Generate text from PROMPT with one decoding strategy.

    ``settings`` is a ``DecodingSettings`` (build one with ``settings_for("top-p", top_p=0.9,
    temperature=0.8)``, which checks the values), a strategy name with its defaults, or None for
    greedy. The same seed always gives the same text. ``on_token`` receives each token as it is
    chosen (not for beam search, whose best sequence is known only at the end). ``kv_cache=False``
    recomputes the whole sequence every step, then runs again with the cache and reports both in
    ``kv_cache_comparison``: the positions and attention scores each way computed, and the times.
    """
    settings = as_settings(settings)
    ready = _prepare(prompt, model, chat=chat, system=system)
    lm, prompt_ids, stops = ready.lm, ready.prompt_ids, ready.stop_ids
    check_decode_work(lm, prompt_ids.shape[-1], [settings])

    def run(cache: bool, callback: Callable[[GeneratedToken], None] | None) -> tuple[Row, float | None]:
        if settings.strategy == "beam":
            row, _ = beam_search(lm, prompt_ids, settings, stop_ids=stops, kv_cache=cache)
            return row, None
        streamer = Streamer(lm.tokenizer, callback) if callback is not None else None
        hook = (lambda r, token, prob: streamer(token, prob)) if streamer is not None else None
        rows, _ = decode_rows(lm, prompt_ids, [settings], stop_ids=stops, kv_cache=cache, on_token=hook)
        return rows[0], rows[0].first_token_at

    row, ttft = run(kv_cache, on_token)
    comparison = None if kv_cache else _kv_comparison(row, run(True, None)[0])
    return _result(lm, prompt, chat, row, prompt_ids.shape[-1], kv_cache=kv_cache, ttft=ttft, comparison=comparison,
                   warnings=ready.warnings)


def _kv_comparison(uncached: Row, cached: Row) -> KVCacheComparison:
    """The same generation without and with the KV cache: times, speeds, and whether the tokens agree."""
    un_tps = len(uncached.ids) / uncached.finished_at if uncached.finished_at else float("nan")
    c_tps = len(cached.ids) / cached.finished_at if cached.finished_at else float("nan")
    return KVCacheComparison(
        uncached_seconds=float(uncached.finished_at or 0.0),
        cached_seconds=float(cached.finished_at or 0.0),
        uncached_tokens_per_second=un_tps,
        cached_tokens_per_second=c_tps,
        speedup=c_tps / un_tps if un_tps else float("nan"),
        same_token_ids=cached.ids == uncached.ids,
        **({} if uncached.settings.strategy == "beam" else dict(
            uncached_positions=uncached.positions, cached_positions=cached.positions,
            uncached_attention_pairs=uncached.attention_pairs, cached_attention_pairs=cached.attention_pairs)),
    )


def compare(
    prompt: str,
    *,
    model: loading.ModelLike = None,
    strategies: str | Sequence[str | DecodingSettings] = DEFAULT_COMPARE,
    chat: bool = False,
    system: str | None = None,
) -> ComparisonResult:
    """Run several strategies on one prompt; greedy and sampling rows share one batch.

    ``strategies`` is a list of ``DecodingSettings`` or names (``"top-p=0.5"`` sets that row's own
    value; a string is split at commas); ``parse_strategy_list("greedy,top-p", temperature=0.7,
    max_new_tokens=20)`` gives every row shared values. Every row equals what ``generate`` gives with
    the same settings and seed.
    """
    specs = parse_strategy_list(strategies)
    ready = _prepare(prompt, model, chat=chat, system=system)
    lm, prompt_ids, stops = ready.lm, ready.prompt_ids, ready.stop_ids
    check_decode_work(lm, prompt_ids.shape[-1], specs)
    start = time.perf_counter()
    batched = [s for s in specs if s.strategy != "beam"]
    by_spec: dict[int, GenerationResult] = {}
    batch_time = 0.0
    if batched:
        rows, batch_time = decode_rows(lm, prompt_ids, batched, stop_ids=stops)
        positions = [i for i, s in enumerate(specs) if s.strategy != "beam"]
        for i, row in zip(positions, rows):
            by_spec[i] = _result(lm, prompt, chat, row, prompt_ids.shape[-1], kv_cache=True, ttft=row.first_token_at)
    for i, s in enumerate(specs):
        if s.strategy == "beam":
            row, _ = beam_search(lm, prompt_ids, s, stop_ids=stops)
            by_spec[i] = _result(lm, prompt, chat, row, prompt_ids.shape[-1], kv_cache=True, ttft=None)
    return ComparisonResult(
        model=lm.source.display_name,
        prompt=prompt,
        chat=chat,
        results=[by_spec[i] for i in range(len(specs))],
        batched=[s.label for s in batched],
        batch_time=batch_time,
        total_time=time.perf_counter() - start,
        warnings=list(ready.warnings) + list(dict.fromkeys(n for s in specs for n in s.notes)),
    )
