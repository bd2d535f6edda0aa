"""Decoding strategies: greedy, sampling (temperature, top-k, top-p, min-p, typical) and beam search.

Sampling strategies run in one decode loop built on transformers' own logits processors
(``TemperatureLogitsWarper``, ``TopKLogitsWarper``, ...) and a ``DynamicCache``, so tokens can be
streamed and each chosen token's probability recorded. Every row of a batch has its own processor
list and its own seeded ``torch.Generator``: a row samples the same tokens alone (``generate``) or
batched with others (``compare``). Beam search is ``model.generate(num_beams=...)`` itself.

The probability recorded for a token is the model's own (softmax of the raw logits), before the
strategy reshaped the distribution, so mean log-probability and perplexity compare strategies on
one scale: how likely the model finds the text each strategy wrote.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from llmscope import loading
from llmscope.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import LogitsProcessorList

    from llmscope.loading import LoadedModel

STRATEGIES = ("greedy", "sample", "top-k", "top-p", "min-p", "typical", "beam")
SAMPLING = ("sample", "top-k", "top-p", "min-p", "typical")
ALIASES = {
    "temperature": "sample",
    "sampling": "sample",
    "topk": "top-k",
    "top_k": "top-k",
    "topp": "top-p",
    "top_p": "top-p",
    "nucleus": "top-p",
    "minp": "min-p",
    "min_p": "min-p",
    "typical-p": "typical",
    "typical_p": "typical",
    "beam-search": "beam",
    "beams": "beam",
}
DEFAULT_COMPARE = ("greedy", "sample", "top-k", "top-p", "beam")

DEFAULT_TEMPERATURE = 1.0
# Below this, logits divided by the temperature overflow to inf and softmax gives NaN (sampling would
# crash); 0 means greedy instead.
MIN_TEMPERATURE = 1e-4
DEFAULT_TOP_K = 50
DEFAULT_TOP_P = 0.9
DEFAULT_MIN_P = 0.05
DEFAULT_TYPICAL_P = 0.9
DEFAULT_NUM_BEAMS = 4
DEFAULT_MAX_NEW_TOKENS = 40

# The strategy whose own parameter each option is, and the names used in messages.
_OWN_PARAMETER = {"top-k": "top_k", "top-p": "top_p", "min-p": "min_p", "typical": "typical_p", "beam": "num_beams"}
_OPTION = {
    "temperature": "--temperature",
    "top_k": "--top-k",
    "top_p": "--top-p",
    "min_p": "--min-p",
    "typical_p": "--typical-p",
    "num_beams": "--num-beams",
}
# Well-known end-of-turn tokens: in chat mode generation also stops at these.
_END_OF_TURN = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "</s>")


# --------------------------------------------------------------------------------------------
# Settings and their validation (no torch: the CLI validates before anything loads)


@dataclasses.dataclass(frozen=True)
class DecodingSettings:
    """One strategy with every value it uses, named as in transformers' GenerationConfig."""

    strategy: str
    temperature: float = DEFAULT_TEMPERATURE
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    num_beams: int = 1
    repetition_penalty: float = 1.0
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    seed: int = 0

    @property
    def do_sample(self) -> bool:
        return self.strategy in SAMPLING and self.temperature > 0

    @property
    def label(self) -> str:
        """Short name with the values that matter: ``top-p 0.9``, ``sample T=0.7``, ``beam 4``."""
        parts = [self.strategy]
        if self.strategy == "top-k":
            parts.append(str(self.top_k))
        elif self.strategy == "top-p":
            parts.append(f"{self.top_p:g}")
        elif self.strategy == "min-p":
            parts.append(f"{self.min_p:g}")
        elif self.strategy == "typical":
            parts.append(f"{self.typical_p:g}")
        elif self.strategy == "beam":
            parts.append(str(self.num_beams))
        if self.strategy in SAMPLING and (self.strategy == "sample" or self.temperature != 1.0):
            parts.append(f"T={self.temperature:g}")
        if self.repetition_penalty != 1.0:
            parts.append(f"rep={self.repetition_penalty:g}")
        return " ".join(parts)


