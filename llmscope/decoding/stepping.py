"""Decoding one token at a time on the KV cache: what ``next-token --steps`` and ``--interactive`` drive.

The prompt is computed once into a ``DynamicCache``; each step feeds the chosen token(s) and shows the
next distribution. Tokens are chosen by ``llmscope.decoding.sampling`` exactly as ``generate`` chooses them
(the same settings, processors, seeded draw and stop ids), so ``--steps N --strategy top-p --seed S``
writes what ``generate --strategy top-p --seed S -n N`` writes. The number of candidates shown
(``rows``) never filters what is sampled; ``top_k`` is the filter, as everywhere.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from llmscope import loading
from llmscope.text import prompts
from llmscope.decoding import sampling
from llmscope.decoding.finite import check_finite
from llmscope.config.values import context_length
from llmscope.errors import UsageError
from llmscope.decoding.distribution import (
    DEFAULT_ROWS,
    Candidate,
    Choice,
    Distribution,
    NextTokenResult,
    Step,
    distribution,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from llmscope.loading.model import LoadedModel
    from llmscope.decoding.sampling import DecodingSettings


# The strategies stepping takes: every one of generate's but beam search (which keeps several sequences).
STRATEGIES = tuple(s for s in sampling.STRATEGIES if s != "beam")


def check_knobs(*, rows: int = DEFAULT_ROWS, steps: int = 0) -> None:
    """Refuse the display's values out of range (called before any model loads)."""
    if rows < 1:
        raise UsageError(f"`rows={rows}`: must be at least 1 (the number of candidates shown)")
    if steps < 0:
        raise UsageError(f"`steps={steps}`: must be 0 or more")


def step_settings(settings: DecodingSettings | str | None) -> DecodingSettings:
    """How a step picks: any of generate's strategies but beam (None: greedy, the argmax)."""
    settings = sampling.as_settings(settings)
    if settings.strategy == "beam":
        raise UsageError("`strategy=beam`: stepping picks one token at a time, so beam search cannot step",
                         hint="use generate or compare for beam search")
    return settings


