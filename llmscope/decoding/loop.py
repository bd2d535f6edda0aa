"""The batched decode loop (greedy and sampling rows, one forward pass per step) and beam search.

Every row of a batch has its own logits processors and its own seeded ``torch.Generator``
(``llmscope.decoding.sampling``): a row samples the same tokens alone (``generate``) or batched with others
(``compare``). The prompt runs once and its ``DynamicCache`` is repeated for every row. Beam search
is ``model.generate(num_beams=...)`` itself. ``Streamer`` turns the chosen ids into text as they come.

The probability recorded for a token is the model's own (softmax of the raw logits), before the
strategy reshaped the distribution.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from llmscope.loading import model_calls
from llmscope.decoding import sampling
from llmscope.decoding.finite import check_finite, check_finite_steps, first_bad_row
from llmscope.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from llmscope.loading.model import LoadedModel
    from llmscope.decoding.sampling import DecodingSettings


@dataclasses.dataclass(frozen=True)
class GeneratedToken:
    """One generated token as it streams: its id, the text it adds, and the model's probability."""

    index: int
    token_id: int
    text: str
    prob: float


@dataclasses.dataclass
class Row:
    """One strategy's run through the loop: what it chose, the model's probabilities, when it stopped."""

    settings: DecodingSettings
    processors: Any
    generator: Any
    ids: list[int] = dataclasses.field(default_factory=list)
    probs: list[float] = dataclasses.field(default_factory=list)
    first_token_at: float | None = None
    finished_at: float | None = None
    stop_reason: str = "length"
    kept: list[int] = dataclasses.field(default_factory=list)  # per step: the tokens the pick chose from
    positions: int = 0  # token positions the forward passes computed for this row
    attention_pairs: int = 0  # query-key scores those passes computed per head and layer (causal)


def context_room(lm: LoadedModel, prompt_length: int) -> int | None:
    """How many tokens fit after the prompt (None: no known limit); refuses a prompt that fills it."""
    from llmscope.config.values import context_length

    limit = context_length(lm.config)
    room = None if not limit else int(limit) - prompt_length
    if room is not None and room < 1:
        raise UsageError(f"the prompt ({prompt_length} tokens) fills the model's whole context of {limit} tokens")
    return room


def check_decode_work(lm: LoadedModel, prompt_tokens: int, settings: Sequence[DecodingSettings]) -> None:
    """Refuse, before the first step, a batch whose KV caches and vocabulary scores cannot fit:
    greedy and sampling rows run together, beam searches one after another (each beam a row)."""
    from llmscope.config.values import context_length
    from llmscope.memory.forward_guard import check_fits, decode_work

    limit = context_length(lm.config)
    longest = max(s.max_new_tokens for s in settings)
    new = longest if limit is None else max(0, min(longest, limit - prompt_tokens))
    rows = sum(1 for s in settings if s.strategy != "beam")
    beams = max((s.num_beams for s in settings if s.strategy == "beam"), default=0)
    estimate = decode_work(lm.config, prompt_tokens, new, rows=rows, beams=beams, dtype=lm.dtype)
    hints = (["fewer beams (--num-beams, or beam=N)"] if beams else []) + ["fewer --max-new-tokens",
                                                                           "a shorter prompt"]
    check_fits(estimate, device=lm.device, hints=hints)