def parse_strategy(name: str) -> str:
    """The canonical strategy name for NAME (aliases such as ``nucleus`` accepted)."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in STRATEGIES:
        raise UsageError(f"unknown strategy {name.strip()!r}", hint=f"use one of: {', '.join(STRATEGIES)}")
    return key


def validate_values(
    *,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    typical_p: float | None = None,
    num_beams: int | None = None,
    max_new_tokens: int | None = None,
    repetition_penalty: float | None = None,
    seed: int | None = None,
) -> None:
    """Refuse out-of-range values with a UsageError naming the option."""

    def bad(option: str, value: Any, rule: str) -> UsageError:
        return UsageError(f"{option} {value}: {rule}")

    if temperature is not None and not (temperature >= 0 and math.isfinite(temperature)):
        raise bad("--temperature", temperature, "must be 0 or more (0 always picks the most likely token)")
    if temperature is not None and 0 < temperature < MIN_TEMPERATURE:
        raise bad("--temperature", temperature, f"must be 0 or at least {MIN_TEMPERATURE:g} (smaller values "
                  "overflow; 0 always picks the most likely token)")
    if top_k is not None and top_k < 1:
        raise bad("--top-k", top_k, "must be 1 or more")
    if top_p is not None and not (0 < top_p <= 1):
        raise bad("--top-p", top_p, "must be in (0, 1]: more than 0, at most 1")
    if min_p is not None and not (0 <= min_p <= 1):
        raise bad("--min-p", min_p, "must be in [0, 1]")
    if typical_p is not None and not (0 < typical_p <= 1):
        raise bad("--typical-p", typical_p, "must be in (0, 1]")
    if num_beams is not None and num_beams < 1:
        raise bad("--num-beams", num_beams, "must be 1 or more")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise bad("--max-new-tokens", max_new_tokens, "must be 1 or more")
    if repetition_penalty is not None and not (MIN_TEMPERATURE <= repetition_penalty <= 1 / MIN_TEMPERATURE):
        # beyond these the penalised logits overflow to inf and sampling gets NaN probabilities
        raise bad("--repetition-penalty", repetition_penalty,
                  f"must be from {MIN_TEMPERATURE:g} to {1 / MIN_TEMPERATURE:g} (1 means no penalty)")
    if seed is not None and not 0 <= seed <= 2**64 - 1:
        raise bad("--seed", seed, "must be 0 or more, and below 2**64")


def infer_strategy(
    *, temperature: float | None, top_k: int | None, top_p: float | None, min_p: float | None,
    typical_p: float | None, num_beams: int | None,
) -> str:
    """The strategy the options imply when none is named: greedy unless a sampling option is given."""
    if num_beams is not None and num_beams > 1:
        return "beam"
    for strategy, value in (("top-p", top_p), ("top-k", top_k), ("min-p", min_p), ("typical", typical_p)):
        if value is not None:
            return strategy
    if temperature is not None and temperature > 0:
        return "sample"
    return "greedy"


def settings_for(
    strategy: str | None = None,
    *,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    typical_p: float | None = None,
    num_beams: int | None = None,
    max_new_tokens: int | None = None,
    repetition_penalty: float | None = None,
    seed: int | None = None,
    combine: bool = True,
) -> DecodingSettings:
    """Validated settings for one strategy; the strategy's own parameter gets its default if not given.

    ``combine=True`` (generate): every sampling option given applies, as in ``model.generate``
    (``top-p`` with ``--top-k 40`` filters by both), and options that cannot apply are refused.
    ``combine=False`` (compare): each option belongs to its own strategy and other rows ignore it.
    """
    validate_values(
        temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p,
        num_beams=num_beams, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty, seed=seed,
    )
    if strategy is None:
        strategy = infer_strategy(
            temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p, num_beams=num_beams
        )
    strategy = parse_strategy(strategy)
    given = {"top_k": top_k, "top_p": top_p, "min_p": min_p, "typical_p": typical_p}
    defaults = {"top_k": DEFAULT_TOP_K, "top_p": DEFAULT_TOP_P, "min_p": DEFAULT_MIN_P, "typical_p": DEFAULT_TYPICAL_P}
    values: dict[str, Any] = {k: None for k in given}
    own = _OWN_PARAMETER.get(strategy)
    if strategy in SAMPLING:
        if combine:
            values.update({k: v for k, v in given.items() if v is not None})
        if own is not None:
            values[own] = given[own] if given[own] is not None else defaults[own]
    elif combine:
        extra = [k for k, v in {**given, "temperature": temperature}.items() if v is not None and v != 0]
        if extra:
            raise UsageError(
                f"{_OPTION[extra[0]]} has no effect with --strategy {strategy}",
                hint="pick a sampling strategy: " + ", ".join(SAMPLING),
            )
    beams = 1
    if strategy == "beam":
        beams = num_beams if num_beams is not None else DEFAULT_NUM_BEAMS
    elif combine and num_beams is not None and num_beams > 1:
        raise UsageError(f"--num-beams {num_beams} needs --strategy beam")
    return DecodingSettings(
        strategy=strategy,
        temperature=DEFAULT_TEMPERATURE if temperature is None or strategy not in SAMPLING else float(temperature),
        num_beams=beams,
        repetition_penalty=1.0 if repetition_penalty is None else float(repetition_penalty),
        max_new_tokens=DEFAULT_MAX_NEW_TOKENS if max_new_tokens is None else int(max_new_tokens),
        seed=0 if seed is None else int(seed),
        **values,
    )


def parse_strategy_list(text: str | Sequence[str | DecodingSettings], **options: Any) -> list[DecodingSettings]:
    """``greedy,top-p,top-p=0.5,beam=8`` -> settings; ``NAME=VALUE`` sets that strategy's own value.

    The value is the temperature for ``sample``, k for ``top-k``, p for ``top-p``/``min-p``/
    ``typical`` and the number of beams for ``beam``.
    """
    items = [s for s in text.split(",")] if isinstance(text, str) else list(text)
    validate_values(**options)
    result: list[DecodingSettings] = []
    for item in items:
        if isinstance(item, DecodingSettings):
            result.append(item)
            continue
        name, _, value = item.partition("=")
        if not name.strip():
            raise UsageError(f"empty strategy name in {text!r}" if isinstance(text, str) else "empty strategy name")
        strategy = parse_strategy(name)
        own = dict(options)
        if value.strip():
            key = "temperature" if strategy == "sample" else _OWN_PARAMETER.get(strategy)
            if key is None:
                raise UsageError(f"strategy {strategy!r} takes no value (got {item.strip()!r})")
            try:
                number: float | int = int(value) if key in ("top_k", "num_beams") else float(value)
            except ValueError:
                raise UsageError(f"{item.strip()!r}: {value.strip()!r} is not a number") from None
            own[key] = number
        result.append(settings_for(strategy, combine=False, **own))
    if not result:
        raise UsageError("no strategies given", hint=f"e.g. --strategies {','.join(DEFAULT_COMPARE)}")
    return result


# --------------------------------------------------------------------------------------------
# Results


@dataclasses.dataclass(frozen=True)
class GeneratedToken:
    """One generated token as it streams: its id, the text it adds, and the model's probability."""

    index: int
    token_id: int
    text: str
    prob: float


