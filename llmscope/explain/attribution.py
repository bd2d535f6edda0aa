"""The arithmetic of ``llmscope why``: the function explained, and Captum's methods on the input embeddings.

f is ``log p(target | prompt)`` in nats, summed over the target's tokens read teacher-forced (the prompt,
then the target's own tokens before each one), minus the same for ``versus`` when there is one. Its input
is what ``model.get_input_embeddings()`` gives for the prompt's ids: the tensor the model feeds forward
(Gemma's sqrt(hidden) scale included), never the embedding weight, whose gradient mixes in the output
layer when the two are tied. f(E) runs the model on ``inputs_embeds``: the same forward pass as on the
ids, which ``Objective.check`` measures on every run.

The methods are Captum's, called on that tensor: ``InputXGradient`` (grad x input), ``IntegratedGradients``
(its default Gauss-Legendre rule, its convergence delta) and ``FeatureAblation`` (occlusion: each unit
replaced by the baseline at once). Tokens held fixed (BOS, template tokens) have the input itself as
their baseline, so no method moves them. Rows of the interpolation path or of the occlusions run in
batches as large as the memory estimate allows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

METHODS = ("grad-x-input", "integrated-gradients", "occlusion")


@dataclasses.dataclass
class Objective:
    """f(E) for a batch of prompt embeddings E (rows, T, hidden) -> (rows,), in float32 nats."""

    model: nn.Module
    embed: nn.Module
    prompt_ids: list[int]
    target_ids: list[int]
    versus_ids: list[int] | None
    device: Any
    parts: Any = None  # the anatomy map
    split: Any = None  # (backbone, head) where the model is "backbone, then head" (logprobs.split_head)

    def embeddings(self, ids: Sequence[int]) -> torch.Tensor:
        """EMBED(ids) as (1, len, hidden): the tensor the model feeds forward for those ids."""
        import torch

        with torch.no_grad():
            return self.embed(torch.tensor([list(ids)], device=self.device))

    def _logprob(self, prompt: torch.Tensor, continuation: list[int]) -> torch.Tensor:
        """log p(continuation | prompt), summed over its tokens, per row of PROMPT (rows, T, hidden)."""
        import torch

        rows, m = prompt.shape[0], len(continuation)
        parts = [prompt]
        if m > 1:
            parts.append(self.embeddings(continuation[:-1]).to(prompt.dtype).expand(rows, -1, -1))
        full = torch.cat(parts, dim=1) if len(parts) > 1 else prompt
        logits = self._last_logits(full, m).float()
        logp = torch.log_softmax(logits, dim=-1)
        index = torch.tensor(continuation, device=logits.device).view(1, m, 1).expand(rows, m, 1)
        return logp.gather(-1, index).squeeze(-1).sum(dim=-1)

    def _last_logits(self, full: torch.Tensor, m: int) -> torch.Tensor:
        """The logits at the last M positions of FULL (rows, length, hidden): the backbone, then the head on
        those rows alone (``logits_to_keep`` slices a strided view, which CPU matmul runs at half speed), scaled
        and soft-capped as the model does; the whole model where it has no such parts."""
        if self.split is not None:
            backbone, head = self.split
            hidden = backbone(inputs_embeds=full, use_cache=False)[0][:, -m:, :].contiguous()
            return self.parts.scale_logits(head(hidden))
        kwargs: dict[str, Any] = {"inputs_embeds": full, "use_cache": False}
        if keeps_logits(self.model):
            kwargs["logits_to_keep"] = m
        return self.model(**kwargs).logits[:, -m:, :]

    def __call__(self, prompt: torch.Tensor) -> torch.Tensor:
        value = self._logprob(prompt, self.target_ids)
        if self.versus_ids is not None:
            value = value - self._logprob(prompt, self.versus_ids)
        return value

    def value(self, prompt: torch.Tensor) -> float:
        import torch

        with torch.no_grad():
            return float(self(prompt)[0])

    def check(self) -> float:
        """|f through inputs_embeds - f through input_ids|: zero where inputs_embeds is the forward pass's own
        input (a model that transforms it differently would show here)."""
        import torch

        def logprob_ids(continuation: list[int]) -> float:
            ids = torch.tensor([self.prompt_ids + continuation[:-1]], device=self.device)
            with torch.no_grad():
                logits = self.model(input_ids=ids, use_cache=False).logits[0, -len(continuation):, :].float()
            logp = torch.log_softmax(logits, dim=-1)
            return float(logp[torch.arange(len(continuation)), torch.tensor(continuation)].sum())

        direct = logprob_ids(self.target_ids)
        if self.versus_ids is not None:
            direct -= logprob_ids(self.versus_ids)
        return abs(self.value(self.embeddings(self.prompt_ids)) - direct)


def keeps_logits(model: nn.Module) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - a forward without a signature
        return False


@contextlib.contextmanager
def inputs_only(model: nn.Module) -> Iterator[None]:
    """Gradients on, for the inputs only: the weights need none (no memory or time spent on theirs)."""
    import torch

    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        with torch.enable_grad():
            yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@dataclasses.dataclass(frozen=True)
class Attribution:
    """Per-token scores of one run (positions of the prompt; fixed tokens score 0) and Captum's delta."""

    tokens: list[float]
    gap: float | None  # IG: sum(attributions) - (f(x) - f(baseline)), Captum's convergence delta
    unit_scores: list[float] | None = None  # occlusion: one score per unit, in the order of the mask's ids