class _Forward:
    """The model's forward passes for the loop, with or without the KV cache."""

    def __init__(self, model: Any, kv_cache: bool):
        # a recurrent model (Mamba, RWKV) keeps no KV cache: the whole sequence runs again each step
        self.model, self.kv_cache = model, model_calls.kv_cache_or_notice(model, kv_cache)
        self.keep = {"logits_to_keep": 1} if model_calls.supports(model, "logits_to_keep") else {}
        self.cache = model_calls.new_cache(model) if self.kv_cache else None
        self.work = (0, 0)  # the last pass, per row: (positions computed, query-key pairs scored)

    def _count(self, new: int, total: int) -> None:
        """A pass that computed the last NEW of TOTAL positions: NEW queries, each against every key
        up to itself (a causal mask), so sum(total - new + 1 .. total) pairs."""
        self.work = (new, new * (2 * total - new + 1) // 2)

    def prefill(self, prompt_ids: torch.Tensor, seqs: torch.Tensor) -> torch.Tensor:
        """Logits (rows, vocab) after the prompt; with the cache the prompt runs once (batch 1)."""
        import torch

        rows = seqs.shape[0]
        if not self.kv_cache:
            return self.step(seqs, seqs)
        self._count(prompt_ids.shape[-1], prompt_ids.shape[-1])
        out = self.model(input_ids=prompt_ids, attention_mask=torch.ones_like(prompt_ids),
                         **model_calls.cache_kwargs(self.model, self.cache), **self.keep)
        if rows > 1:
            self.cache.batch_repeat_interleave(rows)
        return out.logits[:, -1].float().expand(rows, -1)  # (rows, vocab)

    def step(self, seqs: torch.Tensor, next_ids: torch.Tensor) -> torch.Tensor:
        """Logits (rows, vocab) after ``seqs`` (rows, tokens), whose last tokens are ``next_ids``."""
        import torch

        if self.kv_cache:
            self._count(next_ids.shape[-1], seqs.shape[-1])
            mask = torch.ones(seqs.shape, dtype=torch.long, device=seqs.device)  # (rows, tokens)
            out = self.model(input_ids=next_ids, attention_mask=mask, **model_calls.cache_kwargs(self.model, self.cache),
                             **self.keep)
        else:
            self._count(seqs.shape[-1], seqs.shape[-1])
            out = self.model(input_ids=seqs, attention_mask=torch.ones_like(seqs), use_cache=False, **self.keep)
        return out.logits[:, -1].float()  # (rows, vocab)

    def select(self, index: torch.Tensor) -> None:
        if self.cache is not None:
            self.cache.batch_select_indices(index)


def decode_rows(
    lm: LoadedModel,
    prompt_ids: torch.Tensor,
    settings: Sequence[DecodingSettings],
    *,
    stop_ids: Sequence[int],
    kv_cache: bool = True,
    on_token: Callable[[int, int, float], None] | None = None,
) -> tuple[list[Row], float]:
    """Greedy and sampling rows in one batch: one forward pass per step for all of them.

    All rows share the prompt (1, prompt tokens). ``on_token(row, token_id, prob)`` is called as
    each token is chosen. Returns the rows and the seconds the batch took.
    """
    import torch

    device = prompt_ids.device
    rows = [Row(s, sampling.logits_processors(s), sampling.random_generator(s, device)) for s in settings]
    max_new = max(s.max_new_tokens for s in settings)
    room = context_room(lm, prompt_ids.shape[-1])
    stop = set(stop_ids)
    forward = _Forward(lm.model, kv_cache)
    start = time.perf_counter()
    active = list(range(len(rows)))  # row numbers still generating, in batch order
    seqs = prompt_ids.expand(len(rows), -1).clone()  # (rows, tokens): prompt + generated so far
    with torch.inference_mode():
        logits = forward.prefill(prompt_ids, seqs)  # (active rows, vocab)
        for step in range(1, max_new + 1):
            check_finite(lm, logits, step=step)  # NaN would crash the draw, and make the argmax arbitrary
            logprobs = sampling.logprobs(logits)  # (active rows, vocab): the model's own
            chosen = []
            for b, r in enumerate(active):
                row = rows[r]
                row.positions, row.attention_pairs = row.positions + forward.work[0], row.attention_pairs + forward.work[1]
                token, kept = sampling.choose(row.processors, seqs[b : b + 1], logits[b : b + 1], row.generator)
                row.kept.append(kept)
                chosen.append(token)
                _record(row, token, float(logprobs[b, token].exp()), time.perf_counter() - start, stop, room)
                if on_token is not None:
                    on_token(r, token, row.probs[-1])
            next_ids = torch.tensor(chosen, device=device)[:, None]  # (active rows, 1)
            seqs = torch.cat([seqs, next_ids], dim=-1)
            still = [b for b, r in enumerate(active) if rows[r].finished_at is None]
            if not still or step >= max_new:
                break
            if len(still) < len(active):
                index = torch.tensor(still, device=device)
                seqs, next_ids = seqs[index], next_ids[index]
                forward.select(index)
                active = [active[b] for b in still]
            logits = forward.step(seqs, next_ids)
    total = time.perf_counter() - start
    for row in rows:
        if row.finished_at is None:
            row.finished_at = total
    return rows, total


def _record(row: Row, token: int, prob: float, now: float, stop: set[int], room: int | None) -> None:
    """Note the chosen token on its row, and whether the row is done (a stop id, or out of room)."""
    row.ids.append(token)
    row.probs.append(prob)
    if row.first_token_at is None:
        row.first_token_at = now
    if token in stop:
        row.stop_reason, row.finished_at = "eos", now
    elif len(row.ids) >= row.settings.max_new_tokens:
        row.stop_reason, row.finished_at = "length", now
    elif room is not None and len(row.ids) >= room:  # the model's context is full before --max-new-tokens
        row.stop_reason, row.finished_at = "context", now


def beam_search(
    lm: LoadedModel, prompt_ids: torch.Tensor, settings: DecodingSettings, *, stop_ids: Sequence[int],
    kv_cache: bool = True,
) -> tuple[Row, float]:
    """Beam search is ``model.generate(num_beams=...)``; the model's probability of each chosen token
    is then read from one teacher-forced forward pass over prompt + output."""
    import torch
    from transformers import GenerationConfig

    model = lm.model
    prompt_length = prompt_ids.shape[-1]
    room = context_room(lm, prompt_length)
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
        if reason == "length" and len(ids) >= max_new and max_new < settings.max_new_tokens:
            reason = "context"  # cut by the model's context, not by --max-new-tokens
        row = Row(settings, None, None, ids=ids, stop_reason=reason, finished_at=total)
        if ids:  # the last token is not read: its logits would choose a token after the output
            read = torch.tensor([ids[:-1]], dtype=prompt_ids.dtype, device=prompt_ids.device)  # (1, new - 1)
            full = torch.cat([prompt_ids, read], dim=-1)  # (1, tokens)
            logits = model(input_ids=full, attention_mask=torch.ones_like(full), use_cache=False).logits
            chose = logits[0, prompt_length - 1 :]  # (len(ids), vocab): the logits each step chose from
            if first_bad_row(chose) is not None:  # then beam search's own scores were not finite either
                _check_replayed(lm, prompt_ids, ids, kv_cache, chose)
            row.probs = sampling.token_logprobs(chose, ids).exp().tolist()
    return row, total


def _check_replayed(lm: LoadedModel, prompt_ids: torch.Tensor, ids: Sequence[int], kv_cache: bool,
                    teacher_forced: torch.Tensor) -> None:
    """Name the step at which beam search's probabilities stopped being finite. The teacher-forced pass
    cannot tell: a NaN at a later position reaches earlier ones through the causal mask (0 x NaN is
    NaN), so the output is fed again one token at a time, as beam search ran, until a step is not finite."""
    import torch

    forward = _Forward(lm.model, kv_cache)
    seqs = prompt_ids.clone()  # (1, tokens)
    logits = forward.prefill(prompt_ids, seqs)  # (1, vocab)
    for step, token in enumerate(ids, 1):
        check_finite(lm, logits, step=step)
        if step == len(ids):
            break
        next_ids = torch.tensor([[token]], device=prompt_ids.device)  # (1, 1)
        seqs = torch.cat([seqs, next_ids], dim=-1)
        logits = forward.step(seqs, next_ids)
    check_finite_steps(lm, teacher_forced)  # one token at a time was finite: say what the whole pass saw


def token_texts(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[str]]:
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


class Streamer:
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