@dataclasses.dataclass(frozen=True)
class KVCacheComparison:
    """The same generation run with and without the KV cache."""

    uncached_seconds: float
    cached_seconds: float
    uncached_tokens_per_second: float
    cached_tokens_per_second: float
    speedup: float  # cached tokens/s / uncached tokens/s
    same_token_ids: bool


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
    stop_reason: str  # "eos" or "length"
    time_to_first_token: float | None  # seconds; None for beam search
    total_time: float  # seconds, prefill included
    kv_cache: bool
    kv_cache_comparison: KVCacheComparison | None = None

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
            "settings": dataclasses.asdict(s),
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

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt": self.prompt,
            "chat": self.chat,
            "results": self.results,
            "batched": self.batched,
            "batch_time": self.batch_time,
            "total_time": self.total_time,
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


def _causal(lm: LoadedModel) -> None:
    if lm.masked:
        raise UsageError(
            f"{lm.source.display_name} is a masked language model (BERT-style): it fills in [MASK], it does "
            "not write text left to right",
            hint="use a causal model such as gpt2 or the embedded default",
        )


def encode_prompt(lm: LoadedModel, prompt: str, *, chat: bool = False, system: str | None = None) -> torch.Tensor:
    """The prompt as input ids (1, prompt_tokens): plain, or through the tokenizer's chat template."""
    tok = lm.tokenizer
    if chat:
        if not getattr(tok, "chat_template", None):
            raise UsageError(
                f"{lm.source.display_name} has no chat template", hint="drop --chat to continue plain text"
            )
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        with loading.translate_errors(lm.source, what="chat template"):  # jinja's sandbox errors included
            encoded = tok.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        ids = encoded["input_ids"]
    else:
        ids = tok(prompt, return_tensors="pt")["input_ids"]
    if ids.shape[-1] == 0:
        bos = tok.bos_token_id if tok.bos_token_id is not None else getattr(lm.config, "bos_token_id", None)
        if bos is None:
            raise UsageError("the prompt is empty and the model has no beginning-of-text token to start from")
        import torch

        ids = torch.tensor([[bos]])
    return ids.to(lm.device)


