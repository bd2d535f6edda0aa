"""What an attention module hands eager attention, recorded during one forward pass.

Every attention module built on transformers' attention interface resolves its modelling file's own
``eager_attention_forward`` by name when it runs (with ``attn_implementation="eager"``), and hands it the
heads' queries, keys and values after the projections, QK-norm and RoPE, the additive mask, the scale,
any soft-cap and window. Wrapping that function for the pass, and putting it back however the pass ends,
reads exactly what the model computes. Bloom's ALiBi attention predates the interface: its fused
projection, the ALiBi tensor and the weights it returns are read by hooks instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmscope.errors import ModelFormatError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


@dataclasses.dataclass
class Recorded:
    """The arguments one attention module gave its eager function, and what came back."""

    query: Any = None  # (batch, heads, tokens, head_dim)
    key: Any = None  # (batch, kv heads, tokens, head_dim)
    value: Any = None  # (batch, kv heads, tokens, value dim)
    mask: Any = None  # additive (batch, 1 or heads, tokens, tokens), or None
    bias: Any = None  # a position bias added to the scaled scores, (heads, 1 or tokens, tokens): ALiBi
    scaling: float | None = None
    softcap: float | None = None
    window: int | None = None
    output: Any = None  # (batch, tokens, heads, value dim)
    weights: Any = None  # (batch, heads, tokens, tokens)


@contextlib.contextmanager
def recording(module: nn.Module) -> Iterator[Recorded]:
    """Record what MODULE computes its attention from during the block, and what came back: where its
    modelling file has an ``eager_attention_forward`` (transformers' attention-interface convention,
    checked on 5.23 and 5.24), the arguments it receives; Bloom's ALiBi attention, from its own parts."""
    home = importlib.import_module(type(module).__module__)
    original = getattr(home, "eager_attention_forward", None)
    if original is None and hasattr(module, "query_key_value") and hasattr(module, "inv_norm_factor"):
        with _bloom(module) as seen:
            yield seen
        return
    if original is None:
        raise ModelFormatError(
            f"{type(module).__name__}'s attention does not go through transformers' attention functions",
            hint="the walk reads the queries and keys where transformers' eager attention receives them",
        )
    signature = inspect.signature(original)
    seen = Recorded()

    def recorder(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        bound = signature.bind_partial(*args, **kwargs)
        if bound.arguments.get("module") is module:
            named = {**bound.arguments.pop("kwargs", {}), **bound.arguments}
            seen.query, seen.key, seen.value = named["query"], named["key"], named["value"]
            seen.mask, seen.scaling = named.get("attention_mask"), named.get("scaling")
            seen.softcap, seen.window = named.get("softcap"), named.get("sliding_window")
            seen.output, seen.weights = out[0], out[1]
        return out

    home.eager_attention_forward = recorder
    try:
        yield seen
    finally:
        home.eager_attention_forward = original


@contextlib.contextmanager
def _bloom(module: nn.Module) -> Iterator[Recorded]:
    """Bloom: ``alibi.baddbmm(q, k^T, beta=1, alpha=inv_norm_factor)`` plus the mask, softmax, ``dense``.
    Its fused projection, the ALiBi tensor and mask it is handed and the weights it returns are read by hooks."""
    from llmscope.forward.hooks import capture

    seen = Recorded(scaling=float(module.inv_norm_factor))
    with capture(module.query_key_value) as fused, capture(module, "input") as called, \
            capture(module, "output", clone=False) as returned, capture(module.dense, "input") as merged:
        yield seen
    if not fused.hidden[0]:
        return
    b, t, _ = fused.value.shape
    heads, dim = module.num_heads, module.head_dim
    qkv = fused.value.view(b, t, heads, 3, dim)
    seen.query, seen.key, seen.value = (qkv[..., i, :].transpose(1, 2) for i in range(3))
    kwargs = called.raw[0][-1][1]
    seen.mask = kwargs.get("attention_mask")
    seen.bias = kwargs["alibi"].view(b, heads, 1, -1)[0]  # (heads, 1, keys)
    seen.weights = returned.raw[0][-1][1]
    seen.output = merged.value.view(b, t, heads, dim)
