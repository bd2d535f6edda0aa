"""The state a model keeps besides or instead of a KV cache: recurrent models' and hybrids' state layers.

Recurrent and state-space models (Mamba, Mamba2, RWKV, xLSTM) first.

These models keep no keys and values: each layer carries a fixed-size state from token to token,
so their cache is the same size at any context length. The shapes here are the ones transformers'
own cache holds after a forward pass (``DynamicCache``'s LinearAttentionLayer for Mamba and Mamba2,
the ``state`` list for RWKV, ``xLSTMCache``); tests compare them with that object.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmscope.config.values import config_value, text_config
from llmscope.config.parameters import DTYPE_BYTES

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

# --------------------------------------------------------------------------------------------
# The state a hybrid's non-attention layers keep beside its attention layers' KV cache.
#
# Each mixer keeps its own tensors: Mamba and Mamba2 layers a conv and an SSM state, Gated DeltaNet
# and KDA layers a conv state and a matrix memory per head, LFM2's and Inkling's short convolutions
# their last few inputs, MiniMax's lightning attention a K^T V matrix per head, RecurrentGemma's
# RG-LRU a conv state and a vector. The model type names the mixer (config field names alone do not:
# KDA and Gated DeltaNet both have ``linear_*`` heads); a type not listed is read by its field names.
# Shapes and dtypes are the ones transformers' cache (or, for RecurrentGemma, the blocks themselves)
# holds after a forward pass: tests compare them for every listed type.

# (name, per-layer dims after the batch, dtype, how many of the state layers hold it)
Part = tuple[str, list[int], str, int]


def hybrid_state_layers(config: PretrainedConfig) -> list[int]:
    """Indices of the layers that keep a conv / recurrent state in transformers' DynamicCache: a
    hybrid's Mamba, linear-attention and short-convolution layers (none for an attention-only model)."""
    from transformers.cache_utils import LinearAttentionCacheLayerMixin

    from llmscope.config.kv_cache import dynamic_cache_layers

    try:  # a looped model's layers once per visit, as its forward fills the cache
        layers = dynamic_cache_layers(text_config(config))
    except Exception:  # a config DynamicCache cannot read keeps no such state
        return []
    return [i for i, layer in enumerate(layers) if isinstance(layer, LinearAttentionCacheLayerMixin)]


def hybrid_state_estimate(config: PretrainedConfig, *, batch: int, dtype: str) -> RecurrentStateEstimate | None:
    """The conv and recurrent states of a hybrid's state layers for ``batch`` sequences (None when
    it has none, or when its mixer is not one of those known here)."""
    layers = hybrid_state_layers(config)
    if not layers:
        return None
    text = text_config(config)
    estimator = BY_MODEL_TYPE.get(text.model_type, _by_config_fields)
    found = estimator(_Reader(text), layers, dtype)
    if found is None:
        return None
    family, parts = found
    return estimate_from_parts(family, parts, batch, len(layers))


class _Reader:
    """The text config's values: the first of several names that is set."""

    def __init__(self, text: PretrainedConfig) -> None:
        self.text = text
        self.hidden = int(config_value(text, "hidden_size"))
        # transformers' scans keep an SSM / delta-rule state in float32 whatever the model's dtype
        # (measured on its reference implementations), unless the config names a cache dtype (Nemotron-H)
        ssm = self.get("mamba_ssm_cache_dtype") or "float32"
        self.ssm_dtype = ssm if ssm in DTYPE_BYTES else "float32"

    def get(self, *names: str) -> Any:
        for name in names:
            value = config_value(self.text, name, None)
            if value is not None:
                return value
        return None

    def int(self, *names: str) -> int:
        return int(self.get(*names))


Found = tuple[str, list[Part]] | None