def check_prompt(lm: LoadedModel, prompt: str, *, chat: bool = False, system: str | None = None) -> None:
    """Raise what generation would raise about this model and prompt, before anything is printed."""
    _causal(lm)
    prompt_length = encode_prompt(lm, prompt, chat=chat, system=system).shape[-1]
    room = _context_room(lm, prompt_length)
    if room is not None and room < 1:
        raise UsageError(f"the prompt ({prompt_length} tokens) fills the model's whole context")


def stop_token_ids(lm: LoadedModel, *, chat: bool = False) -> list[int]:
    """The ids that end generation: the generation config's EOS (as ``model.generate`` uses), and in
    chat mode also the tokenizer's EOS and well-known end-of-turn tokens."""
    ids: list[int] = []
    gen = getattr(lm.model, "generation_config", None)
    for value in (getattr(gen, "eos_token_id", None), getattr(lm.config, "eos_token_id", None)):
        if value is not None:
            ids.extend(value if isinstance(value, (list, tuple)) else [value])
            break
    if chat or not ids:
        if lm.tokenizer.eos_token_id is not None:
            ids.append(lm.tokenizer.eos_token_id)
    if chat:
        vocab = lm.tokenizer.get_vocab()
        ids.extend(vocab[t] for t in _END_OF_TURN if t in vocab)
    return sorted(set(int(i) for i in ids))


def logits_processors(settings: DecodingSettings) -> LogitsProcessorList:
    """The transformers processors for one strategy, in ``model.generate``'s order."""
    from transformers import (
        LogitsProcessorList,
        MinPLogitsWarper,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
        TypicalLogitsWarper,
    )

    procs = LogitsProcessorList()
    if settings.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
    if not settings.do_sample:
        return procs
    if settings.temperature != 1.0:
        procs.append(TemperatureLogitsWarper(settings.temperature))
    if settings.top_k is not None:
        procs.append(TopKLogitsWarper(settings.top_k))
    if settings.top_p is not None and settings.top_p < 1.0:
        procs.append(TopPLogitsWarper(settings.top_p))
    if settings.min_p is not None and settings.min_p > 0:
        procs.append(MinPLogitsWarper(settings.min_p))
    if settings.typical_p is not None and settings.typical_p < 1.0:
        procs.append(TypicalLogitsWarper(settings.typical_p))
    return procs


# --------------------------------------------------------------------------------------------
# The decode loop


@dataclasses.dataclass
class _Row:
    settings: DecodingSettings
    processors: Any
    generator: Any
    ids: list[int] = dataclasses.field(default_factory=list)
    probs: list[float] = dataclasses.field(default_factory=list)
    first_token_at: float | None = None
    finished_at: float | None = None
    stop_reason: str = "length"


def _supports(model: Any, name: str) -> bool:
    import inspect

    return name in inspect.signature(model.forward).parameters


def _context_room(lm: LoadedModel, prompt_length: int) -> int | None:
    limit = getattr(lm.config.get_text_config(), "max_position_embeddings", None)
    return None if not limit else int(limit) - prompt_length


