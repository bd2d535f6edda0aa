"""The next-token distribution and the result types of ``next-token`` (and of stepping, which shares them).

Every probability is ``softmax(logits)`` of the model's own logits; the "sampled" column applies
transformers' logits warpers (``llmscope.decoding.sampling``) in the order ``generate`` applies them.
"""

from __future__ import annotations

import dataclasses
import math
import re
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from llmscope.text import prompts
from llmscope.decoding import sampling
from llmscope.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from llmscope.decoding.sampling import DecodingSettings
    from llmscope.loading.model import LoadedModel

DEFAULT_ROWS = 10  # candidates a table shows

# --------------------------------------------------------------------------------------------
# Result types


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One token of the distribution. ``prob`` / ``logprob`` are the model's own (temperature 1)."""

    token: str  # decoded text of the token
    id: int
    prob: float
    logprob: float
    rank: int  # 1 = most likely, over the whole vocabulary
    cumulative_prob: float  # sum of prob over ranks 1..rank
    prob_temperature: float | None = None  # after temperature scaling (only when sampling at T != 1)
    kept_top_k: bool | None = None  # the top-k filter keeps it (None without top-k)
    kept_top_p: bool | None = None  # top-p keeps it, after the temperature (None without top-p)
    prob_sampling: float | None = None  # what sampling draws it with, every filter applied (None: not sampling)
    special: bool = False  # a special token of the tokenizer (or an added marker of another modality): not text


@dataclasses.dataclass(frozen=True)
class Shown:
    """A text the user asked about (``--show``): the probability that it comes next."""

    text: str
    ids: list[int]
    tokens: list[str]
    prob: float  # of its first token
    logprob: float
    rank: int  # of its first token
    sequence_prob: float | None  # all its tokens in a row (several tokens only)
    sequence_logprob: float | None


@dataclasses.dataclass(frozen=True)
class Distribution:
    """The candidates at one position, with the distribution's summary numbers."""

    position: int  # index in the input ids the prediction is made from (causal) or for (masked)
    candidates: list[Candidate]
    entropy: float  # nats, temperature 1
    entropy_bits: float
    entropy_temperature: float | None  # nats, after temperature scaling
    top_k_kept: int | None  # tokens the top-k filter keeps (None without top-k)
    top_p_kept: int | None  # tokens top-p keeps after the temperature (over the whole vocabulary)
    sampling_kept: int  # tokens the pick chooses from: every filter applied (1 for greedy)
    shown: list[Shown]
    rows: int = DEFAULT_ROWS  # candidates shown


@dataclasses.dataclass(frozen=True)
class Choice:
    """The token (or typed text) one decoding step continued with."""

    token: str
    id: int
    ids: list[int]  # one id, or several for typed text
    prob: float  # model probability (product over ids for typed text)
    logprob: float
    rank: int | None  # rank of the first id in the distribution
    typed: bool = False  # typed by the person (interactive), not picked from the model


@dataclasses.dataclass(frozen=True)
class Step:
    chosen: Choice
    candidates: list[Candidate]
    entropy: float

    def to_json(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "candidates": self.candidates, "entropy": self.entropy}


@dataclasses.dataclass(frozen=True)
class MaskPrediction:
    """A masked LM's prediction for one mask token."""

    position: int
    distribution: Distribution