class Stepper:
    """Decoding one token at a time on a DynamicCache: the prompt is computed once.

    ``candidates`` is the distribution for the next token (its ``top_k`` most likely tokens);
    ``advance(ids)`` feeds the chosen token(s) and computes the next distribution from the cache
    (one forward pass for the new tokens only); ``step()`` picks by the settings and advances.
    """

    def __init__(
        self,
        lm: LoadedModel,
        prompt_ids: list[int],
        *,
        rows: int = DEFAULT_ROWS,
        settings: DecodingSettings | str | None = None,
        chat: bool = False,
    ) -> None:
        """``settings`` (any of generate's strategies but beam; None: greedy) choose each step's token,
        and the table shows the distribution as they reshape it; ``rows`` is how many candidates."""
        from llmscope.loading import model_calls

        self.lm = lm
        self.rows = rows
        self.settings = step_settings(settings)
        self.processors = sampling.logits_processors(self.settings)
        self.generator = sampling.random_generator(self.settings, lm.device)
        self.stop_ids = sampling.stop_token_ids(lm.model, lm.tokenizer, lm.config, chat=chat)
        self.ids: list[int] = list(prompt_ids)
        self.text = lm.tokenizer.decode(prompt_ids)  # the text the model read
        self.prompt_length = len(prompt_ids)
        self.limit = context_length(lm.config)
        self.cache = model_calls.new_cache(lm.model) if model_calls.kv_cache_or_notice(lm.model) else None
        self._keep_last = model_calls.supports(lm.model, "logits_to_keep")
        self.steps: list[Step] = []
        self.warnings: list[str] = []  # about the prompt (stepper() fills them in)
        self.forward_passes = 0
        self.logits = self._forward(prompt_ids)[-1]  # (vocab,)
        self.distribution = self._distribution()

    def _forward(self, new_ids: list[int]) -> torch.Tensor:
        """Feed ``new_ids`` after what the cache holds; logits (len(new_ids), vocab), or (1, vocab)
        for one token or the prompt: the forward pass generate's decode loop makes."""
        import torch

        from llmscope.loading import model_calls

        if self.cache is None:  # a recurrent model (Mamba, RWKV): the whole sequence again, no KV cache
            return self._recompute(new_ids)
        inputs = torch.tensor([new_ids], device=self.lm.device)  # (1, new tokens)
        seen = self.cache.get_seq_length()
        mask = torch.ones((1, seen + len(new_ids)), dtype=torch.long, device=self.lm.device)  # (1, tokens so far)
        only_last = self._keep_last and (not self.forward_passes or len(new_ids) == 1)
        keep = {"logits_to_keep": 1} if only_last else {}
        with torch.inference_mode():
            out = self.lm.model(input_ids=inputs, attention_mask=mask, **model_calls.cache_kwargs(self.lm.model, self.cache),
                                **keep)
        self.cache = model_calls.returned_cache(self.lm.model, out)
        self.forward_passes += 1
        return out.logits[0]  # (new tokens, vocab)

    def _recompute(self, new_ids: list[int]) -> torch.Tensor:
        """_forward for a model without a KV cache: logits (len(new_ids), vocab) over the whole sequence."""
        import torch

        before = self.ids if self.forward_passes else []  # at the first pass self.ids is the prompt itself
        inputs = torch.tensor([before + new_ids], device=self.lm.device)  # (1, tokens so far)
        with torch.inference_mode():
            out = self.lm.model(input_ids=inputs, attention_mask=torch.ones_like(inputs), use_cache=False)
        self.forward_passes += 1
        return out.logits[0, -len(new_ids):]  # (new tokens, vocab)

    def _distribution(self) -> Distribution:
        import torch

        ids = torch.tensor([self.ids], device=self.logits.device)
        return distribution(
            self.lm, self.logits, ids, position=len(self.ids) - 1, rows=self.rows, settings=self.settings,
        )

    @property
    def candidates(self) -> list[Candidate]:
        return self.distribution.candidates

    @property
    def room(self) -> int | None:
        return None if self.limit is None else self.limit - len(self.ids)

    def pick(self) -> int:
        """The next token id as generate would choose it (argmax, or the seeded draw)."""
        import torch

        check_finite(self.lm, self.logits, step=len(self.steps) + 1)
        ids = torch.tensor([self.ids], device=self.logits.device)  # (1, tokens)
        return sampling.choose(self.processors, ids, self.logits[None], self.generator)[0]

    def is_eos(self, token_id: int) -> bool:
        """Whether generation stops at this token (EOS; with chat also end-of-turn tokens)."""
        return token_id in self.stop_ids

    def advance(self, new_ids: list[int], *, typed: bool = False, text: str | None = None) -> Step:
        """Continue with ``new_ids`` (a candidate, or typed text); returns the step just taken."""
        if not new_ids:
            raise UsageError("nothing to append: the text has no tokens")
        if self.room is not None and len(new_ids) > self.room:
            raise UsageError(f"the model's context of {self.limit:,} tokens is full")
        before = self.distribution
        logprobs = sampling.logprobs(self.logits)  # (vocab,)
        first = new_ids[0]
        total = float(logprobs[first])
        rank = int((logprobs > logprobs[first]).sum()) + 1
        logits = self._forward(new_ids)  # (len(new_ids), vocab)
        if len(new_ids) > 1:  # the typed tokens after the first: their probabilities in context
            total += float(sampling.token_logprobs(logits[:-1], new_ids[1:]).double().sum())
        self.ids.extend(new_ids)
        self.logits = logits[-1]
        self.distribution = self._distribution()
        step = Step(
            chosen=Choice(
                token=text if text is not None else prompts.token_text(self.lm.tokenizer, first),
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
        """One decoding step by the settings."""
        return self.advance([self.pick()])

    def run(self, steps: int) -> str:
        """Up to ``steps`` decoding steps; the stop reason: "eos" at a stop id, else "steps"."""
        for _ in range(steps):
            if self.is_eos(self.step().chosen.id):
                return "eos"
        return "steps"

    @property
    def generated_text(self) -> str:
        return self.lm.tokenizer.decode(self.ids[self.prompt_length :], skip_special_tokens=False)


def stepper(
    prompt: str,
    *,
    model: loading.ModelLike = None,
    rows: int = DEFAULT_ROWS,
    settings: DecodingSettings | str | None = None,
    chat: bool = False,
    system: str | None = None,
) -> Stepper:
    """A Stepper on the prompt, ready for ``step()`` / ``advance(ids)`` (the interactive mode)."""
    check_knobs(rows=rows)
    settings = step_settings(settings)
    prompts.check_prompt_options(prompt, chat=chat, system=system)
    lm = loading.load(model)
    if lm.masked:
        raise UsageError("stepping needs a causal LM; this is a masked LM (it fills in mask tokens instead)")
    encoded = prompts.encode_for(lm, prompt, chat=chat, system=system)
    run = Stepper(lm, encoded.ids, rows=rows, settings=settings, chat=chat)
    run.text = encoded.text
    run.warnings = list(encoded.warnings) + list(settings.notes)
    return run


def result_from(
    stepper_: Stepper, *, prompt: str, text: str, initial: Distribution, stop_reason: str | None,
    warnings: list[str] | None = None,
) -> NextTokenResult:
    """The NextTokenResult of a Stepper's run: the first distribution, every step, the continuation."""
    lm = stepper_.lm
    ids = stepper_.ids[: stepper_.prompt_length]
    return NextTokenResult(
        model=lm.source.display_name,
        kind="causal",
        prompt=prompt,
        text=text,
        input_ids=ids,
        input_tokens=[prompts.token_text(lm.tokenizer, t) for t in ids],
        dtype=lm.dtype,
        settings=stepper_.settings,
        rows=stepper_.rows,
        distribution=initial,
        masks=[],
        steps=list(stepper_.steps),
        generated_text=stepper_.generated_text,
        stop_reason=stop_reason,
        warnings=list(warnings if warnings is not None else stepper_.warnings),
    )
