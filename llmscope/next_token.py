"""What the model would say next: the next-token distribution, the knobs that reshape it (or, for
masked LMs, what each mask token should be), and the result types of ``next-token``.

Every probability is ``softmax(model(input_ids).logits[0, -1])`` in the model's dtype. Temperature
and top-p are transformers' own logits warpers (``llmscope.sampling``), applied in the order
``generate`` applies them, so the "sampled" column shows exactly what sampling draws from. ``top_k``
is how many candidates are shown: it never filters what is sampled. ``steps`` decodes on the KV
cache (``llmscope.stepping``) exactly as ``generate`` does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from llmscope import loading, prompts, sampling
from llmscope.errors import UsageError
from llmscope.loading import LoadedModel

if TYPE_CHECKING:  # pragma: no cover
    import torch

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
    prob_temperature: float | None = None  # after temperature scaling (only when temperature != 1)
    kept_top_k: bool = True  # among the top-k shown (always: top-k only chooses the rows)
    kept_top_p: bool | None = None  # top-p alone keeps it (None without top-p)
    prob_sampling: float | None = None  # what sampling draws it with: temperature and top-p applied


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
    top_k_kept: int  # candidates shown (top-k is what the table shows; it does not filter sampling)
    top_p_kept: int | None  # tokens top-p alone keeps (over the whole vocabulary)
    sampling_kept: int  # tokens sampling can draw, every warper applied
    shown: list[Shown]


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
    temperature: float
    top_k: int
    top_p: float | None
    strategy: str
    seed: int
    distribution: Distribution | None  # causal: the next token after the prompt
    masks: list[MaskPrediction]  # masked LMs
    steps: list[Step]
    generated_text: str  # the decoded continuation of the steps
    stop_reason: str | None  # "eos", "steps", "stopped", "context" (interactive), None without steps
    warnings: list[str] = dataclasses.field(default_factory=list)  # about the prompt (e.g. two BOS tokens)

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
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "warnings": self.warnings,
        }
        if first is not None and (self.temperature != 1.0 or self.top_p is not None):
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
                strategy=self.strategy,
                seed=self.seed,
                generated_text=self.generated_text,
                stop_reason=self.stop_reason,
            )
        return out


# --------------------------------------------------------------------------------------------
# One distribution


def sampled_scores(logits: torch.Tensor, input_ids: torch.Tensor, *, temperature: float = 1.0,
                   top_p: float | None = None) -> torch.Tensor:
    """(vocab,) float scores after the temperature and top-p, as ``--strategy sample`` draws from them
    (filtered tokens are -inf). The processors are ``llmscope.sampling``'s."""
    settings = sampling.DecodingSettings("sample", temperature=temperature, top_p=top_p)
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
    top_k: int,
    temperature: float = 1.0,
    top_p: float | None = None,
    show: Sequence[str] = (),
    show_logprobs: dict[str, tuple[float | None, float | None]] | None = None,
) -> Distribution:
    """The candidate table for one position: its ``top_k`` most likely tokens. ``logits``: (vocab,)
    in the model's dtype; ``input_ids`` (1, tokens) the text before (repetition-aware processors)."""
    import torch

    logits = logits.detach()
    logprobs = torch.log_softmax(logits, dim=-1)  # (vocab,) in the model's dtype
    probs = torch.softmax(logits, dim=-1)
    k = min(top_k, probs.shape[-1])
    top = torch.topk(probs, k)
    cumulative = torch.cumsum(top.values.double(), dim=0)
    knobs = temperature != 1.0 or top_p is not None
    tempered = torch.log_softmax(sampled_scores(logits, input_ids, temperature=temperature), dim=-1)  # (vocab,)
    final = sampled_scores(logits, input_ids, temperature=temperature, top_p=top_p)  # (vocab,)
    sampling_probs = torch.softmax(final, dim=-1)
    kept = torch.isfinite(final)
    candidates = [
        Candidate(
            token=prompts.token_text(lm.tokenizer, tid),
            id=tid,
            prob=p,
            logprob=float(logprobs[tid]),
            rank=i + 1,
            cumulative_prob=float(cumulative[i]),
            prob_temperature=float(tempered[tid].exp()) if temperature != 1.0 else None,
            kept_top_k=True,
            kept_top_p=bool(kept[tid]) if top_p is not None else None,
            prob_sampling=float(sampling_probs[tid]) if knobs else None,
        )
        for i, (p, tid) in enumerate(zip(top.values.tolist(), top.indices.tolist()))
    ]
    entropy = _entropy(logprobs)
    return Distribution(
        position=position,
        candidates=candidates,
        entropy=entropy,
        entropy_bits=entropy / math.log(2),
        entropy_temperature=_entropy(tempered) if temperature != 1.0 else None,
        top_k_kept=k,
        top_p_kept=int(kept.sum()) if top_p is not None else None,
        sampling_kept=int(kept.sum()),
        shown=[_shown(lm, text, probs, logprobs, (show_logprobs or {}).get(text, (None, None))) for text in show],
    )


def _shown(lm: LoadedModel, text: str, probs: torch.Tensor, logprobs: torch.Tensor,
           sequence: tuple[float | None, float | None]) -> Shown:
    """What ``--show TEXT`` reports: its first token's probability and rank, and the whole text's."""
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise UsageError(f"--show {text!r}: the text has no tokens")
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


