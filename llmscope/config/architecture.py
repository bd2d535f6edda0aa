"""What a model is, from its config alone: shape, attention kind, MoE, exact parameters, memory.

The model is built on the meta device (every tensor has a shape and no storage), so inspecting a
70B model downloads only config.json and takes no memory. Parameters are counted on that build
with tied weights counted once, which is what the real checkpoint holds.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from llmscope import loading
from llmscope.loading import devices
from llmscope.loading import gguf_cache
from llmscope.loading import report_cache
from llmscope.config import deep_build
from llmscope.loading import library_errors
from llmscope.config.kv_cache import KVCacheEstimate, kv_cache_estimate
from llmscope.config.values import (
    LayerKind,
    activation,
    config_value,
    context_length,
    intermediate_size,
    key_value_heads,
    layer_kinds,
    rope,
    text_config,
    tied_embeddings,
    vocab_size,
)
from llmscope.config.shapes import module_shapes
from llmscope.errors import UsageError
from llmscope.config.state import RecurrentStateEstimate, StateSpaceShape, recurrent_state_estimate, state_space_shape
from llmscope.config.parameters import (
    DTYPE_BYTES,
    GgufInfo,
    MixtureOfExperts,
    ModuleNode,
    ParameterCount,
    gguf_info,
)

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn
    from transformers import PretrainedConfig

# --------------------------------------------------------------------------------------------
# Result types


DEFAULT_TOKENS = 6  # the prompt length of the module shapes (the course's "The capital of France is")


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    weights: dict[str, int]  # dtype name -> bytes of all weights
    kv_cache: KVCacheEstimate | None  # None for encoder-only and recurrent models
    recurrent_state: RecurrentStateEstimate | None = None  # state-space / recurrent models


@dataclasses.dataclass(frozen=True)
class ArchitectureReport:
    """``llmscope inspect``: the facts about one model. Field names follow the HF config."""

    model: str  # the display name, as in every result
    source: str  # the same name: the key inspect's --json had before "model"
    model_type: str
    architecture: str
    kind: str  # "causal" or "masked"
    dtype: str | None  # the checkpoint's dtype
    num_hidden_layers: int
    hidden_size: int
    vocab_size: int
    num_attention_heads: int | None  # None (and attention "none") for a recurrent model
    num_key_value_heads: int | None
    attention: str  # MHA, GQA, MQA, none
    gqa_group_size: int | None
    head_dim: int | None
    intermediate_size: int | None
    hidden_act: str | None
    mlp: str  # SwiGLU, GeGLU, MLP
    norm: str | None  # RMSNorm, LayerNorm
    qk_norm: bool
    position_encoding: str
    rope_theta: float | dict[str, float] | None
    rope_scaling: dict[str, Any] | None
    max_position_embeddings: int | None
    sliding_window: int | None
    layer_types: list[str] | None
    tie_word_embeddings: bool
    moe: MixtureOfExperts | None
    parameters: ParameterCount
    memory: MemoryEstimate
    gguf: GgufInfo | None = None
    modules: ModuleNode | None = None
    module_tokens: int | None = None  # the prompt length the module shapes are for
    module_shapes_missing: str | None = None  # why the module tree has no shapes (its forward failed)
    state_space: StateSpaceShape | None = None  # what replaces attention in Mamba, RWKV, xLSTM
    layer_kinds: list[LayerKind] | None = None  # where layers differ in shape (per-layer configs)


# --------------------------------------------------------------------------------------------
# The public function


def inspect_model(model: loading.ModelLike = None, *, modules: bool = False, tokens: int = DEFAULT_TOKENS
                  ) -> ArchitectureReport:
    """Describe MODEL (hub id, folder, .gguf, or None for the embedded default) from its config.
    ``modules``: the module tree too, with each module's input and output shape for a prompt of ``tokens``.

    A ``LoadSpec`` carries the revision, the GGUF file and ``trust_remote_code``; a ``LoadedModel`` is
    described from its own config (nothing is loaded again)."""
    if modules and tokens < 1:
        raise UsageError(f"`tokens={tokens}`: the prompt length for the module shapes must be at least 1")
    spec = loading.load_spec(model)
    source, trust_remote_code = loading.source_of(spec), spec.trust_remote_code
    key = f"shapes for {tokens}" if modules else False  # the tree and its shapes depend on both
    cached = report_cache.load(source, ArchitectureReport, modules=key, trust_remote_code=trust_remote_code)
    if cached is not None:  # the same config seen before: no torch, no transformers
        return cached
    config = loading.load_config(source, trust_remote_code=trust_remote_code)
    with library_errors.translate_errors(source, what="config"):
        meta = deep_build.build_meta_model(config, trust_remote_code=trust_remote_code)  # deep: a prefix
    gguf = gguf_cache.gguf_summary(source)
    report = architecture_report(config, meta, source=source.display_name, gguf=gguf, modules=modules,
                                 tokens=tokens, trust_remote_code=trust_remote_code)
    report_cache.store(source, report, modules=key, trust_remote_code=trust_remote_code)
    return report


def architecture_report(
    config: PretrainedConfig,
    meta: nn.Module,
    *,
    source: str,
    gguf: dict[str, Any] | None = None,
    modules: bool = False,
    tokens: int = DEFAULT_TOKENS,
    trust_remote_code: bool = False,
) -> ArchitectureReport:
    """Assemble the report from a config and the model built from it (on any device).

    A multimodal wrapper is described by its language model (``get_text_config()``); its vision and
    audio towers and projector are rows of the parameter breakdown.
    """
    masked = loading.is_masked_lm(config)
    text = text_config(config)
    hidden = int(config_value(text, "hidden_size"))
    heads, kv_heads, head_dim = _attention_shape(text, hidden)
    moe, parameters = deep_build.exact_counts(config, meta)  # whole-model counts, also from a prefix build
    rope_theta, rope_scaling = rope(text)
    max_positions = context_length(config)
    recurrent = state_space_shape(config)
    kv = None if masked or recurrent else kv_cache_estimate(config, context=int(max_positions or 2048))
    names = [n for n, _ in meta.named_parameters()]
    shapes, missing = module_shapes(config, tokens, trust_remote_code=trust_remote_code) if modules else ({}, None)
    return ArchitectureReport(
        model=source,
        source=source,
        model_type=config.model_type,
        architecture=type(meta).__name__,
        kind="masked" if masked else "causal",
        dtype=devices.checkpoint_dtype(config),
        num_hidden_layers=int(config_value(text, "num_hidden_layers")),
        hidden_size=hidden,
        vocab_size=vocab_size(config),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        attention=_attention_kind(heads, kv_heads),
        gqa_group_size=heads // kv_heads if heads and kv_heads else None,
        head_dim=head_dim,
        intermediate_size=intermediate_size(text, hidden),
        hidden_act=activation(text),
        mlp=_mlp_kind(text, names),
        norm=_norm_kind(meta),
        qk_norm=any(re.search(r"\b[qk]_(layer)?norm\b", n) for n in names),
        position_encoding=_position_encoding(text, names, rope_theta),
        rope_theta=rope_theta,
        rope_scaling=rope_scaling,
        max_position_embeddings=int(max_positions) if max_positions else None,
        sliding_window=config_value(text, "sliding_window", None),
        layer_types=list(getattr(text, "layer_types", None) or []) or None,
        tie_word_embeddings=tied_embeddings(config),
        moe=moe,
        parameters=parameters,
        memory=MemoryEstimate(
            weights={d: int(parameters.total * b) for d, b in DTYPE_BYTES.items()},
            kv_cache=kv,
            recurrent_state=None if masked else recurrent_state_estimate(config),  # a hybrid's too
        ),
        gguf=gguf_info(gguf) if gguf else None,
        modules=deep_build.whole_module_tree(meta, shapes) if modules else None,
        module_tokens=tokens if modules else None,
        module_shapes_missing=missing,
        state_space=recurrent,
        layer_kinds=layer_kinds(config),
    )


def _attention_shape(text: PretrainedConfig, hidden: int) -> tuple[int | None, int | None, int | None]:
    """Query heads, key/value heads and head size (the most common where layers differ); None for a
    recurrent model, which has no attention."""
    if state_space_shape(text) is not None:
        return None, None, None
    heads = int(config_value(text, "num_attention_heads"))
    kv_heads = key_value_heads(text, heads)
    head_dim = int(config_value(text, "head_dim", None) or hidden // heads)
    return heads, kv_heads, head_dim


def _attention_kind(heads: int | None, kv_heads: int | None) -> str:
    if heads is None or kv_heads is None:
        return "none"
    if kv_heads == heads:
        return "MHA"
    return "MQA" if kv_heads == 1 else "GQA"


# --------------------------------------------------------------------------------------------
# Shape details, read from the config and the module names


def _mlp_kind(config: PretrainedConfig, names: list[str]) -> str:
    gated = any(re.search(r"(gate_proj|gate_up_proj|\.w1\.|\.w3\.|gate_up\b|wi_0)", n) for n in names)
    act = (activation(config) or "").lower()
    if gated:
        if "silu" in act or "swish" in act:
            return "SwiGLU"
        if "gelu" in act:
            return "GeGLU"
        return f"gated ({act})" if act else "gated"
    return f"MLP ({act.upper() if act else '?'})"


def _norm_kind(model: nn.Module) -> str | None:
    kinds = {type(m).__name__ for m in model.modules() if "norm" in type(m).__name__.lower()}
    if any("rmsnorm" in k.lower() for k in kinds):
        return "RMSNorm"
    if any("layernorm" in k.lower() for k in kinds):
        return "LayerNorm"
    return sorted(kinds)[0] if kinds else None


def _position_encoding(config: PretrainedConfig, names: list[str], theta: Any) -> str:
    if getattr(config, "alibi", False) or config.model_type in ("bloom",) or getattr(
        getattr(config, "attn_config", None), "alibi", False
    ):
        return "ALiBi"
    if theta is not None:
        return "RoPE"
    if any(re.search(r"(wpe|position_embeddings|embed_positions)", n) for n in names):
        return "learned absolute"
    return getattr(config, "position_embedding_type", None) or "none"