def _gated_deltanet(c: _Reader, layers: list[int], dtype: str) -> Found:
    """Qwen3-Next, Qwen 3.5, OLMo hybrid: q, k and v through one conv; a k x v memory per value head.
    Qwen4-Exp's PLE layers add a dilated conv over the hyper-connection streams and the last token ids."""
    k_heads, k_dim = c.int("linear_num_key_heads"), c.int("linear_key_head_dim")
    v_heads, v_dim = c.int("linear_num_value_heads"), c.int("linear_value_head_dim")
    n = len(layers)
    parts: list[Part] = [
        ("conv_states", [2 * k_heads * k_dim + v_heads * v_dim, c.int("linear_conv_kernel_dim")], dtype, n),
        ("recurrent_states", [v_heads, k_dim, v_dim], c.ssm_dtype, n)]
    ple = [i for i in layers if i + 1 in (c.get("ple_layer_ids") or [])]
    if ple:  # Qwen4-Exp: its PLE layers also keep their short conv's inputs and the n-gram context
        ngram = c.int("ngram_size")
        parts += [("ple_conv_states", [c.hidden * c.int("hc_count"), (c.int("ple_conv_kernel_size") - 1) * ngram],
                   dtype, len(ple)),
                  ("ngram_context", [ngram - 1], "int64", len(ple))]
    return "Gated DeltaNet", parts


def _kda(c: _Reader, layers: list[int], dtype: str) -> Found:
    """Kimi Delta Attention (Kimi Linear, Ling hybrid): Gated DeltaNet with per-channel decay, its
    q, k, v of equal width; the memory is cast to float32 before it is cached."""
    heads, dim = c.int("linear_num_heads"), c.int("linear_head_dim")
    n = len(layers)
    return "KDA", [("conv_states", [3 * heads * dim, c.int("linear_conv_kernel_dim", "short_conv_kernel_size")], dtype, n),
                   ("recurrent_states", [heads, dim, dim], "float32", n)]


def _mamba2(c: _Reader, layers: list[int], dtype: str) -> Found:
    """Bamba, Falcon-H1, Granite 4 hybrid, Nemotron-H, Zamba2: x, B and C through one conv; a
    head_dim x d_state state per head."""
    d_state, d_conv = c.int("mamba_d_state", "ssm_state_size"), c.int("mamba_d_conv", "conv_kernel")
    heads = c.int("mamba_n_heads", "mamba_num_heads", "n_mamba_heads")
    head_dim = c.int("mamba_d_head", "mamba_head_dim", "mamba_headdim")
    groups = int(c.get("mamba_n_groups", "n_groups", "mamba_ngroups") or 1)
    n = len(layers)
    return "Mamba2", [("conv_states", [heads * head_dim + 2 * groups * d_state, d_conv], dtype, n),
                      ("recurrent_states", [heads, head_dim, d_state], c.ssm_dtype, n)]