@dataclasses.dataclass(frozen=True)
class NextTokenResult:
    model: str
    kind: Literal["causal", "masked"]
    prompt: str  # as given
    text: str  # what the model read (after the chat template)
    input_ids: list[int]
    input_tokens: list[str]
    dtype: str
    settings: DecodingSettings  # how a step picks, and what reshapes the distribution shown
    rows: int  # candidates shown
    distribution: Distribution | None  # causal: the next token after the prompt
    masks: list[MaskPrediction]  # masked LMs
    steps: list[Step]
    generated_text: str  # the decoded continuation of the steps
    stop_reason: str | None  # "eos", "steps", "stopped", "context" (interactive), None without steps
    warnings: list[str] = dataclasses.field(default_factory=list)  # about the prompt (e.g. two BOS tokens)

    @property
    def strategy(self) -> str:
        return self.settings.strategy

    @property
    def temperature(self) -> float:
        return self.settings.temperature if self.settings.do_sample else 1.0

    @property
    def reshaped(self) -> bool:
        """Whether the settings change the distribution (sampling with a temperature or a filter)."""
        s = self.settings
        return s.do_sample and (s.temperature != 1.0 or any(
            v is not None for v in (s.top_k, s.top_p, s.min_p, s.typical_p)))

    @property
    def candidates(self) -> list[Candidate]:
        if self.distribution is not None:
            return self.distribution.candidates
        return self.masks[0].distribution.candidates if self.masks else []

    def to_json(self) -> dict[str, Any]:
        first = self.distribution or (self.masks[0].distribution if self.masks else None)
        out: dict[str, Any] = {
            "candidates": self.candidates,
            "entropy": first.entropy if first else None,
            "entropy_bits": first.entropy_bits if first else None,
            "shown": first.shown if first else [],
            "model": self.model,
            "kind": self.kind,
            "prompt": self.prompt,
            "input_ids": self.input_ids,
            "dtype": self.dtype,
            "strategy": self.strategy,
            "temperature": self.temperature,
            "top_k": self.settings.top_k,
            "top_p": self.settings.top_p,
            "min_p": self.settings.min_p,
            "typical_p": self.settings.typical_p,
            "seed": self.settings.seed,
            "rows": self.rows,
            "warnings": self.warnings,
        }
        if first is not None and self.reshaped:
            out.update(
                entropy_temperature=first.entropy_temperature,
                top_k_kept=first.top_k_kept,
                top_p_kept=first.top_p_kept,
                sampling_kept=first.sampling_kept,
            )
        if self.kind == "masked":
            out["masks"] = [
                {"position": m.position, "candidates": m.distribution.candidates, "entropy": m.distribution.entropy}
                for m in self.masks
            ]
        if self.steps or self.stop_reason:
            out.update(
                steps=self.steps,
                generated_text=self.generated_text,
                stop_reason=self.stop_reason,
            )
        return out


# --------------------------------------------------------------------------------------------
# Special tokens

# An added token that marks another modality's input: <start_of_image>, <image>, <audio>, [multimodal].
# A GGUF conversion can leave these unmarked (user-defined, not control), so their names tell.
_MODALITY = re.compile(r"^[<\[][^<>\[\]]*?(?<![a-z])(image|video|audio|vision|speech|multimodal)(?![a-z])",
                       re.IGNORECASE)
_special_cache: weakref.WeakKeyDictionary[Any, tuple[int, frozenset[int]]] = weakref.WeakKeyDictionary()


def other_modality(token: str) -> str | None:
    """The modality an added token such as ``<start_of_image>`` marks ('image', 'audio', ...), or None."""
    match = _MODALITY.match(token.strip()) if token.strip()[-1:] in (">", "]") else None
    return match.group(1).lower() if match else None


def special_ids(tokenizer: Any) -> frozenset[int]:
    """Ids a candidate is ``special`` for: the tokenizer's special tokens (``all_special_ids`` and the added
    tokens marked special), and its added tokens that mark another modality (``<start_of_image>``).
    Computed once per tokenizer (and again when its vocabulary grows)."""
    size = len(tokenizer)
    try:
        cached = _special_cache.get(tokenizer)
    except TypeError:  # not weakly referenceable: computed each time
        cached = None
    if cached is not None and cached[0] == size:
        return cached[1]
    ids = set(prompts.special_ids(tokenizer))
    for index, added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        if other_modality(str(getattr(added, "content", added))):
            ids.add(int(index))
    found = frozenset(ids)
    try:
        _special_cache[tokenizer] = (size, found)
    except TypeError:
        pass
    return found


# --------------------------------------------------------------------------------------------
# One distribution


def processed_scores(logits: torch.Tensor, input_ids: torch.Tensor, settings: DecodingSettings) -> torch.Tensor:
    """(vocab,) float scores after SETTINGS' processors, as the pick sees them (filtered tokens are -inf).
    The processors are ``llmscope.decoding.sampling``'s, in ``model.generate``'s order."""
    return sampling.logits_processors(settings)(input_ids, logits.float()[None].clone())[0]


def _entropy(logprobs: torch.Tensor) -> float:
    """Entropy in nats of a distribution given as (vocab,) log-probabilities."""
    return float(-(logprobs.double().exp() * logprobs.double()).nan_to_num(0.0).sum())


