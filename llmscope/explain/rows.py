"""One explanation of ``llmscope why``: f for one target, its value at the input and the baseline, and each
unit's share by the chosen method (the result and the options are in ``explain/why.py``)."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from llmscope.explain import attribution as attr
from llmscope.text.spans import BY, Unit, units

CONVERGED_SHARE = 0.05  # a gap over this share of |f(x) - f(baseline)|: not converged

if TYPE_CHECKING:  # pragma: no cover
    from llmscope.loading.model import LoadedModel
    from llmscope.text.prompts import EncodedPrompt


@dataclasses.dataclass(frozen=True)
class WhyUnit:
    """One unit of the input and its share of f (None for a special token, held fixed)."""

    text: str
    start: int | None
    end: int | None
    token_ids: list[int]
    attribution: float | None
    special: bool
    first: bool  # it holds the sequence's first token (an attention sink: weight there is not importance)
    positions: list[int] = dataclasses.field(default_factory=list, repr=False)


@dataclasses.dataclass(frozen=True)
class Explained:
    f: float
    f_baseline: float | None
    gap: float | None
    converged: bool | None
    units: list[WhyUnit]
    check: float
    by_unit: dict[str, list[WhyUnit]]


def input_units(encoded: EncodedPrompt, texts: list[str], fixed: set[int], by: str,
                before: list[str]) -> list[Unit]:
    """The prompt's units BY token, word or sentence, then one unit per token generated before (BEFORE:
    their texts), each at its own position after the prompt."""
    found = units(encoded.text, texts, encoded.offsets, fixed, by)
    n = len(encoded.ids)
    return found + [Unit(text, None, None, (n + k,)) for k, text in enumerate(before)]


def top_next_token(lm: LoadedModel, ids: list[int]) -> int:
    """The model's most likely next token after IDS."""
    import torch

    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids], device=lm.device), use_cache=False).logits
    return int(logits[0, -1].float().argmax())


def _objective(lm: LoadedModel, ids: list[int], target_ids: list[int], versus_ids: list[int] | None) -> attr.Objective:
    from llmscope.forward.anatomy import anatomy, require

    parts = anatomy(lm.model)
    require(parts, "embedding")
    from llmscope.forward.logprobs import split_head

    return attr.Objective(model=lm.model, embed=parts.module(lm.model, parts.embedding), prompt_ids=ids,
                          target_ids=target_ids, versus_ids=versus_ids, device=lm.device, parts=parts,
                          split=split_head(lm, parts))


def _rows(lm: LoadedModel, tokens: int, kept: int, wanted: int, method: str) -> int:
    from llmscope.memory.forward_guard import rows_that_fit

    hints = ["a shorter prompt", "a shorter target"]
    return rows_that_fit(lm.config, tokens, kept, wanted, dtype=lm.dtype, method=method, device=lm.device,
                         hints=hints)


def _unit_sums(found: list[Unit], ids: list[int], tokens: list[float]) -> list[WhyUnit]:
    return as_why_units(found, ids, [None if u.special else sum(tokens[p] for p in u.positions) for u in found])


def explain(lm: LoadedModel, encoded: EncodedPrompt, texts: list[str], fixed: set[int], target_ids: list[int],
            versus_ids: list[int] | None, *, before: list[int], method: str, by: str, n_steps: int | None,
            baseline_id: int | None) -> Explained:
    """f for TARGET_IDS (against VERSUS_IDS) after the prompt and the tokens BEFORE, attributed to its units."""
    from llmscope.text.prompts import token_text

    ids = list(encoded.ids) + list(before)
    before_texts = [token_text(lm.tokenizer, t) for t in before]
    found = input_units(encoded, texts, fixed, by, before_texts)
    objective = _objective(lm, ids, target_ids, versus_ids)
    inputs = objective.embeddings(ids)
    check = objective.check()
    f = objective.value(inputs)
    kept = max(len(target_ids), len(versus_ids or []))
    length = len(ids) + kept - 1
    by_unit: dict[str, list[WhyUnit]] = {}
    f_baseline = gap = None
    if method == "occlusion":
        groups = _groups(found, len(ids))
        batch = _rows(lm, length, kept, max(groups) + 1, method)
        baselines = attr.baseline_embeddings(objective, inputs, baseline_id, fixed)
        scores = attr.occlusion(objective, inputs, baselines, groups, batch=batch).unit_scores or []
        f_baseline = objective.value(baselines)
        movable = iter(scores)
        shown = as_why_units(found, ids, [None if u.special else next(movable) for u in found])
    else:
        if method == "grad-x-input":
            _rows(lm, length, kept, 1, method)
            result = attr.grad_x_input(objective, inputs)
        else:
            batch = _rows(lm, length, kept, n_steps or 1, method)
            baselines = attr.baseline_embeddings(objective, inputs, baseline_id, fixed)
            result = attr.integrated_gradients(objective, inputs, baselines, steps=n_steps or 1, batch=batch)
            f_baseline, gap = objective.value(baselines), result.gap
        shown = _unit_sums(found, ids, result.tokens)
        for other in BY:
            by_unit[other] = shown if other == by else _unit_sums(
                input_units(encoded, texts, fixed, other, before_texts), ids, result.tokens)
    return Explained(f=f, f_baseline=f_baseline, gap=gap, converged=converged(gap, f, f_baseline), units=shown,
                     check=check, by_unit=by_unit)


def columns(lm: LoadedModel, encoded: EncodedPrompt, texts: list[str], fixed: set[int], by: str,
            before: list[int]) -> list[WhyUnit]:
    """The units a generation's rows are spread over (no attribution): the prompt's, then each generated
    token but the last."""
    from llmscope.text.prompts import token_text

    ids = list(encoded.ids) + list(before)
    found = input_units(encoded, texts, fixed, by, [token_text(lm.tokenizer, t) for t in before])
    return as_why_units(found, ids, [None] * len(found))


def _groups(found: list[Unit], length: int) -> list[int]:
    """Occlusion's feature mask: unit k's positions get k; the fixed tokens one last group whose baseline is the
    input itself (replacing it changes nothing)."""
    groups: list[Any] = [None] * length
    movable = [u for u in found if not u.special]
    for k, unit in enumerate(movable):
        for p in unit.positions:
            groups[p] = k
    return [len(movable) if g is None else g for g in groups]


def converged(gap: float | None, f: float, f_baseline: float | None) -> bool | None:
    """Whether the gap is within CONVERGED_SHARE of |f(x) - f(baseline)| (None where there is no gap)."""
    if gap is None or f_baseline is None or not math.isfinite(gap):
        return None if gap is None else False
    return abs(gap) <= CONVERGED_SHARE * abs(f - f_baseline)


def as_why_units(units: list[Unit], ids: list[int], scores: list[float | None]) -> list[WhyUnit]:
    return [WhyUnit(u.text, u.start, u.end, [ids[p] for p in u.positions], s, u.special, 0 in u.positions,
                    list(u.positions)) for u, s in zip(units, scores)]