def grad_x_input(objective: Objective, inputs: torch.Tensor) -> Attribution:
    from captum.attr import InputXGradient

    with inputs_only(objective.model):
        attr = InputXGradient(objective).attribute(inputs.detach().clone().requires_grad_(True))
    return Attribution(tokens=attr[0].sum(dim=-1).double().tolist(), gap=None)


def integrated_gradients(objective: Objective, inputs: torch.Tensor, baselines: torch.Tensor, *, steps: int,
                         batch: int) -> Attribution:
    from captum.attr import IntegratedGradients

    with inputs_only(objective.model):
        attr, delta = IntegratedGradients(objective).attribute(
            inputs.detach().clone(), baselines=baselines, n_steps=steps, internal_batch_size=batch,
            return_convergence_delta=True,
        )
    return Attribution(tokens=attr[0].sum(dim=-1).double().tolist(), gap=float(delta[0]))


def occlusion(objective: Objective, inputs: torch.Tensor, baselines: torch.Tensor, groups: Sequence[int], *,
              batch: int) -> Attribution:
    """f(x) - f(x with each group replaced by its baseline), one score per group id of GROUPS (a group id
    per position; ids 0..n-1)."""
    import torch
    from captum.attr import FeatureAblation

    mask = torch.tensor(list(groups), device=inputs.device).view(1, -1, 1).expand_as(inputs).contiguous()
    with torch.no_grad():
        attr = FeatureAblation(objective).attribute(inputs, baselines=baselines, feature_mask=mask,
                                                    perturbations_per_eval=batch)
    first = {}
    for position, group in enumerate(groups):
        first.setdefault(group, position)
    scores = [float(attr[0, first[g], 0]) for g in sorted(first)]
    return Attribution(tokens=[0.0] * len(groups), gap=None, unit_scores=scores)


def baseline_embeddings(objective: Objective, inputs: torch.Tensor, token_id: int | None,
                        fixed: set[int]) -> torch.Tensor:
    """The baseline input: TOKEN_ID's embedding at every position (zeros for None), the input itself at the
    fixed positions."""
    import torch

    length = inputs.shape[1]
    if token_id is None:
        base = torch.zeros_like(inputs)
    else:
        base = objective.embeddings([token_id] * length).to(inputs.dtype)
    for position in fixed:
        base[:, position, :] = inputs[:, position, :]
    return base
