"""Where each part of a language model sits (its anatomy map), and hooks that read or replace a part.

Every view that works inside a model (logit lens, attention walk, attribution, patching, steering)
asks this map for its sites instead of finding them itself. ``anatomy(model)`` follows transformers'
conventions first (``get_input_embeddings``, ``get_output_embeddings``, ``get_decoder``,
``_no_split_modules``, the classes a model records outputs from), then the names its models use. The
map is plain data (dotted module names; ``Anatomy.module`` turns one back into the module); a part a
model lacks is None and named in ``missing``, and ``require`` makes that a view's one-line error.
``forward/hooks.py`` reads or rewrites a site's input or output.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llmscope.errors import ModelFormatError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

# The names transformers' models give each part, most common first (LFM2's last norm: embedding_norm).
BLOCK_LIST_NAMES = ("layers", "layer", "h", "blocks", "block")
FINAL_NORM_NAMES = ("norm", "ln_f", "final_layernorm", "final_layer_norm", "norm_f", "final_norm", "layer_norm",
                    "layernorm", "ln_out", "out_norm", "embedding_norm", "output_layernorm", "ln", "LayerNorm")
POSITION_NAMES = ("wpe", "position_embeddings", "embed_positions", "positions_embed", "position_embedding")
QUERY_NAMES = frozenset({"q_proj", "query", "q", "c_attn", "query_key_value", "qkv_proj", "Wqkv", "qkv", "Wq",
                         "q_lin", "q_a_proj", "query_proj", "project_q"})
ATTENTION_OUTPUT_NAMES = ("o_proj", "out_proj", "c_proj", "dense", "out_lin", "Wo", "o", "attention_out", "o_a_proj")
MLP_NAMES = ("mlp", "feed_forward", "ffn", "ff", "mlp_block", "block_sparse_moe", "moe")
MLP_CLASSES = re.compile(r"(MLP|Mlp|MoE|Moe|FeedForward|MoeBlock)$")  # Nemotron-H calls its MLP a "mixer"
MLP_OUTPUT_NAMES = ("down_proj", "fc2", "c_proj", "dense_4h_to_h", "w2", "fc_out", "wo", "Wo", "layer_2", "w_out")
MIXER_NAMES = ("mixer", "mamba", "mamba_decoder", "linear_attn", "temporal_block", "conv", "mlstm_layer",
               "self_attn", "attention", "self_attention", "attn")
HEAD_NAMES = ("cls", "lm_head", "predictions", "generator_lm_head")  # heads that transform, then unembed
# Not softmax self-attention, though transformers may record "attentions" from it (MiniMax's lightning attention)
NOT_SELF_ATTENTION = re.compile(r"Cross|Delta|Lightning|Mamba|LSTM")
CROSS_ATTENTION_NAMES = ("encoder_attn", "crossattention", "cross_attn")
UNUSED_EMBED_SCALE = frozenset({"whisper"})  # transformers 5.24: its decoder sets embed_scale, never applies it
MULTIPLIES_LOGITS_SCALING = frozenset({"hyperclovax"})  # transformers 5.24; Granite divides by logits_scaling
BLOCK_PARTS = ("attention", "attention_output", "mixer", "mlp", "mlp_output", "router")


@dataclasses.dataclass(frozen=True)
class BlockAnatomy:
    """One block (decoder layer): where its parts are, as dotted module names (None: it has none)."""

    index: int
    name: str  # "model.layers.3"
    attention: str | None  # softmax self-attention (its output is the heads' contribution)
    attention_output: str | None  # the projection whose input is the heads' outputs, concatenated
    mixer: str | None  # a token mixer that is not softmax attention: Mamba, linear attention, RWKV, short conv
    mlp: str | None  # the MLP, or the MoE block
    mlp_output: str | None  # a dense MLP's last projection: its input is the MLP's hidden units
    router: str | None  # a MoE block's router (gate)
    norms: tuple[str, ...]  # the block's own norms, in module order


@dataclasses.dataclass(frozen=True)
class Anatomy:
    """Where a model's parts are, as dotted names for ``module`` (``model.get_submodule``)."""

    model_type: str
    model_class: str
    embedding: str | None  # the token embedding (get_input_embeddings)
    positional_embedding: str | None  # a learned or sinusoidal one (GPT-2's wpe); None with RoPE
    backbone: str  # the module that runs the blocks ("model"; "" when it is the model itself)
    block_list: str | None  # "model.layers"
    blocks: tuple[BlockAnatomy, ...]
    final_norm: str | None
    unembedding: str | None  # the vocabulary projection (get_output_embeddings)
    head: str | None  # last hidden state -> logits: the unembedding, or a head around it (BERT's cls)
    tied: bool  # the unembedding's weight is the token embedding's
    embed_scale: float | None  # what the token embeddings are multiplied by before the first block
    embed_scale_site: str | None  # the module that multiplies: the embedding itself (Gemma) or the backbone
    final_logit_softcapping: float | None  # logits = tanh(logits / cap) * cap (Gemma 2, 3)
    logit_scale: float | None  # logits are multiplied by this (Cohere, Falcon-H1, HyperCLOVAX)
    logit_divisor: float | None  # logits are divided by this (Granite's logits_scaling)
    missing: tuple[str, ...]  # parts this model does not have (or that were not found)

    def module(self, model: nn.Module, name: str | None) -> nn.Module:
        if name is None:
            raise ModelFormatError(f"{self.model_type}: that part is not in this model")
        return model.get_submodule(name)

    def scale_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """What the model does to its LM head's output, in its order: scale, then soft-cap."""
        import torch

        if self.logit_scale is not None:
            logits = logits * self.logit_scale
        if self.logit_divisor is not None:
            logits = logits / self.logit_divisor
        if self.final_logit_softcapping:
            logits = torch.tanh(logits / self.final_logit_softcapping) * self.final_logit_softcapping
        return logits


