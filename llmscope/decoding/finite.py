"""The check, before a token is chosen, that the model's next-token probabilities are numbers at all.

A NaN or +inf among the logits (or a row of nothing but -inf) makes softmax NaN: ``torch.multinomial``
refuses it with a RuntimeError, and the argmax quietly "chooses" whatever index the NaN sits at. Both
mean the model itself is broken, so every strategy stops there with one ``ModelFormatError`` that says
at which step, and why: a weight that is not finite (a damaged checkpoint, a diverged run), or finite
weights whose forward pass overflowed in the dtype they run in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmscope.errors import ModelFormatError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from llmscope.loading.model import LoadedModel


def first_bad_row(logits: torch.Tensor) -> int | None:
    """The first row of ``logits`` (rows, vocab) softmax cannot turn into probabilities, or None.

    A row's maximum is NaN if the row holds a NaN, +inf if it holds +inf, -inf if every entry is -inf:
    one reduction tells all three (the filtered -inf of a few tokens is fine)."""
    import torch

    finite = torch.isfinite(logits.detach().amax(dim=-1))  # (rows,)
    if bool(finite.all()):
        return None
    return int((~finite).nonzero()[0, 0])


def check_finite(lm: LoadedModel, logits: torch.Tensor, *, step: int) -> None:
    """Refuse to choose the token of STEP (1 = the first new token) from ``logits`` (rows, vocab) or
    (vocab,) the model gave, when a row of them is not finite."""
    rows = logits if logits.dim() > 1 else logits[None]
    bad = first_bad_row(rows)
    if bad is not None:
        raise not_finite(lm, rows[bad], step=step)


def check_finite_steps(lm: LoadedModel, logits: torch.Tensor) -> None:
    """``check_finite`` for teacher-forced ``logits`` (steps, vocab): row i chose the token of step i + 1."""
    bad = first_bad_row(logits)
    if bad is not None:
        raise not_finite(lm, logits[bad], step=bad + 1)


def not_finite(lm: LoadedModel, row: torch.Tensor, *, step: int) -> ModelFormatError:
    """The error for one bad (vocab,) row of logits at STEP: what is in it, and where it came from."""
    import torch

    if bool(torch.isnan(row).any()):
        what = "NaN in its logits"
    elif bool(torch.isposinf(row).any()):
        what = "inf in its logits"
    else:
        what = "every logit is -inf"
    message = f"the model's next-token probabilities are not finite at step {step} ({what})"
    weight = _first_bad_weight(lm.model)
    if weight is not None:
        name, value = weight
        return ModelFormatError(f"{message}: its weight {name} holds {value}",
                                hint="the checkpoint is damaged or was saved from a run that diverged: "
                                     "use another copy of the model")
    dtype = str(lm.dtype).removeprefix("torch.")
    if dtype in ("float16", "bfloat16"):
        return ModelFormatError(f"{message}: its weights are finite, so its activations overflow in {dtype}",
                                hint="load it in float32: `dtype=float32`")
    return ModelFormatError(f"{message}: its weights are finite, yet its activations overflow in {dtype}",
                            hint="the model is broken for this input: try another prompt or another copy")


def _first_bad_weight(model: Any) -> tuple[str, str] | None:
    """(name, "NaN" or "inf") of the model's first parameter that is not finite (or buffer that holds
    NaN: a mask buffer may hold -inf on purpose), or None. Read only on the way to an error: it touches
    every weight once."""
    import torch

    tensors = [(name, t, True) for name, t in model.named_parameters()]
    tensors += [(name, t, False) for name, t in model.named_buffers()]
    for name, tensor, parameter in tensors:
        if tensor.device.type == "meta" or not tensor.is_floating_point():
            continue
        try:
            with torch.no_grad():
                if bool(torch.isnan(tensor).any()):
                    return name, "NaN"
                if parameter and bool(torch.isinf(tensor).any()):
                    return name, "inf"
        except (RuntimeError, NotImplementedError):  # a float8 or packed dtype without these kernels
            continue
    return None
