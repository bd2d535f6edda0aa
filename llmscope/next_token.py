"""What the model would say next: the next-token distribution, the knobs that reshape it, and decoding
step by step on the KV cache (or, for masked LMs, what each mask token should be).

Every probability is ``softmax(model(input_ids).logits[0, -1])`` in the model's dtype. Temperature,
top-k and top-p are transformers' own logits warpers, applied in the order ``generate`` applies them,
so the "kept" marks show exactly what sampling would draw from. ``steps`` feeds one token per
forward pass into a ``DynamicCache``: the prompt is computed once, as in ``model.generate``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from llmscope import loading
from llmscope.errors import UsageError
from llmscope.loading import LoadedModel

if TYPE_CHECKING:  # pragma: no cover
    import torch

Strategy = Literal["greedy", "sample"]
STRATEGIES = ("greedy", "sample")


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
    kept_top_k: bool = True  # top-k (on the tempered scores) keeps it
    kept_top_p: bool | None = None  # top-p alone keeps it (None without top-p)
    prob_sampling: float | None = None  # what sampling draws it with: temperature, top-k, top-p applied


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
    top_k_kept: int  # tokens top-k keeps
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
    stop_reason: str | None  # "eos", "steps", "stopped" (interactive), None without steps

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
# Validation shared with the commands


def check_knobs(
    *, top_k: int, temperature: float, top_p: float | None, steps: int, strategy: str, seed: int = 0
) -> None:
    """Raise UsageError for values out of range (called before any model loads)."""
    if not 0 <= seed <= 2**64 - 1:
        raise UsageError(f"--seed {seed}: must be 0 or more, and below 2**64")
    if top_k < 1:
        raise UsageError(f"--top-k {top_k}: must be at least 1")
    from llmscope.decoding import MIN_TEMPERATURE

    if not (temperature > 0 and math.isfinite(temperature)):
        raise UsageError(f"--temperature {temperature}: must be above 0", hint="for always the top token use greedy")
    if temperature < MIN_TEMPERATURE:  # the scaled logits would overflow to inf, the probabilities to NaN
        raise UsageError(f"--temperature {temperature}: must be at least {MIN_TEMPERATURE:g}",
                         hint="for always the top token use greedy")
    if top_p is not None and not (0 < top_p <= 1):
        raise UsageError(f"--top-p {top_p}: must be in (0, 1]")
    if steps < 0:
        raise UsageError(f"--steps {steps}: must be 0 or more")
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown strategy {strategy!r}", hint=f"use one of: {', '.join(STRATEGIES)}")


def check_prompt(prompt: str) -> None:
    if prompt == "":
        raise UsageError("the prompt is empty", hint="give some text for the model to read")


# --------------------------------------------------------------------------------------------
# Prompts


def context_length(lm: LoadedModel) -> int | None:
    config = lm.config.get_text_config(decoder=True) if hasattr(lm.config, "get_text_config") else lm.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_context(lm: LoadedModel, n_tokens: int) -> None:
    """Refuse a prompt longer than the model's context (positions past it are out of range or untrained)."""
    limit = context_length(lm)
    if limit is not None and n_tokens > limit:
        raise UsageError(
            f"the prompt is {n_tokens:,} tokens, longer than the model's context of {limit:,} tokens",
            hint="shorten the prompt",
        )


def encode_prompt(
    lm: LoadedModel, prompt: str, *, chat: bool = False, system: str | None = None, extra_tokens: int = 0
) -> tuple[str, list[int]]:
    """The text the model reads and its ids: the chat template applied when asked; checked for length."""
    check_prompt(prompt)
    tokenizer = lm.tokenizer
    if system is not None and not chat:
        raise UsageError("--system needs --chat")
    if chat:
        if lm.masked:
            raise UsageError("--chat is for chat (causal) models; this is a masked LM")
        if not getattr(tokenizer, "chat_template", None):
            raise UsageError(
                f"{lm.source.display_name} has no chat template",
                hint="drop --chat, or use a chat/instruct model",
            )
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        with loading.translate_errors(lm.source, what="chat template"):
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    else:
        text = prompt
        ids = tokenizer(text)["input_ids"]
    if not ids:
        raise UsageError("the prompt has no tokens", hint="give some text for the model to read")
    limit = context_length(lm)
    if limit is not None and len(ids) + extra_tokens > limit:
        more = f" plus {extra_tokens} steps" if extra_tokens else ""
        raise UsageError(
            f"the prompt is {len(ids):,} tokens{more}, longer than the model's context of {limit:,} tokens",
            hint="shorten the prompt" + (" or use fewer --steps" if extra_tokens else ""),
        )
    return text, list(ids)