def require(anatomy: Anatomy, *parts: str, layer: int | None = None) -> None:
    """Raise the one-line error (exit 1) a view gives when the model lacks PARTS. A block part
    ("attention", "router", ...) is looked for in LAYER, or, without one, in any block."""
    blocks = anatomy.blocks if layer is None else anatomy.blocks[layer : layer + 1]
    lacking = [p for p in parts if not (any(getattr(b, p) for b in blocks) if p in BLOCK_PARTS
                                        else getattr(anatomy, p))]
    where = f"layer {layer} of {anatomy.model_type}" if layer is not None else anatomy.model_type
    if lacking:
        raise ModelFormatError(f"{where} has no {', '.join(lacking).replace('_', ' ')}",
                               hint="llmscope inspect MODEL shows the parts it has")


# --------------------------------------------------------------------------------------------
# Building the map


def anatomy(model: nn.Module) -> Anatomy:
    """The anatomy map of a loaded causal or masked LM, or of a meta-device build."""
    config = getattr(model, "config", None)
    model_type = str(getattr(config, "model_type", None) or type(model).__name__)
    names = {id(m): n for n, m in model.named_modules()}
    embed, unembed = _call(model, "get_input_embeddings"), _call(model, "get_output_embeddings")
    backbone = _backbone(model)
    backbone_name = names.get(id(backbone), "")
    found = _block_list(model, backbone)
    block_list = _join(backbone_name, found[0]) if found else None
    holders = [model.get_submodule(block_list.rpartition(".")[0])] if block_list else []
    holders += [backbone, getattr(model, "base_model", backbone)]
    scale, scale_site = _embed_scale(embed, backbone, names) if model_type not in UNUSED_EMBED_SCALE else (None, None)
    cap, logit_scale, divisor = _logit_scaling(config)
    result = Anatomy(
        model_type=model_type, model_class=type(model).__name__, embedding=names.get(id(embed)),
        positional_embedding=_positional(backbone, backbone_name, block_list), backbone=backbone_name,
        block_list=block_list, blocks=_blocks(model, block_list, found[1]) if found else (),
        final_norm=_final_norm(holders, names), unembedding=names.get(id(unembed)), head=_head(model, unembed, names),
        tied=getattr(unembed, "weight", None) is getattr(embed, "weight", 0), embed_scale=scale,
        embed_scale_site=scale_site, final_logit_softcapping=cap, logit_scale=logit_scale, logit_divisor=divisor,
        missing=(),
    )
    return dataclasses.replace(result, missing=_missing(result))


def _call(model: nn.Module, method: str) -> nn.Module | None:
    """transformers' accessor's module, or None where there is none (or it is not implemented)."""
    from torch import nn

    try:
        found = getattr(model, method)()
    except Exception:  # a probe: a model without it, or one whose accessor is not implemented
        return None
    return found if isinstance(found, nn.Module) else None


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else prefix or name


def _backbone(model: nn.Module) -> nn.Module:
    """The module that runs the blocks: ``get_decoder()`` (a multimodal model's language model, an
    encoder-decoder's decoder), else the base model (ModernBERT-decoder's ``get_decoder`` is its head)."""
    from torch import nn

    decoder = _call(model, "get_decoder")
    if decoder is not None and any(isinstance(m, nn.ModuleList) for m in decoder.modules()):
        return decoder
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) else model


Spec = tuple[Any, Any, Any]  # (class, module-name suffix, layer name), as transformers' OutputRecorder holds them


