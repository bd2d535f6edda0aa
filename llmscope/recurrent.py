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


@dataclasses.dataclass(frozen=True)
class RecurrentStateEstimate:
    """What the model's cache holds instead of keys and values: the same at any context length."""

    family: str
    batch: int
    layers: int
    tensors: list[StateTensor]
    bytes_per_layer: int
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
        return _hybrid_state_estimate(config, batch=batch, dtype=dtype)
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
    return _estimate(shape.family, parts, batch, layers)


def _estimate(kind: str, parts: list[tuple[str, list[int], str]], batch: int, layers: int) -> RecurrentStateEstimate:
    tensors = []
    for name, dims, dtype in parts:
        elements = batch
        for d in dims:
            elements *= int(d)
        tensors.append(StateTensor(name, [batch, *map(int, dims)], dtype, int(elements * DTYPE_BYTES[dtype])))
    per_layer = sum(t.bytes for t in tensors)
    return RecurrentStateEstimate(kind, batch, layers, tensors, per_layer, per_layer * layers)


def hybrid_state_layers(config: PretrainedConfig) -> int:
    """How many layers of a hybrid keep a conv / recurrent state in transformers' DynamicCache:
    its Mamba, linear-attention and short-convolution layers (0 for an attention-only model)."""
    from transformers.cache_utils import LinearAttentionCacheLayerMixin

    from llmscope.cache import dynamic_cache_layers

    try:
        layers = dynamic_cache_layers(text_config(config))
    except Exception:  # a config DynamicCache cannot read keeps no such state
        return 0
    return sum(isinstance(layer, LinearAttentionCacheLayerMixin) for layer in layers)


def _hybrid_state_estimate(config: PretrainedConfig, *, batch: int, dtype: str) -> RecurrentStateEstimate | None:
    """The conv and recurrent states of a hybrid's state layers, with the shapes its mixers give
    transformers' LinearAttentionLayer (tests compare with the cache after a forward pass)."""
    layers = hybrid_state_layers(config)
    if not layers:
        return None
    text = text_config(config)

    def get(*names: str) -> Any:
        for name in names:
            value = config_value(text, name, None)
            if value is not None:
                return value
        return None

    hidden = int(config_value(text, "hidden_size"))
    # transformers' scans keep the recurrent state in float32 whatever the model's dtype (measured on
    # its reference implementations), unless the config names a cache dtype (Nemotron-H)
    ssm_dtype = get("mamba_ssm_cache_dtype") or "float32"
    ssm_dtype = ssm_dtype if ssm_dtype in DTYPE_BYTES else "float32"
    if get("linear_num_value_heads") is not None:  # Gated DeltaNet: Qwen3-Next, Qwen 3.5, OLMo hybrid
        k_heads, k_dim = int(get("linear_num_key_heads")), int(get("linear_key_head_dim"))
        v_heads, v_dim = int(get("linear_num_value_heads")), int(get("linear_value_head_dim"))
        return _estimate("Gated DeltaNet", [
            ("conv_states", [2 * k_heads * k_dim + v_heads * v_dim, int(get("linear_conv_kernel_dim"))], dtype),
            ("recurrent_states", [v_heads, k_dim, v_dim], ssm_dtype)], batch, layers)
    d_state, d_conv = get("mamba_d_state", "ssm_state_size"), get("mamba_d_conv", "conv_kernel")
    heads = get("mamba_n_heads", "mamba_num_heads", "n_mamba_heads")
    head_dim = get("mamba_d_head", "mamba_head_dim", "mamba_headdim")
    if d_state is not None and d_conv is not None and heads is not None and head_dim is not None:
        # Mamba2 layers: Bamba, Falcon-H1, Granite 4 hybrid, Nemotron-H, Zamba2
        inner, groups = int(heads) * int(head_dim), int(get("mamba_n_groups", "n_groups", "mamba_ngroups") or 1)
        return _estimate("Mamba2", [
            ("conv_states", [inner + 2 * groups * int(d_state), int(d_conv)], dtype),
            ("recurrent_states", [int(heads), int(head_dim), int(d_state)], ssm_dtype)], batch, layers)
    if d_state is not None and d_conv is not None:  # Mamba layers: Jamba; Zamba splits them into heads
        inner = int(get("mamba_expand", "expand") * hidden)
        state = [int(heads), inner // int(heads), int(d_state)] if heads else [inner, int(d_state)]
        return _estimate("Mamba", [("conv_states", [inner, int(d_conv)], dtype),
                                   ("recurrent_states", state, ssm_dtype)], batch, layers)
    if get("conv_L_cache") is not None:  # LFM2's short convolutions: a conv state only
        return _estimate("short convolution", [("conv_states", [hidden, int(get("conv_L_cache"))], dtype)],
                         batch, layers)
    return None
