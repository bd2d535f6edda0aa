"""State-space and recurrent models (Mamba, Mamba2, RWKV, xLSTM): their shape and their cache.

These models keep no keys and values: each layer carries a fixed-size state from token to token,
so their cache is the same size at any context length. The shapes here are the ones transformers'
own cache holds after a forward pass (``DynamicCache``'s LinearAttentionLayer for Mamba and Mamba2,
the ``state`` list for RWKV, ``xLSTMCache``); tests compare them with that object.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from llmscope.configs import config_value, text_config
from llmscope.weights import DTYPE_BYTES

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PretrainedConfig

STATE_DTYPE_BYTES = {**DTYPE_BYTES, "int64": 8.0}  # Qwen4-Exp caches its last token ids

FAMILIES = {"mamba": "Mamba", "falcon_mamba": "Mamba", "mamba2": "Mamba2", "rwkv": "RWKV", "xlstm": "xLSTM"}


@dataclasses.dataclass(frozen=True)
class StateSpaceShape:
    """What replaces attention in a recurrent model; fields that do not apply are None."""

    family: str  # Mamba, Mamba2, RWKV, xLSTM
    state_size: int | None  # SSM state per channel (Mamba d_state)
    conv_kernel: int | None  # the causal convolution's width
    expand: float | None  # inner width / hidden size
    intermediate_size: int | None  # the inner (expanded) width
    num_heads: int | None  # Mamba2, xLSTM
    head_dim: int | None  # Mamba2; xLSTM's value head size
    n_groups: int | None  # Mamba2 B/C groups


@dataclasses.dataclass(frozen=True)
class StateTensor:
    name: str  # conv_states, recurrent_states, ...
    shape: list[int]  # for one layer, batch first
    dtype: str
    bytes: int  # for one layer
    layers: int  # how many layers hold it: all of them, but where layer kinds differ (Inkling's sliding layers)


@dataclasses.dataclass(frozen=True)
class RecurrentStateEstimate:
    """What the model's cache holds instead of keys and values: the same at any context length."""

    family: str
    batch: int
    layers: int
    tensors: list[StateTensor]
    bytes_per_layer: int | None  # None where layers hold different tensors
    bytes: int


def family(config: PretrainedConfig) -> str | None:
    """The recurrent family of a model with no attention layers, else None."""
    return FAMILIES.get(text_config(config).model_type)


def state_space_shape(config: PretrainedConfig) -> StateSpaceShape | None:
    """The recurrent block's shape, read from the config (None for an attention model)."""
    kind = family(config)
    if kind is None:
        return None
    text = text_config(config)

    def get(name: str) -> Any:
        return config_value(text, name, None)

    hidden = int(config_value(text, "hidden_size"))
    if kind == "RWKV":
        return StateSpaceShape(kind, None, None, None, get("attention_hidden_size") or hidden, None, None, None)
    if kind == "xLSTM":
        return StateSpaceShape(kind, None, None, None, None, int(get("num_heads")), int(text.v_head_dim), None)
    expand = get("expand")
    inner = int(get("intermediate_size") or int(expand * hidden))
    if kind == "Mamba2":
        return StateSpaceShape(kind, int(get("state_size")), int(get("conv_kernel")), expand, inner,
                               int(get("num_heads")), int(get("head_dim")), int(get("n_groups")))
    return StateSpaceShape(kind, int(get("state_size")), int(get("conv_kernel")), expand, inner, None, None, None)


def recurrent_state_estimate(
    config: PretrainedConfig, *, batch: int = 1, dtype: str = "bfloat16"
) -> RecurrentStateEstimate | None:
    """The state transformers' cache holds for ``batch`` sequences: a recurrent model's, or the
    Mamba / linear-attention / short-convolution layers' of a hybrid (None: attention only)."""
    shape = state_space_shape(config)
    if shape is None:
        from llmscope.hybrid_state import hybrid_state_estimate

        return hybrid_state_estimate(config, batch=batch, dtype=dtype)
    text = text_config(config)
    layers = int(config_value(text, "num_hidden_layers"))
    hidden = int(config_value(text, "hidden_size"))
    if shape.family == "Mamba":
        parts = [("conv_states", [shape.intermediate_size, shape.conv_kernel], dtype),
                 ("recurrent_states", [shape.intermediate_size, shape.state_size], dtype)]
    elif shape.family == "Mamba2":
        conv_width = shape.intermediate_size + 2 * shape.n_groups * shape.state_size  # x, B and C
        parts = [("conv_states", [conv_width, shape.conv_kernel], dtype),
                 ("recurrent_states", [shape.num_heads, shape.head_dim, shape.state_size], dtype)]
    elif shape.family == "RWKV":
        # transformers' state list: 5 x (batch, hidden, layers); the last three in float32
        parts = [("attention_shift", [hidden], dtype), ("feed_forward_shift", [hidden], dtype),
                 ("numerator", [hidden], "float32"), ("denominator", [hidden], "float32"),
                 ("max", [hidden], "float32")]
    else:  # xLSTM: matrix memory C, normalizer n, stabilizer m per head
        qk = int(text.qk_head_dim)
        parts = [("C", [shape.num_heads, qk, shape.head_dim], dtype), ("n", [shape.num_heads, qk], dtype),
                 ("m", [shape.num_heads, 1], dtype)]
    return estimate_from_parts(shape.family, [(*part, layers) for part in parts], batch, layers)


def estimate_from_parts(
    kind: str, parts: list[tuple[str, list[int], str, int]], batch: int, layers: int
) -> RecurrentStateEstimate:
    """The estimate from its tensors: (name, dims after the batch, dtype, how many layers hold it)."""
    tensors = []
    for name, dims, dtype, holders in parts:
        elements = batch
        for d in dims:
            elements *= int(d)
        tensors.append(StateTensor(name, [batch, *map(int, dims)], dtype, int(elements * STATE_DTYPE_BYTES[dtype]),
                                   int(holders)))
    uniform = all(t.layers == layers for t in tensors)
    per_layer = sum(t.bytes for t in tensors) if uniform else None
    return RecurrentStateEstimate(kind, batch, layers, tensors, per_layer, sum(t.bytes * t.layers for t in tensors))