def distribution(
    lm: LoadedModel,
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    *,
    position: int,
    rows: int = DEFAULT_ROWS,
    settings: DecodingSettings | None = None,
    show: Sequence[str] = (),
    show_logprobs: dict[str, tuple[float | None, float | None]] | None = None,
) -> Distribution:
    """The candidate table for one position: its ``rows`` most likely tokens, and how SETTINGS reshape
    the distribution (each filter's verdict, what sampling draws with). ``logits``: (vocab,) in the
    model's dtype; ``input_ids`` (1, tokens) the text before (repetition-aware processors)."""
    import torch

    settings = settings or sampling.settings_for("greedy")
    logits = logits.detach()
    logprobs = torch.log_softmax(logits, dim=-1)  # (vocab,) in the model's dtype
    probs = torch.softmax(logits, dim=-1)
    k = min(rows, probs.shape[-1])
    top = torch.topk(probs, k)
    cumulative = torch.cumsum(top.values.double(), dim=0)
    sampled = settings.do_sample
    t = settings.temperature if sampled else 1.0
    only_t = dataclasses.replace(settings, top_k=None, top_p=None, min_p=None, typical_p=None)
    tempered = torch.log_softmax(processed_scores(logits, input_ids, only_t), dim=-1)  # (vocab,)
    final = processed_scores(logits, input_ids, settings)  # (vocab,): what the pick sees
    sampling_probs = torch.softmax(final, dim=-1)
    kept = torch.isfinite(final)
    by_k = by_p = None
    if sampled and settings.top_k is not None:
        by_k = torch.isfinite(processed_scores(logits, input_ids, dataclasses.replace(only_t, top_k=settings.top_k)))
    if sampled and settings.top_p is not None:
        by_p = torch.isfinite(processed_scores(logits, input_ids, dataclasses.replace(only_t, top_p=settings.top_p)))
    special = special_ids(lm.tokenizer)
    candidates = [
        Candidate(
            token=prompts.token_text(lm.tokenizer, tid),
            id=tid,
            prob=p,
            logprob=float(logprobs[tid]),
            rank=i + 1,
            cumulative_prob=float(cumulative[i]),
            prob_temperature=float(tempered[tid].exp()) if t != 1.0 else None,
            kept_top_k=bool(by_k[tid]) if by_k is not None else None,
            kept_top_p=bool(by_p[tid]) if by_p is not None else None,
            prob_sampling=float(sampling_probs[tid]) if sampled else None,
            special=tid in special,
        )
        for i, (p, tid) in enumerate(zip(top.values.tolist(), top.indices.tolist()))
    ]
    entropy = _entropy(logprobs)
    return Distribution(
        position=position,
        candidates=candidates,
        entropy=entropy,
        entropy_bits=entropy / math.log(2),
        entropy_temperature=_entropy(tempered) if t != 1.0 else None,
        top_k_kept=int(by_k.sum()) if by_k is not None else None,
        top_p_kept=int(by_p.sum()) if by_p is not None else None,
        sampling_kept=int(kept.sum()) if sampled else 1,
        shown=[_shown(lm, text, probs, logprobs, (show_logprobs or {}).get(text, (None, None))) for text in show],
        rows=k,
    )


def _shown(lm: LoadedModel, text: str, probs: torch.Tensor, logprobs: torch.Tensor,
           sequence: tuple[float | None, float | None]) -> Shown:
    """What ``--show TEXT`` reports: its first token's probability and rank, and the whole text's."""
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise UsageError(f"`show={text!r}`: the text has no tokens")
    first = ids[0]
    return Shown(
        text=text,
        ids=list(ids),
        tokens=[prompts.token_text(lm.tokenizer, t) for t in ids],
        prob=float(probs[first]),
        logprob=float(logprobs[first]),
        rank=int((probs > probs[first]).sum()) + 1,
        sequence_prob=sequence[0],
        sequence_logprob=sequence[1],
    )


def sequence_logprob(lm: LoadedModel, prompt_ids: list[int], ids: list[int]) -> float:
    """log P(ids | prompt) by teacher forcing: one forward pass over prompt + ids."""
    import torch

    full = torch.tensor([prompt_ids + ids], device=lm.device)  # (1, tokens)
    with torch.inference_mode():
        logits = lm.model(full).logits[0]  # (tokens, vocab)
    return float(sampling.token_logprobs(logits[len(prompt_ids) - 1 : -1], ids).double().sum())
