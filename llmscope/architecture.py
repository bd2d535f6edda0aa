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
from llmscope.resolve import resolve

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn
    from transformers import PretrainedConfig

DTYPE_BYTES = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "int8": 1.0, "int4": 0.5}


# --------------------------------------------------------------------------------------------
# Result types


@dataclasses.dataclass(frozen=True)
class ParameterCount:
    """Exact parameter counts, tied weights once. ``active`` is per token (MoE), else = total."""

    total: int
    active: int
    embeddings: int
    attention: int
    mlp: int
    experts: int
    router: int
    norms: int
    lm_head: int
    other: int


@dataclasses.dataclass(frozen=True)
class MixtureOfExperts:
    num_experts: int
    num_experts_per_tok: int
    moe_layers: int
    parameters_per_expert: int  # one expert of one layer


@dataclasses.dataclass(frozen=True)
class KVCacheLayerGroup:
    """Cache layers of one kind (full attention, or sliding over the same window)."""

    layer_type: str  # transformers' name: full_attention, sliding_attention, chunked_attention
    layers: list[int]
    num_key_value_heads: int
    head_dim: int
    sliding_window: int | None
    tokens_kept: int  # per sequence, at the context length
    bytes_per_token: int  # for all these layers, batch included, while under the window
    bytes: int  # for all these layers at the context length


@dataclasses.dataclass(frozen=True)
class KVCacheEstimate:
    """What transformers' DynamicCache holds for ``context`` tokens of ``batch`` sequences."""

    dtype: str
    context: int
    batch: int
    bytes_per_token: int
    bytes: int
    layers: list[KVCacheLayerGroup]


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    weights: dict[str, int]  # dtype name -> bytes of all weights
    kv_cache: KVCacheEstimate | None  # None for encoder-only models


@dataclasses.dataclass(frozen=True)
class GgufTensorType:
    type: str  # Q4_K, Q6_K, F32...
    tensors: int
    elements: int
    bytes: int

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.bytes / self.elements if self.elements else 0.0


@dataclasses.dataclass(frozen=True)
class GgufInfo:
    file_type: str | None
    file_bytes: int
    bits_per_weight: float
    types: list[GgufTensorType]


@dataclasses.dataclass(frozen=True)
class ModuleNode:
    """One node of the module tree; ``count`` > 1 is a run of identical blocks folded into one."""

    name: str
    class_name: str
    parameters: int
    count: int = 1
    children: list[ModuleNode] = dataclasses.field(default_factory=list)


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
    num_attention_heads: int
    num_key_value_heads: int
    attention: str  # MHA, GQA, MQA
    gqa_group_size: int
    head_dim: int
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


# --------------------------------------------------------------------------------------------
# The public function


def inspect_model(
    model: str | None = None,
    *,
    revision: str | None = None,
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
    modules: bool = False,
) -> ArchitectureReport:
    """Describe MODEL (hub id, folder, .gguf, or None for the embedded default) from its config."""
    source = resolve(model, revision=revision, gguf_file=gguf_file)
    config = loading.load_config(source, trust_remote_code=trust_remote_code)
    with loading.translate_errors(source, what="config"):
        meta = loading.build_meta_model(config, trust_remote_code=trust_remote_code)
    gguf = loading.gguf_summary(source)
    return architecture_report(config, meta, source=source.display_name, gguf=gguf, modules=modules)