def _recorded(model: nn.Module, key: str) -> list[Spec]:
    """What transformers records output KEY from, over every sub-model (``model_calls.recorded_outputs``
    reads the private declaration: a class, a name, or an OutputRecorder)."""
    from llmscope.loading.model_calls import recorded_outputs

    found = []
    for module in model.modules():
        specs = recorded_outputs(module, key)
        for spec in specs if isinstance(specs, (list, tuple)) else [specs] if specs is not None else []:
            if isinstance(spec, (type, str)):
                found.append((spec, None, None) if isinstance(spec, type) else (None, spec, None))
            else:
                found.append((spec.target_class, spec.class_name, spec.layer_name))
    return list(dict.fromkeys(found))


def _matches(specs: list[Spec], name: str, module: nn.Module) -> bool:
    """Whether transformers records from MODULE, named NAME: its class or name suffix matches, and
    the layer name, if the spec has one, sits between dots in NAME."""
    return any(((cls is not None and isinstance(module, cls)) or (suffix is not None and name.endswith(suffix)))
               and (layer is None or f".{layer.strip('.')}." in f".{name}.") for cls, suffix, layer in specs)


def _block_list(model: nn.Module, backbone: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The backbone's list of blocks: a ModuleList of the classes transformers keeps whole on one
    device (``_no_split_modules``) or records hidden states from, else one named like a block list;
    the shallowest, then the longest (BLT's global transformer; HRM's first of two equal stacks)."""
    from torch import nn

    kinds = {str(k) for k in (getattr(model, "_no_split_modules", None) or ())}
    hidden = _recorded(model, "hidden_states")
    best = None
    for name, module in backbone.named_modules():
        if not name or not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        blocks = all(type(m).__name__ in kinds or _matches(hidden, f"{name}.{i}", m) for i, m in enumerate(module))
        key = (0 if blocks else 1, name.count("."), -len(module))
        if (blocks or name.rpartition(".")[2] in BLOCK_LIST_NAMES) and (best is None or key < best[0]):
            best = (key, name, module)
    return (best[1], best[2]) if best else None


def _blocks(model: nn.Module, block_list: str, modules: nn.ModuleList) -> tuple[BlockAnatomy, ...]:
    """Every block's parts. Its attention is what transformers records "attentions" from, where that
    finds any; else a module named like attention that holds a query projection."""
    specs, routers = _recorded(model, "attentions"), _recorded(model, "router_logits")
    walks = [list(block.named_modules(prefix=f"{block_list}.{i}")) for i, block in enumerate(modules)]
    found = [_attention(walk, specs) for walk in walks] if specs else []
    if not any(found):
        found = [_attention(walk, None) for walk in walks]
    return tuple(_block(i, walk, attention, routers) for i, (walk, attention) in enumerate(zip(walks, found)))


def _attention(walk: list[tuple[str, nn.Module]], specs: list[Spec] | None) -> tuple[str, nn.Module] | None:
    for name, module in walk[1:]:
        kind = type(module).__name__
        if name.rpartition(".")[2] in CROSS_ATTENTION_NAMES or NOT_SELF_ATTENTION.search(kind):
            continue
        held = {n for n, _ in [*module.named_children(), *module.named_parameters(recurse=False)]}  # XLNet: q
        if _matches(specs, name, module) if specs is not None else (
                re.search("Attention|Attn", kind) and held & QUERY_NAMES):
            return name, module
    return None


def _child(module: nn.Module | None, prefix: str, names: Sequence[str]) -> str | None:
    """The first of NAMES that is a child module of MODULE, as a full name."""
    children = dict(module.named_children()) if module is not None else {}
    return next((f"{prefix}.{n}" for n in names if n in children), None)


def _block(index: int, walk: list[tuple[str, nn.Module]], attention: tuple[str, nn.Module] | None,
           routers: list[Spec]) -> BlockAnatomy:
    name, block = walk[0]
    by_name = dict(walk)
    children = dict(block.named_children())
    attention_name, attention_output = (attention[0] if attention else None), None
    if attention is not None:
        attention_output = _child(attention[1], attention_name, ATTENTION_OUTPUT_NAMES)
        parent = attention_name.rpartition(".")[0]
        if attention_output is None and parent != name:  # BERT: attention.self, then attention.output.dense
            attention_output = _child(dict(by_name[parent].named_children()).get("output"), f"{parent}.output",
                                      ["dense"])
    inside = f"{attention_name}." if attention else "\0"
    mlp = next((n for n, _ in sorted(walk[1:], key=lambda item: item[0].count("."))
                if n.rpartition(".")[2] in MLP_NAMES and not n.startswith(inside)), None)
    mlp = mlp or next((f"{name}.{n}" for n, m in children.items() if MLP_CLASSES.search(type(m).__name__)), None)
    mlp_output = _child(by_name[mlp] if mlp else block, mlp or name, MLP_OUTPUT_NAMES)
    if mlp_output is None and mlp is None and "intermediate" in children:  # BERT: intermediate, output.dense
        mlp_output = _child(children.get("output"), f"{name}.output", ["dense"])
    router = next((n for n, m in walk if mlp and n.startswith(f"{mlp}.") and _matches(routers, n, m)), None)
    router = router or (_child(by_name[mlp], mlp, ["gate", "router"]) if mlp else None)
    mixer = next((f"{name}.{n}" for n in MIXER_NAMES if n in children and f"{name}.{n}" != mlp
                  and not f"{attention_name}.".startswith(f"{name}.{n}.")), None)
    norms = tuple(f"{name}.{n}" for n, m in children.items() if "norm" in type(m).__name__.lower())
    return BlockAnatomy(index=index, name=name, attention=attention_name, attention_output=attention_output,
                        mixer=mixer, mlp=mlp, mlp_output=mlp_output, router=router, norms=norms)


def _final_norm(holders: list[nn.Module], names: dict[int, str]) -> str | None:
    """The norm after the last block: a child named like one of the module holding the blocks, else
    of the backbone or the base model."""
    for holder in holders:
        children = dict(holder.named_children())
        found = [children[n] for n in FINAL_NORM_NAMES if "norm" in type(children.get(n)).__name__.lower()]
        if found:
            return names.get(id(found[0]))
    return None


def _positional(backbone: nn.Module, backbone_name: str, block_list: str | None) -> str | None:
    inside = f"{block_list}." if block_list else "\0"
    return next((full for name, _ in backbone.named_modules() if name.rpartition(".")[2] in POSITION_NAMES
                 and not (full := _join(backbone_name, name)).startswith(inside)), None)


def _head(model: nn.Module, unembed: nn.Module | None, names: dict[int, str]) -> str | None:
    """What maps the last hidden state to logits: a head around the unembedding (BERT's cls:
    transform, then decoder), else the unembedding itself."""
    children = dict(model.named_children())
    for name in HEAD_NAMES:
        if name in children and (unembed is None or any(m is unembed for m in children[name].modules())):
            return name
    return names.get(id(unembed)) if unembed is not None else None


def _embed_scale(embed: nn.Module | None, backbone: nn.Module, names: dict[int, str]) -> tuple[Any, str | None]:
    """The factor the token embeddings are multiplied by, and the module that multiplies. Gemma's is a
    buffer in the weights' dtype (sqrt(hidden_size), rounded to it); a meta build holds no buffer
    values, so there its Python copy (``scalar_embed_scale``) stands in."""
    for module, attrs in ((embed, ("embed_scale", "scalar_embed_scale")),
                          (backbone, ("embed_scale", "embedding_multiplier", "normalizer"))):
        dtype = getattr(getattr(module, "weight", None), "dtype", None)
        for value in (_number(getattr(module, attr, None), dtype) for attr in attrs):
            if value is not None:
                return (value, names.get(id(module))) if value != 1 else (None, None)
    return None, None


def _number(value: Any, dtype: Any = None) -> float | None:
    """A Python or one-element tensor number as a float (the tensor cast to DTYPE, as the model
    multiplies by it); None for anything else and for a meta tensor, which holds no value."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if getattr(value, "device", None) is None or value.device.type == "meta" or value.numel() != 1:
        return None
    return float(value.to(dtype) if dtype is not None else value)


def _logit_scaling(config: Any) -> tuple[float | None, float | None, float | None]:
    """(soft-cap, multiplier, divisor) of the logits, read from the text config, else the top one."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config

    def read(name: str) -> float | None:
        value = next((v for v in (_number(getattr(c, name, None)) for c in (text, config)) if v is not None), None)
        return value if value not in (0.0, 1.0) else None

    multiplier = next((v for v in map(read, ("logit_scale", "lm_head_multiplier", "output_multiplier")) if v), None)
    divisor = read("logits_scaling")
    if divisor is not None and getattr(text, "model_type", None) in MULTIPLIES_LOGITS_SCALING:
        multiplier, divisor = (multiplier or 1.0) * divisor, None
    return read("final_logit_softcapping"), multiplier, divisor


def _missing(found: Anatomy) -> tuple[str, ...]:
    """Parts with no site: a model-wide one, attention or an MLP that no block has, an attention
    output projection that a block with attention lacks."""
    gone = [part for part in ("embedding", "blocks", "final_norm", "unembedding") if not getattr(found, part)]
    gone += ["attention"] if found.blocks and not any(b.attention for b in found.blocks) else []
    gone += ["mlp"] if found.blocks and not any(b.mlp or b.mlp_output for b in found.blocks) else []
    gone += ["attention_output"] if any(b.attention and not b.attention_output for b in found.blocks) else []
    return tuple(gone)