def _decode_rows(
    lm: LoadedModel,
    prompt_ids: torch.Tensor,
    settings: Sequence[DecodingSettings],
    *,
    stop_ids: Sequence[int],
    kv_cache: bool = True,
    on_token: Callable[[int, int, float], None] | None = None,
) -> tuple[list[_Row], float]:
    """Greedy and sampling rows in one batch: one forward pass per step for all of them.

    All rows share the prompt, so the prompt runs once (batch 1) and its KV cache is repeated for
    every row. ``on_token(row, token_id, prob)`` is called as each token is chosen.
    """
    import torch
    from transformers import DynamicCache

    model = lm.model
    device = prompt_ids.device
    prompt_length = prompt_ids.shape[-1]
    rows = []
    for s in settings:
        generator = torch.Generator(device=device)
        generator.manual_seed(s.seed)
        rows.append(_Row(s, logits_processors(s), generator))
    max_new = max(s.max_new_tokens for s in settings)
    room = _context_room(lm, prompt_length)
    if room is not None and room < 1:
        raise UsageError(f"the prompt ({prompt_length} tokens) fills the model's whole context")
    keep = {"logits_to_keep": 1} if _supports(model, "logits_to_keep") else {}
    stop = set(stop_ids)

    start = time.perf_counter()
    active = list(range(len(rows)))  # row numbers still generating, in batch order
    seqs = prompt_ids.expand(len(rows), -1).clone()  # (rows, tokens): prompt + generated so far
    cache = DynamicCache(config=model.config) if kv_cache else None
    with torch.inference_mode():
        if kv_cache:
            out = model(input_ids=prompt_ids, attention_mask=torch.ones_like(prompt_ids), past_key_values=cache,
                        use_cache=True, **keep)
            logits = out.logits[:, -1].float().expand(len(rows), -1)  # (rows, vocab)
            if len(rows) > 1:
                cache.batch_repeat_interleave(len(rows))
        else:
            out = model(input_ids=seqs, attention_mask=torch.ones_like(seqs), use_cache=False, **keep)
            logits = out.logits[:, -1].float()  # (rows, vocab)
        step = 0
        while True:
            logprobs = torch.log_softmax(logits, dim=-1)  # (active rows, vocab): the model's own
            chosen = []
            for b, r in enumerate(active):
                row = rows[r]
                scores = row.processors(seqs[b : b + 1], logits[b : b + 1].clone())  # (1, vocab)
                if row.settings.do_sample:
                    probs = torch.softmax(scores, dim=-1)
                    token = int(torch.multinomial(probs[0], 1, generator=row.generator))
                else:
                    token = int(torch.argmax(scores[0]))
                chosen.append(token)
                row.ids.append(token)
                row.probs.append(float(logprobs[b, token].exp()))
                now = time.perf_counter() - start
                if row.first_token_at is None:
                    row.first_token_at = now
                if on_token is not None:
                    on_token(r, token, row.probs[-1])
                if token in stop:
                    row.stop_reason, row.finished_at = "eos", now
                elif len(row.ids) >= row.settings.max_new_tokens or (room is not None and len(row.ids) >= room):
                    row.stop_reason, row.finished_at = "length", now
            step += 1
            next_ids = torch.tensor(chosen, device=device)[:, None]  # (active rows, 1)
            seqs = torch.cat([seqs, next_ids], dim=-1)
            still = [b for b, r in enumerate(active) if rows[r].finished_at is None]
            if not still or step >= max_new:
                break
            if len(still) < len(active):
                index = torch.tensor(still, device=device)
                seqs, next_ids = seqs[index], next_ids[index]
                if cache is not None:
                    cache.batch_select_indices(index)
                active = [active[b] for b in still]
            if kv_cache:
                mask = torch.ones(seqs.shape, dtype=torch.long, device=device)  # (active rows, tokens)
                out = model(input_ids=next_ids, attention_mask=mask, past_key_values=cache, use_cache=True, **keep)
            else:
                out = model(input_ids=seqs, attention_mask=torch.ones_like(seqs), use_cache=False, **keep)
            logits = out.logits[:, -1].float()  # (active rows, vocab)
    total = time.perf_counter() - start
    for row in rows:
        if row.finished_at is None:
            row.finished_at = total
    return rows, total


