"""What the weights are: exact parameter counts by role, MoE experts, the GGUF mix, the module tree.

Everything here reads a model built on the meta device (shapes, no storage). A tensor shared by two
modules (tied embeddings) is one Parameter there and is counted once, as the checkpoint stores it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from llmscope.config.values import text_config

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn
    from transformers import PretrainedConfig

DTYPE_BYTES = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "int8": 1.0, "int4": 0.5}


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
    recurrent: int = 0  # state-space / recurrent mixers (Mamba, RWKV, xLSTM blocks)
    vision: int = 0  # a multimodal model's vision tower (everything above is its language model)
    audio: int = 0  # its audio tower
    projector: int = 0  # what maps the towers' outputs into the language model


@dataclasses.dataclass(frozen=True)
class MixtureOfExperts:
    num_experts: int
    num_experts_per_tok: int
    moe_layers: int
    parameters_per_expert: int  # one expert of one layer


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
    file_bytes: int  # the file on disk: header, metadata (the vocabulary), alignment and tensor data
    bits_per_weight: float
    types: list[GgufTensorType]
    tensor_bytes: int = 0  # the tensor data alone: what a runtime (llama.cpp) holds of the weights


@dataclasses.dataclass(frozen=True)
class ModuleNode:
    """One node of the module tree; ``count`` > 1 is a run of identical blocks folded into one."""

    name: str
    class_name: str
    parameters: int
    count: int = 1
    children: list[ModuleNode] = dataclasses.field(default_factory=list)
    input_shape: list[int] | None = None  # for a prompt of N tokens (inspect --modules --tokens N); None: unknown
    output_shape: list[int] | None = None


# --------------------------------------------------------------------------------------------
# Parameters


def _role(module: nn.Module, path: str, prefix: str, has_base: bool, moe: bool) -> str:
    """Which row of the breakdown a parameter of ``module`` (at ``path``, lower case) belongs to."""
    from torch import nn

    parts = path.split(".")
    component = _component(parts)
    if component:
        return component
    if "norm" in type(module).__name__.lower():
        return "norms"
    if isinstance(module, nn.Embedding) or "embed" in parts[-1]:
        return "embeddings"
    if has_base and not (path == prefix or path.startswith(prefix + ".")):
        return "lm_head"  # everything outside the base model is the head
    if "experts" in parts:
        return "experts"
    if moe and parts[-1] in ("gate", "router"):
        return "router"
    if any(p in ("mixer", "mamba", "mlstm_layer", "ssm") for p in parts):
        return "recurrent"
    if any(k in p for p in parts for k in ("attn", "attention")):
        return "attention"
    if any(p in ("mlp", "feed_forward", "ffn", "intermediate", "output", "block_sparse_moe") or
           "expert" in p or "mlp" in p for p in parts):
        return "mlp"
    return "other"


def _component(parts: list[str]) -> str | None:
    """The non-language part of a multimodal model a module belongs to, by its path."""
    for p in parts:
        if "projector" in p or p.startswith("multi_modal"):
            return "projector"
        if "vision" in p or "visual" in p:
            return "vision"
        if "audio" in p:
            return "audio"
    return None


def count_parameters(model: nn.Module, moe: MixtureOfExperts | None = None) -> ParameterCount:
    """Exact counts by role; a tensor shared by two modules (tied embeddings) is counted once."""
    prefix = getattr(model, "base_model_prefix", "") or ""
    has_base = bool(prefix) and hasattr(model, prefix)
    counts = dict.fromkeys(
        ("embeddings", "attention", "mlp", "experts", "router", "norms", "lm_head", "other", "recurrent", "vision",
         "audio", "projector"),
        0,
    )
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for _, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            counts[_role(module, module_name.lower(), prefix, has_base, moe is not None)] += param.numel()
    total = sum(counts.values())
    active = total
    if moe is not None:
        inactive = moe.num_experts - moe.num_experts_per_tok
        active = total - inactive * moe.parameters_per_expert * moe.moe_layers
    return ParameterCount(total=total, active=active, **counts)


def mixture_of_experts(config: PretrainedConfig, model: nn.Module) -> MixtureOfExperts | None:
    """The experts of a MoE model (None for a dense one): how many, how many per token, their size."""
    config = text_config(config)
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
# GGUF


def gguf_info(summary: dict[str, Any]) -> GgufInfo:
    """The GGUF tensor summary (from loading) as a result: per quantization type, biggest first."""
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
        tensor_bytes=stored,
    )


# --------------------------------------------------------------------------------------------
# Module tree


def module_tree(module: nn.Module, name: str = "", _seen: set[int] | None = None, *,
                shapes: dict[str, tuple] | None = None, path: str = "") -> ModuleNode:
    """The module tree with runs of identical blocks folded ("layers 0-31: Phi3DecoderLayer x32").

    A tensor shared by two modules (tied embeddings) counts where it is met first. ``shapes`` (module
    path -> (input, output) shape, ``config.shapes``) adds each module's shapes; a folded run shows its first.
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
            node = module_tree(first, label, seen, shapes=shapes, path=_join(path, first_name))
            children.append(dataclasses.replace(node, count=len(run)))
    else:
        children = [module_tree(child, child_name, seen, shapes=shapes, path=_join(path, child_name))
                    for child_name, child in items]
    own = 0
    for param in module.parameters(recurse=False):
        if id(param) not in seen:
            seen.add(id(param))
            own += param.numel()
    seen_shapes = (shapes or {}).get(path, (None, None))
    return ModuleNode(
        name=name or type(module).__name__,
        class_name=type(module).__name__,
        parameters=own + sum(c.parameters * c.count for c in children),
        children=children,
        input_shape=list(seen_shapes[0]) if seen_shapes[0] is not None else None,
        output_shape=list(seen_shapes[1]) if seen_shapes[1] is not None else None,
    )


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _same_block(a: nn.Module, b: nn.Module) -> bool:
    if type(a) is not type(b):
        return False
    shapes_a = [(n, tuple(p.shape)) for n, p in a.named_parameters()]
    shapes_b = [(n, tuple(p.shape)) for n, p in b.named_parameters()]
    return shapes_a == shapes_b


def decoder_layers_prefix(meta: nn.Module, num_layers: int) -> str | None:
    """The name of the ModuleList that holds the decoder (or encoder) blocks: 'model.layers'."""
    from torch import nn

    no_split = set(getattr(meta, "_no_split_modules", None) or [])
    best = None
    for name, module in meta.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers and len(module):
            if type(module[0]).__name__ in no_split:
                return name
            best = best or name
    return best