def token_text(tokenizer: Any, token_id: int) -> str:
    """A token as text: decoded; the raw vocabulary piece when decoding gives nothing."""
    text = tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if text == "" or "\ufffd" in text:
        piece = tokenizer.convert_ids_to_tokens(token_id)
        return piece if isinstance(piece, str) and piece else text
    return text


# --------------------------------------------------------------------------------------------
# One distribution


def warpers(temperature: float, top_k: int, top_p: float | None) -> list[Any]:
    """transformers' warpers in generate's order: temperature, top-k, top-p."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    out: list[Any] = []
    if temperature != 1.0:
        out.append(TemperatureLogitsWarper(temperature))
    out.append(TopKLogitsWarper(top_k))
    if top_p is not None and top_p < 1.0:
        out.append(TopPLogitsWarper(top_p))
    return out


def sampling_scores(logits: torch.Tensor, input_ids: torch.Tensor, *, temperature: float, top_k: int,
                    top_p: float | None) -> torch.Tensor:
    """(1, vocab) scores after every warper; filtered tokens are -inf."""
    scores = logits
    for w in warpers(temperature, top_k, top_p):
        scores = w(input_ids, scores)
    return scores


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
    """The candidate table for one position. ``logits``: (vocab,) in the model's dtype."""
    import torch
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    logits = logits.detach()
    row = logits.unsqueeze(0)  # (1, vocab)
    logprobs = torch.log_softmax(logits, dim=-1)  # (vocab,) in the model's dtype
    probs = torch.softmax(logits, dim=-1)
    k = min(top_k, probs.shape[-1])
    top = torch.topk(probs, k)
    cumulative = torch.cumsum(top.values.double(), dim=0)
    entropy = float(-(probs.double() * logprobs.double()).nan_to_num(0.0).sum())

    knobs = temperature != 1.0 or (top_p is not None)
    tempered = row if temperature == 1.0 else TemperatureLogitsWarper(temperature)(input_ids, row.clone())
    tempered_probs = torch.softmax(tempered, dim=-1)[0]
    entropy_t = None
    if temperature != 1.0:
        entropy_t = float(-(tempered_probs.double() * torch.log_softmax(tempered, -1)[0].double()).nan_to_num(0.0).sum())
    top_p_mask = None
    if top_p is not None:
        top_p_mask = torch.isfinite(TopPLogitsWarper(top_p)(input_ids, tempered.clone()))[0]
    final = sampling_scores(row.clone(), input_ids, temperature=temperature, top_k=k, top_p=top_p)
    sampling_probs = torch.softmax(final, dim=-1)[0]
    kept = torch.isfinite(final)[0]

    tokenizer = lm.tokenizer
    candidates = []
    for i, (p, tid) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
        candidates.append(
            Candidate(
                token=token_text(tokenizer, tid),
                id=tid,
                prob=p,
                logprob=float(logprobs[tid]),
                rank=i + 1,
                cumulative_prob=float(cumulative[i]),
                prob_temperature=float(tempered_probs[tid]) if temperature != 1.0 else None,
                kept_top_k=True,
                kept_top_p=bool(top_p_mask[tid]) if top_p_mask is not None else None,
                prob_sampling=float(sampling_probs[tid]) if knobs else None,
            )
        )

    shown = []
    for text in show:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise UsageError(f"--show {text!r}: the text has no tokens")
        first = ids[0]
        seq = (show_logprobs or {}).get(text, (None, None))
        shown.append(
            Shown(
                text=text,
                ids=list(ids),
                tokens=[token_text(tokenizer, t) for t in ids],
                prob=float(probs[first]),
                logprob=float(logprobs[first]),
                rank=int((probs > probs[first]).sum()) + 1,
                sequence_prob=seq[0],
                sequence_logprob=seq[1],
            )
        )
    return Distribution(
        position=position,
        candidates=candidates,
        entropy=entropy,
        entropy_bits=entropy / math.log(2),
        entropy_temperature=entropy_t,
        top_k_kept=k,
        top_p_kept=int(top_p_mask.sum()) if top_p_mask is not None else None,
        sampling_kept=int(kept.sum()),
        shown=shown,
    )


def _sequence_logprob(lm: LoadedModel, prompt_ids: list[int], ids: list[int]) -> float:
    """log P(ids | prompt) by teacher forcing: one forward pass over prompt + ids."""
    import torch

    full = torch.tensor([prompt_ids + ids], device=lm.device)  # (1, tokens)
    with torch.inference_mode():
        logits = lm.model(full).logits[0]  # (tokens, vocab)
    logprobs = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)  # (len(ids), vocab)
    return float(logprobs.gather(1, torch.tensor(ids, device=logits.device)[:, None]).double().sum())


# --------------------------------------------------------------------------------------------
# Stepping on the KV cache