def _beam_search(
    lm: LoadedModel, prompt_ids: torch.Tensor, settings: DecodingSettings, *, stop_ids: Sequence[int],
    kv_cache: bool = True,
) -> tuple[_Row, float]:
    """Beam search is ``model.generate(num_beams=...)``; the model's probability of each chosen token
    is then read from one teacher-forced forward pass over prompt + output."""
    import torch
    from transformers import GenerationConfig

    model = lm.model
    prompt_length = prompt_ids.shape[-1]
    room = _context_room(lm, prompt_length)
    if room is not None and room < 1:
        raise UsageError(f"the prompt ({prompt_length} tokens) fills the model's whole context")
    max_new = settings.max_new_tokens if room is None else min(settings.max_new_tokens, room)
    pad = getattr(model.generation_config, "pad_token_id", None)
    if pad is None:
        pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else stop_ids[0] if stop_ids else 0
    config = GenerationConfig(
        num_beams=settings.num_beams,
        do_sample=False,
        max_new_tokens=max_new,
        repetition_penalty=settings.repetition_penalty,
        eos_token_id=list(stop_ids) or None,
        pad_token_id=pad,
        bos_token_id=getattr(model.generation_config, "bos_token_id", None),
        use_cache=kv_cache,
    )
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids), generation_config=config)
        total = time.perf_counter() - start
        ids = out[0, prompt_length:].tolist()
        stop = set(stop_ids)
        reason = "length"
        for i, t in enumerate(ids):
            if t in stop:
                ids, reason = ids[: i + 1], "eos"
                break
        row = _Row(settings, None, None, ids=ids, stop_reason=reason, finished_at=total)
        if ids:
            full = torch.cat([prompt_ids, torch.tensor([ids], device=prompt_ids.device)], dim=-1)  # (1, tokens)
            logits = model(input_ids=full, attention_mask=torch.ones_like(full), use_cache=False).logits
            logprobs = torch.log_softmax(logits[0, prompt_length - 1 : -1].float(), dim=-1)  # (new tokens, vocab)
            row.probs = logprobs.gather(-1, torch.tensor(ids, device=logprobs.device)[:, None])[:, 0].exp().tolist()
    return row, total


def _token_texts(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[str]]:
    """The decoded text and, per token, the text it added (special tokens such as EOS add nothing)."""
    pieces, previous = [], ""
    for i in range(len(ids)):
        text = tokenizer.decode(ids[: i + 1], skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for the next token
            pieces.append("")
            continue
        pieces.append(text[len(previous) :] if text.startswith(previous) else text)
        previous = text
    return tokenizer.decode(list(ids), skip_special_tokens=True), pieces


class _Streamer:
    """Turns chosen token ids into text pieces as they come (incremental detokenization)."""

    def __init__(self, tokenizer: Any, callback: Callable[[GeneratedToken], None]):
        self.tokenizer, self.callback = tokenizer, callback
        self.ids: list[int] = []
        self.printed = ""

    def __call__(self, token_id: int, prob: float) -> None:
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        piece = ""
        if not text.endswith("\ufffd"):
            piece = text[len(self.printed) :] if text.startswith(self.printed) else ""
            self.printed = text if text.startswith(self.printed) else self.printed
        self.callback(GeneratedToken(len(self.ids) - 1, token_id, piece, prob))


def _result(
    lm: LoadedModel, prompt: str, chat: bool, row: _Row, prompt_tokens: int, *, kv_cache: bool,
    ttft: float | None, comparison: KVCacheComparison | None = None,
) -> GenerationResult:
    text, pieces = _token_texts(lm.tokenizer, row.ids)
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
    )


# --------------------------------------------------------------------------------------------
# The API


def _prepare(
    prompt: str,
    model: str | LoadedModel | None,
    *,
    chat: bool,
    system: str | None,
    revision: str | None,
    gguf_file: str | None,
    device: str,
    dtype: str,
    trust_remote_code: bool,
) -> tuple[LoadedModel, torch.Tensor, list[int]]:
    """What generate and compare start from: the causal model, the prompt ids (1, prompt tokens)
    and the stop ids."""
    if system is not None and not chat:
        raise UsageError("--system needs --chat")
    lm = loading.load(
        model, revision=revision, gguf_file=gguf_file, device=device, dtype=dtype,
        trust_remote_code=trust_remote_code,
    )
    _causal(lm)
    return lm, encode_prompt(lm, prompt, chat=chat, system=system), stop_token_ids(lm, chat=chat)