def architecture_report(
    config: PretrainedConfig,
    meta: nn.Module,
    *,
    source: str,
    gguf: dict[str, Any] | None = None,
    modules: bool = False,
) -> ArchitectureReport:
    """Assemble the report from a config and the model built from it (on any device)."""
    masked = loading.is_masked_lm(config)
    heads = int(_get(config, "num_attention_heads"))
    kv_heads = int(_get(config, "num_key_value_heads", heads) or heads)
    hidden = int(_get(config, "hidden_size"))
    head_dim = int(_get(config, "head_dim", None) or hidden // heads)
    moe = _mixture_of_experts(config, meta)
    parameters = count_parameters(meta, moe)
    if kv_heads == heads:
        attention = "MHA"
    elif kv_heads == 1:
        attention = "MQA"
    else:
        attention = "GQA"
    rope_theta, rope_scaling = _rope(config)
    max_positions = _get(config, "max_position_embeddings", None)
    kv = None if masked else kv_cache_estimate(config, context=int(max_positions or 2048))
    names = [n for n, _ in meta.named_parameters()]
    gguf_info = _gguf_info(gguf) if gguf else None
    return ArchitectureReport(
        model=source,
        source=source,
        model_type=config.model_type,
        architecture=type(meta).__name__,
        kind="masked" if masked else "causal",
        dtype=loading.checkpoint_dtype(config),
        num_hidden_layers=int(_get(config, "num_hidden_layers")),
        hidden_size=hidden,
        vocab_size=int(_get(config, "vocab_size")),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        attention=attention,
        gqa_group_size=heads // kv_heads,
        head_dim=head_dim,
        intermediate_size=_intermediate_size(config, hidden),
        hidden_act=_activation(config),
        mlp=_mlp_kind(config, names),
        norm=_norm_kind(meta),
        qk_norm=any(re.search(r"\b[qk]_(layer)?norm\b", n) for n in names),
        position_encoding=_position_encoding(config, names, rope_theta),
        rope_theta=rope_theta,
        rope_scaling=rope_scaling,
        max_position_embeddings=int(max_positions) if max_positions else None,
        sliding_window=_get(config, "sliding_window", None),
        layer_types=list(getattr(config, "layer_types", None) or []) or None,
        tie_word_embeddings=bool(_tied(config)),
        moe=moe,
        parameters=parameters,
        memory=MemoryEstimate(
            weights={d: int(parameters.total * b) for d, b in DTYPE_BYTES.items()},
            kv_cache=kv,
        ),
        gguf=gguf_info,
        modules=module_tree(meta) if modules else None,
    )


# --------------------------------------------------------------------------------------------
# Parameters


def count_parameters(model: nn.Module, moe: MixtureOfExperts | None = None) -> ParameterCount:
    """Exact counts by role; a tensor shared by two modules (tied embeddings) is counted once."""
    from torch import nn

    prefix = getattr(model, "base_model_prefix", "") or ""
    has_base = bool(prefix) and hasattr(model, prefix)
    counts = dict.fromkeys(("embeddings", "attention", "mlp", "experts", "router", "norms", "lm_head", "other"), 0)
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for _, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            path = module_name.lower()
            parts = path.split(".")
            if "norm" in type(module).__name__.lower():
                role = "norms"
            elif isinstance(module, nn.Embedding) or "embed" in parts[-1]:
                role = "embeddings"
            elif has_base and not (path == prefix or path.startswith(prefix + ".")):
                role = "lm_head"  # everything outside the base model is the head
            elif "experts" in parts:
                role = "experts"
            elif moe is not None and parts[-1] in ("gate", "router"):
                role = "router"
            elif any(k in p for p in parts for k in ("attn", "attention")):
                role = "attention"
            elif any(p in ("mlp", "feed_forward", "ffn", "intermediate", "output", "block_sparse_moe") or
                     "expert" in p or "mlp" in p for p in parts):
                role = "mlp"
            else:
                role = "other"
            counts[role] += param.numel()
    total = sum(counts.values())
    active = total
    if moe is not None:
        inactive = moe.num_experts - moe.num_experts_per_tok
        active = total - inactive * moe.parameters_per_expert * moe.moe_layers
    return ParameterCount(total=total, active=active, **counts)


def _mixture_of_experts(config: PretrainedConfig, model: nn.Module) -> MixtureOfExperts | None:
    experts = next(
        (
            int(v)
            for k in ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
            if isinstance(v := getattr(config, k, None), int) and v > 1
        ),
        None,
    )
    per_tok = getattr(config, "num_experts_per_tok", None) or getattr(config, "moe_topk", None)
    if not experts or not per_tok:
        return None
    expert_params: dict[str, int] = {}  # per 'experts' module (one per MoE layer)
    seen: set[int] = set()
    for name, param in model.named_parameters():
        parts = name.split(".")
        if "experts" in parts and id(param) not in seen:
            seen.add(id(param))
            key = ".".join(parts[: parts.index("experts") + 1])
            expert_params[key] = expert_params.get(key, 0) + param.numel()
    if not expert_params:
        return None
    per_layer = next(iter(expert_params.values()))
    return MixtureOfExperts(
        num_experts=experts,
        num_experts_per_tok=int(per_tok),
        moe_layers=len(expert_params),
        parameters_per_expert=per_layer // experts,
    )


# --------------------------------------------------------------------------------------------
# KV cache


def kv_cache_estimate(
    config: PretrainedConfig, *, context: int, batch: int = 1, dtype: str = "bfloat16"
) -> KVCacheEstimate:
    """Bytes of keys and values that transformers' DynamicCache holds for this many tokens.

    The cache layout (which layers slide, over what window) comes from ``DynamicCache(config=...)``
    itself rather than from rules per architecture; heads and head size per layer from the config.
    A sliding layer keeps its last ``sliding_window - 1`` tokens, as DynamicSlidingWindowLayer does.
    """
    from transformers import DynamicCache

    element = DTYPE_BYTES[dtype]
    text_config = config.get_text_config(decoder=True)
    cache = DynamicCache(config=text_config)
    per_layer = getattr(text_config, "per_layer_config", None) or [text_config] * len(cache.layers)
    layer_types = list(getattr(text_config, "layer_types", None) or [])
    groups: dict[tuple[str, int | None, int, int], list[int]] = {}
    for index, (layer, layer_config) in enumerate(zip(cache.layers, per_layer)):
        window = getattr(layer, "sliding_window", None)
        window = int(window) if window is not None else None
        kind = layer_types[index] if index < len(layer_types) else ("sliding_attention" if window else "full_attention")
        if kind == "dummy":  # shares another layer's cache, or holds none
            continue
        heads = _get(layer_config, "num_attention_heads")
        kv_heads = int(_get(layer_config, "num_key_value_heads", heads) or heads)
        head_dim = int(_get(layer_config, "head_dim", None) or _get(layer_config, "hidden_size") // heads)
        groups.setdefault((kind, window, kv_heads, head_dim), []).append(index)
    out: list[KVCacheLayerGroup] = []
    for (kind, window, kv_heads, head_dim), layers in groups.items():
        kept = min(context, window - 1) if window else context
        per_token = int(2 * batch * kv_heads * head_dim * element * len(layers))  # keys and values
        out.append(
            KVCacheLayerGroup(
                layer_type=kind,
                layers=layers,
                num_key_value_heads=kv_heads,
                head_dim=head_dim,
                sliding_window=window,
                tokens_kept=kept,
                bytes_per_token=per_token,
                bytes=per_token * kept,
            )
        )
    return KVCacheEstimate(
        dtype=dtype,
        context=context,
        batch=batch,
        bytes_per_token=sum(g.bytes_per_token for g in out),
        bytes=sum(g.bytes for g in out),
        layers=out,
    )


# --------------------------------------------------------------------------------------------
# Shape details, read from the config and the module names


def _get(config: Any, name: str, default: Any = ...) -> Any:
    """A config attribute by its HF name (attribute_map aliases included)."""
    value = getattr(config, name, None)
    if value is None and default is ...:
        raise loading.ModelFormatError(f"the config has no {name}", hint="is this a language model config?")
    return default if value is None else value


def _tied(config: PretrainedConfig) -> bool:
    text = config.get_text_config(decoder=True)
    return bool(getattr(text, "tie_word_embeddings", getattr(config, "tie_word_embeddings", False)))


def _intermediate_size(config: PretrainedConfig, hidden: int) -> int | None:
    for name in ("intermediate_size", "n_inner", "ffn_dim", "moe_intermediate_size"):
        value = getattr(config, name, None)
        if value:
            return int(value)
    if config.model_type == "gpt2":
        return 4 * hidden  # GPT-2's n_inner=None means 4 x hidden
    return None


def _activation(config: PretrainedConfig) -> str | None:
    for name in ("hidden_activation", "hidden_act", "activation_function"):
        value = getattr(config, name, None)
        if value:
            return str(value)
    return None


def _mlp_kind(config: PretrainedConfig, names: list[str]) -> str:
    gated = any(re.search(r"(gate_proj|gate_up_proj|\.w1\.|\.w3\.|gate_up\b|wi_0)", n) for n in names)
    act = (_activation(config) or "").lower()
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


def _rope(config: PretrainedConfig) -> tuple[float | dict[str, float] | None, dict[str, Any] | None]:
    """RoPE base frequency (per layer type where they differ) and scaling, if the model uses RoPE."""
    params = getattr(config, "rope_parameters", None)
    theta: float | dict[str, float] | None = None
    scaling: dict[str, Any] | None = None
    if isinstance(params, dict) and params:
        if all(isinstance(v, dict) for v in params.values()):  # one entry per layer type
            theta = {k: float(v["rope_theta"]) for k, v in params.items() if "rope_theta" in v}
            scaled = {k: v for k, v in params.items() if v.get("rope_type", "default") != "default"}
            scaling = scaled or None
        else:
            theta = float(params["rope_theta"]) if "rope_theta" in params else None
            if params.get("rope_type", "default") != "default":
                scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    elif getattr(config, "rope_theta", None) is not None:
        theta = float(config.rope_theta)
        scaling = getattr(config, "rope_scaling", None) or None
    if isinstance(theta, dict) and len(set(theta.values())) == 1:
        theta = next(iter(theta.values()))
    return theta, scaling


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


def _gguf_info(summary: dict[str, Any]) -> GgufInfo:
    types = [
        GgufTensorType(type=name, tensors=v["tensors"], elements=v["elements"], bytes=v["bytes"])
        for name, v in sorted(summary["types"].items(), key=lambda kv: -kv[1]["bytes"])
    ]
    elements = sum(t.elements for t in types)
    stored = sum(t.bytes for t in types)
    return GgufInfo(
        file_type=summary.get("file_type"),
        file_bytes=int(summary["file_bytes"]),
        bits_per_weight=8 * stored / elements if elements else 0.0,
        types=types,
    )


# --------------------------------------------------------------------------------------------
# Module tree


def module_tree(module: nn.Module, name: str = "", _seen: set[int] | None = None) -> ModuleNode:
    """The module tree with runs of identical blocks folded ("layers 0-31: Phi3DecoderLayer x32").

    A tensor shared by two modules (tied embeddings) counts where it is met first.
    """
    from torch import nn

    seen = set() if _seen is None else _seen

    children: list[ModuleNode] = []
    items = list(module.named_children())
    if isinstance(module, nn.ModuleList) and items:
        runs: list[list[tuple[str, nn.Module]]] = []
        for child_name, child in items:
            if runs and _same_block(runs[-1][0][1], child):
                runs[-1].append((child_name, child))
            else:
                runs.append([(child_name, child)])
        for run in runs:
            first_name, first = run[0]
            label = first_name if len(run) == 1 else f"{first_name}-{run[-1][0]}"
            node = module_tree(first, label, seen)
            children.append(dataclasses.replace(node, count=len(run)))
    else:
        children = [module_tree(child, child_name, seen) for child_name, child in items]
    own = 0
    for param in module.parameters(recurse=False):
        if id(param) not in seen:
            seen.add(id(param))
            own += param.numel()
    return ModuleNode(
        name=name or type(module).__name__,
        class_name=type(module).__name__,
        parameters=own + sum(c.parameters * c.count for c in children),
        children=children,
    )


def _same_block(a: nn.Module, b: nn.Module) -> bool:
    if type(a) is not type(b):
        return False
    shapes_a = [(n, tuple(p.shape)) for n, p in a.named_parameters()]
    shapes_b = [(n, tuple(p.shape)) for n, p in b.named_parameters()]
    return shapes_a == shapes_b