def _sequence_logprob(lm: LoadedModel, prompt_ids: list[int], ids: list[int]) -> float:
    """log P(ids | prompt) by teacher forcing: one forward pass over prompt + ids."""
    import torch

    full = torch.tensor([prompt_ids + ids], device=lm.device)  # (1, tokens)
    with torch.inference_mode():
        logits = lm.model(full).logits[0]  # (tokens, vocab)
    return float(sampling.token_logprobs(logits[len(prompt_ids) - 1 : -1], ids).double().sum())


# --------------------------------------------------------------------------------------------
# The core function


def next_token(
    prompt: str,
    *,
    model: loading.ModelLike = None,
    top_k: int = 10,
    temperature: float = 1.0,
    top_p: float | None = None,
    show: Sequence[str] = (),
    steps: int = 0,
    strategy: str = "greedy",
    chat: bool = False,
    system: str | None = None,
    seed: int = 0,
    revision: str | None = None,
    gguf_file: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
) -> NextTokenResult:
    """The model's next-token distribution after PROMPT (or each mask's, for a masked LM).

    ``top_k`` is how many candidates are shown. With ``steps`` > 0, decode that many tokens on the
    KV cache exactly as ``generate`` would (``greedy``; or ``sample`` with the temperature, top-p and
    seed), stopping early at a stop token as ``generate`` does (with ``chat``, end-of-turn tokens too).
    """
    import torch

    from llmscope.stepping import Stepper, check_knobs, result_from

    check_knobs(top_k=top_k, temperature=temperature, top_p=top_p, steps=steps, strategy=strategy, seed=seed)
    prompts.check_prompt_options(prompt, chat=chat, system=system)
    lm = loading.load(model, revision=revision, gguf_file=gguf_file, device=device, dtype=dtype,
                      trust_remote_code=trust_remote_code)
    if lm.masked:
        if steps:
            raise UsageError("--steps needs a causal LM; a masked LM fills in its mask tokens instead")
        return _masked(lm, prompt, top_k=top_k, temperature=temperature, top_p=top_p, show=show, seed=seed,
                       strategy=strategy, chat=chat)
    encoded = prompts.encode_for(lm, prompt, chat=chat, system=system, extra=steps, extra_what="steps")
    ids = encoded.ids
    seq: dict[str, tuple[float | None, float | None]] = {}
    for s in show:
        sid = lm.tokenizer(s, add_special_tokens=False)["input_ids"]
        if len(sid) > 1:
            lp = _sequence_logprob(lm, ids, list(sid))
            seq[s] = (math.exp(lp), lp)
    run = Stepper(lm, ids, top_k=top_k, temperature=temperature, top_p=top_p, strategy=strategy, seed=seed,
                  chat=chat)
    first = run.distribution
    if show:
        first = distribution(lm, run.logits, torch.tensor([ids], device=run.logits.device), position=len(ids) - 1,
                             top_k=top_k, temperature=temperature, top_p=top_p, show=show, show_logprobs=seq)
    stop = run.run(steps) if steps else None
    return result_from(run, prompt=prompt, text=encoded.text, initial=first, seed=seed, stop_reason=stop,
                       warnings=encoded.warnings)


def _masked(lm: LoadedModel, prompt: str, *, top_k: int, temperature: float, top_p: float | None,
            show: Sequence[str], seed: int, strategy: str, chat: bool) -> NextTokenResult:
    import torch

    tokenizer = lm.tokenizer
    mask = tokenizer.mask_token
    if chat:
        raise UsageError("--chat is for chat (causal) models; this is a masked LM")
    if mask is None or tokenizer.mask_token_id is None:
        raise UsageError(f"{lm.source.display_name}: a masked LM whose tokenizer has no mask token")
    encoded = prompts.encode_for(lm, prompt)
    ids = encoded.ids
    positions = [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id]
    if not positions:
        raise UsageError(
            f"the prompt has no {mask} token: this is a masked LM, which predicts mask tokens",
            hint=f"put {mask} where a word should be predicted, e.g. 'The capital of France is {mask}.'",
        )
    input_ids = torch.tensor([ids], device=lm.device)  # (1, tokens)
    with torch.inference_mode():
        logits = lm.model(input_ids=input_ids).logits[0]  # (tokens, vocab)
    masks = [
        MaskPrediction(
            position=p,
            distribution=distribution(lm, logits[p], input_ids, position=p, top_k=top_k, temperature=temperature,
                                      top_p=top_p, show=show),
        )
        for p in positions
    ]
    return NextTokenResult(
        model=lm.source.display_name,
        kind="masked",
        prompt=prompt,
        text=encoded.text,
        input_ids=ids,
        input_tokens=[prompts.token_text(tokenizer, t) for t in ids],
        dtype=lm.dtype,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        strategy=strategy,
        seed=seed,
        distribution=None,
        masks=masks,
        steps=[],
        generated_text="",
        stop_reason=None,
        warnings=list(encoded.warnings),
    )


# The name in ``llmscope``'s lazy API: ``llmscope.next_token`` is this module once it is imported.
predict_next_token = next_token