def generate(
    prompt: str,
    *,
    model: str | LoadedModel | None = None,
    strategy: str | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    typical_p: float | None = None,
    num_beams: int | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    repetition_penalty: float = 1.0,
    seed: int = 0,
    chat: bool = False,
    system: str | None = None,
    kv_cache: bool = True,
    on_token: Callable[[GeneratedToken], None] | None = None,
    revision: str | None = None,
    gguf_file: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
) -> GenerationResult:
    """Generate text from PROMPT with one decoding strategy.

    ``strategy`` is greedy, sample, top-k, top-p, min-p, typical or beam; left out, it follows
    from the options (``top_p=0.9`` -> top-p; nothing -> greedy). The same seed always gives the
    same text. ``on_token`` receives each token as it is chosen (not for beam search, whose best
    sequence is known only at the end). ``kv_cache=False`` recomputes the whole sequence every step,
    then runs again with the cache and reports the speed-up in ``kv_cache_comparison``.
    """
    settings = settings_for(
        strategy, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p,
        num_beams=num_beams, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty, seed=seed,
    )
    lm, prompt_ids, stops = _prepare(
        prompt, model, chat=chat, system=system, revision=revision, gguf_file=gguf_file, device=device,
        dtype=dtype, trust_remote_code=trust_remote_code,
    )

    def run(cache: bool, callback: Callable[[GeneratedToken], None] | None) -> tuple[_Row, float | None]:
        if settings.strategy == "beam":
            row, _ = _beam_search(lm, prompt_ids, settings, stop_ids=stops, kv_cache=cache)
            return row, None
        streamer = _Streamer(lm.tokenizer, callback) if callback is not None else None
        hook = (lambda r, token, prob: streamer(token, prob)) if streamer is not None else None
        rows, _ = _decode_rows(lm, prompt_ids, [settings], stop_ids=stops, kv_cache=cache, on_token=hook)
        return rows[0], rows[0].first_token_at

    row, ttft = run(kv_cache, on_token)
    comparison = None
    if not kv_cache:
        cached, _ = run(True, None)
        un_tps = len(row.ids) / row.finished_at if row.finished_at else float("nan")
        c_tps = len(cached.ids) / cached.finished_at if cached.finished_at else float("nan")
        comparison = KVCacheComparison(
            uncached_seconds=float(row.finished_at or 0.0),
            cached_seconds=float(cached.finished_at or 0.0),
            uncached_tokens_per_second=un_tps,
            cached_tokens_per_second=c_tps,
            speedup=c_tps / un_tps if un_tps else float("nan"),
            same_token_ids=cached.ids == row.ids,
        )
    return _result(lm, prompt, chat, row, prompt_ids.shape[-1], kv_cache=kv_cache, ttft=ttft, comparison=comparison)


def compare(
    prompt: str,
    *,
    model: str | LoadedModel | None = None,
    strategies: str | Sequence[str | DecodingSettings] = DEFAULT_COMPARE,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    typical_p: float | None = None,
    num_beams: int | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    repetition_penalty: float = 1.0,
    seed: int = 0,
    chat: bool = False,
    system: str | None = None,
    revision: str | None = None,
    gguf_file: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
) -> ComparisonResult:
    """Run several strategies on one prompt; greedy and sampling rows share one batch.

    Each option sets its own strategy's value (``top_p`` for the top-p row, ``temperature`` for
    every sampling row); ``"top-p=0.5"`` in ``strategies`` sets one row's value. Every row equals
    what ``generate`` gives with the same settings and seed.
    """
    specs = parse_strategy_list(
        strategies, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p,
        num_beams=num_beams, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty, seed=seed,
    )
    lm, prompt_ids, stops = _prepare(
        prompt, model, chat=chat, system=system, revision=revision, gguf_file=gguf_file, device=device,
        dtype=dtype, trust_remote_code=trust_remote_code,
    )
    start = time.perf_counter()
    batched = [s for s in specs if s.strategy != "beam"]
    by_spec: dict[int, GenerationResult] = {}
    batch_time = 0.0
    if batched:
        rows, batch_time = _decode_rows(lm, prompt_ids, batched, stop_ids=stops)
        positions = [i for i, s in enumerate(specs) if s.strategy != "beam"]
        for i, row in zip(positions, rows):
            by_spec[i] = _result(lm, prompt, chat, row, prompt_ids.shape[-1], kv_cache=True, ttft=row.first_token_at)
    for i, s in enumerate(specs):
        if s.strategy == "beam":
            row, _ = _beam_search(lm, prompt_ids, s, stop_ids=stops)
            by_spec[i] = _result(lm, prompt, chat, row, prompt_ids.shape[-1], kv_cache=True, ttft=None)
    return ComparisonResult(
        model=lm.source.display_name,
        prompt=prompt,
        chat=chat,
        results=[by_spec[i] for i in range(len(specs))],
        batched=[s.label for s in batched],
        batch_time=batch_time,
        total_time=time.perf_counter() - start,
    )