class Stepper:
    """Decoding one token at a time on a DynamicCache: the prompt is computed once.

    ``candidates`` is the distribution for the next token; ``advance(ids)`` feeds the chosen
    token(s) and computes the next distribution from the cache (one forward pass for the new
    tokens only). This is what ``--steps`` and ``--interactive`` drive.
    """

    def __init__(
        self,
        lm: LoadedModel,
        prompt_ids: list[int],
        *,
        top_k: int = 10,
        temperature: float = 1.0,
        top_p: float | None = None,
        strategy: str = "greedy",
        seed: int = 0,
    ) -> None:
        import torch
        from transformers import DynamicCache

        self.lm = lm
        self.top_k, self.temperature, self.top_p, self.strategy = top_k, temperature, top_p, strategy
        self.ids: list[int] = list(prompt_ids)
        self.text = lm.tokenizer.decode(prompt_ids)  # the text the model read
        self.prompt_length = len(prompt_ids)
        self.limit = context_length(lm)
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.cache = DynamicCache(config=lm.config)
        self.steps: list[Step] = []
        self.forward_passes = 0
        self.logits = self._forward(prompt_ids)[-1]  # (vocab,)
        self.distribution = self._distribution()

    def _forward(self, new_ids: list[int]) -> torch.Tensor:
        """Feed ``new_ids`` after what the cache holds; (len(new_ids), vocab) logits."""
        import torch

        inputs = torch.tensor([new_ids], device=self.lm.device)  # (1, new tokens)
        with torch.inference_mode():
            out = self.lm.model(input_ids=inputs, past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        self.forward_passes += 1
        return out.logits[0]  # (new tokens, vocab)

    def _distribution(self) -> Distribution:
        import torch

        ids = torch.tensor([self.ids], device=self.logits.device)
        return distribution(
            self.lm, self.logits, ids, position=len(self.ids) - 1, top_k=self.top_k,
            temperature=self.temperature, top_p=self.top_p,
        )

    @property
    def candidates(self) -> list[Candidate]:
        return self.distribution.candidates

    @property
    def room(self) -> int | None:
        return None if self.limit is None else self.limit - len(self.ids)

    def pick(self) -> int:
        """The next token id by the strategy: argmax (greedy) or a seeded draw (sample)."""
        import torch

        if self.strategy == "greedy":
            return int(torch.argmax(self.logits))
        ids = torch.tensor([self.ids], device=self.logits.device)
        scores = sampling_scores(
            self.logits.unsqueeze(0).clone(), ids, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p
        )
        probs = torch.softmax(scores.float(), dim=-1).cpu()  # (1, vocab)
        return int(torch.multinomial(probs, 1, generator=self.generator)[0, 0])

    def is_eos(self, token_id: int) -> bool:
        eos = getattr(self.lm.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = self.lm.config.eos_token_id
        eos_ids = eos if isinstance(eos, (list, tuple)) else [eos]
        return token_id in [e for e in eos_ids if e is not None]

    def advance(self, new_ids: list[int], *, typed: bool = False, text: str | None = None) -> Step:
        """Continue with ``new_ids`` (a candidate, or typed text); returns the step just taken."""
        import torch

        if not new_ids:
            raise UsageError("nothing to append: the text has no tokens")
        if self.room is not None and len(new_ids) > self.room:
            raise UsageError(f"the model's context of {self.limit:,} tokens is full")
        before = self.distribution
        logprobs = torch.log_softmax(self.logits, dim=-1)
        first = new_ids[0]
        total = float(logprobs[first])
        rank = int((logprobs > logprobs[first]).sum()) + 1
        logits = self._forward(new_ids)  # (len(new_ids), vocab)
        if len(new_ids) > 1:  # the typed tokens after the first: their probabilities in context
            rest = torch.log_softmax(logits[:-1], dim=-1)  # (len-1, vocab)
            total += float(rest.gather(1, torch.tensor(new_ids[1:], device=rest.device)[:, None]).double().sum())
        self.ids.extend(new_ids)
        self.logits = logits[-1]
        self.distribution = self._distribution()
        tokenizer = self.lm.tokenizer
        step = Step(
            chosen=Choice(
                token=text if text is not None else token_text(tokenizer, first),
                id=first,
                ids=list(new_ids),
                prob=math.exp(total),
                logprob=total,
                rank=rank,
                typed=typed,
            ),
            candidates=before.candidates,
            entropy=before.entropy,
        )
        self.steps.append(step)
        return step

    def step(self) -> Step:
        """One decoding step by the strategy."""
        return self.advance([self.pick()])

    @property
    def generated_text(self) -> str:
        return self.lm.tokenizer.decode(self.ids[self.prompt_length :], skip_special_tokens=False)


def stepper(
    prompt: str,
    *,
    model: str | LoadedModel | None = None,
    top_k: int = 10,
    temperature: float = 1.0,
    top_p: float | None = None,
    strategy: str = "greedy",
    chat: bool = False,
    system: str | None = None,
    seed: int = 0,
    revision: str | None = None,
    gguf_file: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
) -> Stepper:
    """A Stepper on the prompt, ready for ``step()`` / ``advance(ids)`` (the interactive mode)."""
    check_knobs(top_k=top_k, temperature=temperature, top_p=top_p, steps=0, strategy=strategy, seed=seed)
    check_prompt(prompt)
    lm = loading.load(model, revision=revision, gguf_file=gguf_file, device=device, dtype=dtype,
                      trust_remote_code=trust_remote_code)
    if lm.masked:
        raise UsageError("stepping needs a causal LM; this is a masked LM (it fills in mask tokens instead)")
    text, ids = encode_prompt(lm, prompt, chat=chat, system=system, extra_tokens=1)
    run = Stepper(lm, ids, top_k=top_k, temperature=temperature, top_p=top_p, strategy=strategy, seed=seed)
    run.text = text
    return run


def result_from(
    stepper_: Stepper, *, prompt: str, text: str, initial: Distribution, seed: int, stop_reason: str | None
) -> NextTokenResult:
    lm = stepper_.lm
    ids = stepper_.ids[: stepper_.prompt_length]
    return NextTokenResult(
        model=lm.source.display_name,
        kind="causal",
        prompt=prompt,
        text=text,
        input_ids=ids,
        input_tokens=[token_text(lm.tokenizer, t) for t in ids],
        dtype=lm.dtype,
        temperature=stepper_.temperature,
        top_k=stepper_.top_k,
        top_p=stepper_.top_p,
        strategy=stepper_.strategy,
        seed=seed,
        distribution=initial,
        masks=[],
        steps=list(stepper_.steps),
        generated_text=stepper_.generated_text,
        stop_reason=stop_reason,
    )


# --------------------------------------------------------------------------------------------
# The core function


def next_token(
    prompt: str,
    *,
    model: str | LoadedModel | None = None,
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

    With ``steps`` > 0, decode that many tokens (greedy, or sampled with the knobs) on the KV cache,
    stopping early at an end-of-sequence token as ``generate`` does.
    """
    import torch

    check_knobs(top_k=top_k, temperature=temperature, top_p=top_p, steps=steps, strategy=strategy, seed=seed)
    check_prompt(prompt)
    lm = loading.load(model, revision=revision, gguf_file=gguf_file, device=device, dtype=dtype,
                      trust_remote_code=trust_remote_code)
    tokenizer = lm.tokenizer

    if lm.masked:
        if steps:
            raise UsageError("--steps needs a causal LM; a masked LM fills in its mask tokens instead")
        return _masked(lm, prompt, top_k=top_k, temperature=temperature, top_p=top_p, show=show, seed=seed,
                       strategy=strategy, chat=chat, system=system)

    text, ids = encode_prompt(lm, prompt, chat=chat, system=system, extra_tokens=max(steps, 1))
    seq: dict[str, tuple[float | None, float | None]] = {}
    for s in show:
        sid = tokenizer(s, add_special_tokens=False)["input_ids"]
        if len(sid) > 1:
            lp = _sequence_logprob(lm, ids, list(sid))
            seq[s] = (math.exp(lp), lp)
    run = Stepper(lm, ids, top_k=top_k, temperature=temperature, top_p=top_p, strategy=strategy, seed=seed)
    first = run.distribution
    if show:
        first = distribution(lm, run.logits, torch.tensor([ids], device=run.logits.device), position=len(ids) - 1,
                             top_k=top_k, temperature=temperature, top_p=top_p, show=show, show_logprobs=seq)
    stop = None
    if steps:
        stop = "steps"
        for _ in range(steps):
            step = run.step()
            if run.is_eos(step.chosen.id):
                stop = "eos"
                break
    return result_from(run, prompt=prompt, text=text, initial=first, seed=seed, stop_reason=stop)


def _masked(lm: LoadedModel, prompt: str, *, top_k: int, temperature: float, top_p: float | None,
            show: Sequence[str], seed: int, strategy: str, chat: bool, system: str | None) -> NextTokenResult:
    import torch

    tokenizer = lm.tokenizer
    mask = tokenizer.mask_token
    if chat:
        raise UsageError("--chat is for chat (causal) models; this is a masked LM")
    if mask is None or tokenizer.mask_token_id is None:
        raise UsageError(f"{lm.source.display_name}: a masked LM whose tokenizer has no mask token")
    text, ids = encode_prompt(lm, prompt)
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
        text=text,
        input_ids=ids,
        input_tokens=[token_text(tokenizer, t) for t in ids],
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
    )


# The name in ``llmscope``'s lazy API: ``llmscope.next_token`` is this module once it is imported.
predict_next_token = next_token