def _mamba(c: _Reader, layers: list[int], dtype: str) -> Found:
    """Jamba; Zamba splits the inner width into heads."""
    inner = int(c.get("mamba_expand", "expand") * c.hidden)
    d_state, heads = c.int("mamba_d_state", "ssm_state_size"), c.get("n_mamba_heads", "mamba_n_heads", "mamba_num_heads")
    state = [int(heads), inner // int(heads), d_state] if heads else [inner, d_state]
    n = len(layers)
    return "Mamba", [("conv_states", [inner, c.int("mamba_d_conv", "conv_kernel")], dtype, n),
                     ("recurrent_states", state, c.ssm_dtype, n)]


def _short_conv(c: _Reader, layers: list[int], dtype: str) -> Found:
    """LFM2 / LFM3: a gated short convolution over the hidden state; a conv state only."""
    return "short convolution", [("conv_states", [c.hidden, c.int("conv_L_cache")], dtype, len(layers))]


def _lightning(c: _Reader, layers: list[int], dtype: str) -> Found:
    """MiniMax's lightning attention: a K^T V matrix per head, in MiniMaxCache's ``linear_cache``."""
    heads = c.int("num_attention_heads")
    head_dim = int(c.get("head_dim") or c.hidden // heads)
    return "lightning attention", [("linear_cache", [heads, head_dim, head_dim], dtype, len(layers))]


def _rg_lru(c: _Reader, layers: list[int], dtype: str) -> Found:
    """RecurrentGemma's RG-LRU blocks keep their state on the module, not in the cache: the conv's
    last ``conv1d_width - 1`` inputs and a float32 vector of the LRU's width."""
    width = c.int("lru_width") if c.get("lru_width") else c.hidden
    n = len(layers)
    return "RG-LRU", [("conv1d_state", [width, c.int("conv1d_width") - 1], dtype, n),
                      ("recurrent_states", [width], "float32", n)]


def _inkling(c: _Reader, layers: list[int], dtype: str) -> Found:
    """Inkling: four short convolutions in every layer (keys, values, after attention, after the
    MLP), computed and cached in float32; sliding layers have their own key/value width. Inkling2-Loop's
    looped layers keep theirs once per pass (``layers`` index the cache, its copies included)."""
    from llmscope.config.kv_cache import cache_layer_owners

    kinds = list(getattr(c.text, "layer_types", None) or [])
    owners = cache_layer_owners(c.text)
    sliding = sum(1 for i in layers if owners[i] < len(kinds) and kinds[owners[i]] == "hybrid_sliding")
    kernel = c.int("conv_kernel_size", "sconv_kernel_size")
    parts: list[Part] = []
    for label, count, heads, head_dim in (("", len(layers) - sliding, "num_key_value_heads", "head_dim"),
                                          (" (sliding layers)", sliding, "swa_num_key_value_heads", "swa_head_dim")):
        if count:
            width = c.int(heads) * c.int(head_dim)
            parts += [(f"k_sconv{label}", [width, kernel], "float32", count),
                      (f"v_sconv{label}", [width, kernel], "float32", count)]
    parts += [("attention_sconv", [c.hidden, kernel], "float32", len(layers)),
              ("mlp_sconv", [c.hidden, kernel], "float32", len(layers))]
    return "short convolution", parts


def _cca(c: _Reader, layers: list[int], dtype: str) -> Found:
    """ZAYA's compressed convolutional attention: q and k through two stacked convs (their inputs
    kept), and the previous token's delayed half of the values."""
    heads, kv_heads, head_dim = c.int("num_attention_heads"), c.int("num_key_value_heads"), c.int("head_dim")
    kernel = (c.int("cca_time0") - 1) + (c.int("cca_time1") - 1)
    n = len(layers)
    return "CCA", [("conv_states", [(heads + kv_heads) * head_dim, kernel], dtype, n),
                   ("recurrent_states", [kv_heads * head_dim // 2], dtype, n)]


def _by_config_fields(c: _Reader, layers: list[int], dtype: str) -> Found:
    """A model type not listed (a new one, or remote code): the mixer its config's field names suggest."""
    if c.get("linear_num_value_heads") is not None:
        return _gated_deltanet(c, layers, dtype)
    if c.get("linear_num_heads") is not None and c.get("linear_head_dim") is not None:
        return _kda(c, layers, dtype)
    if c.get("mamba_d_state", "ssm_state_size") is None or c.get("mamba_d_conv", "conv_kernel") is None:
        return _short_conv(c, layers, dtype) if c.get("conv_L_cache") is not None else None
    if (c.get("mamba_n_heads", "mamba_num_heads", "n_mamba_heads") is not None
            and c.get("mamba_d_head", "mamba_head_dim", "mamba_headdim") is not None):
        return _mamba2(c, layers, dtype)
    return _mamba(c, layers, dtype)


BY_MODEL_TYPE: dict[str, Callable[[_Reader, list[int], str], Found]] = {
    **dict.fromkeys(["qwen3_5_text", "qwen3_5_moe_text", "qwen3_next", "olmo_hybrid", "qwen4_exp_text"], _gated_deltanet),
    **dict.fromkeys(["bailing_hybrid", "kimi_linear"], _kda),
    **dict.fromkeys(["bamba", "falcon_h1", "granitemoehybrid", "nemotron_h", "zamba2"], _mamba2),
    **dict.fromkeys(["jamba", "zamba"], _mamba),
    **dict.fromkeys(["lfm2", "lfm2_moe", "lfm3"], _short_conv),
    "minimax": _lightning,
    "recurrent_gemma": _rg_lru,
    **dict.fromkeys(["inkling_text", "inkling2_text", "inkling2_loop_text"], _inkling),
    "zaya": _cca,
}
