"""Exact parameter counts of a deep model without building every layer.

A config may declare 100,000 decoder layers (by mistake, or to hurt): building them all on the meta
device takes minutes and gigabytes of Python objects. The layers are few kinds repeated, so the
model is built with a prefix of its layers that holds every kind (and a second layer of each kind
where it can, to check that layers of one kind are alike), then each kind's layer is counted once
more for every layer of that kind past the prefix.

A layer's kind is read from the config: its entry in every per-layer list (``layer_types``, per-layer
head counts...), whether its index is in an index list (``mlp_only_layers``), and the index rules
transformers' models use (``decoder_sparse_step``, ``first_k_dense_replace``, ``moe_layer_freq``...).
Where the prefix would be long, layers share weights, or two layers of one kind differ, the whole
model is built as before.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import TYPE_CHECKING, Any

from llmscope import loading
from llmscope.config.values import config_value, text_config
from llmscope.config.parameters import MixtureOfExperts, ParameterCount, count_parameters, mixture_of_experts

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn
    from transformers import PretrainedConfig

FULL_BUILD_LIMIT = 256  # layers built one by one at most; deeper models are built as a prefix
_MARK = "_llmscope_layer_extra"  # on a prefix build: {layer path: how many more layers it stands for}
# Index rules: (config attribute, what of the layer index i it decides)
_PERIODS = ("decoder_sparse_step", "interleave_moe_layer_step", "moe_layer_freq", "sliding_window_pattern",
            "no_rope_layer_interval", "attn_layer_period", "expert_layer_period", "full_attn_interval",
            "moe_every_k_layers", "global_attn_every_n_layers", "shared_layer_interval")
_THRESHOLDS = ("first_k_dense_replace", "moe_layer_start_index", "attn_layer_offset", "expert_layer_offset",
               "num_dense_layers", "first_dense_layers", "moe_layer_end_index", "last_k_dense")


def build_meta_model(config: PretrainedConfig, *, trust_remote_code: bool = False) -> nn.Module:
    """The model on the meta device, as ``loading.build_meta_model``; a deep one as a prefix of its
    layers that ``exact_counts`` and ``full_model`` know how to read."""
    layers = _num_layers(config)
    if layers is None or layers <= FULL_BUILD_LIMIT:
        return loading.build_meta_model(config, trust_remote_code=trust_remote_code)
    keys = layer_keys(text_config(config), layers)
    first: dict[Any, int] = {}
    second: dict[Any, int] = {}
    for i, key in enumerate(keys):
        if key not in first:
            first[key] = i
        elif key not in second:
            second[key] = i
    prefix = max(max(first.values()), max(second.values(), default=0)) + 1
    if prefix > FULL_BUILD_LIMIT:
        return loading.build_meta_model(config, trust_remote_code=trust_remote_code)
    meta = loading.build_meta_model(prefix_config(config, prefix, layers), trust_remote_code=trust_remote_code)
    extra = _extra_layers(meta, keys, prefix)
    if extra is not None:  # what lies outside the layers must not grow with them (Gemma 4's per-layer inputs)
        longer = loading.build_meta_model(prefix_config(config, prefix + 1, layers), trust_remote_code=trust_remote_code)
        if _outside_layers(meta, prefix) != _outside_layers(longer, prefix + 1):
            extra = None
    if extra is None:
        return loading.build_meta_model(config, trust_remote_code=trust_remote_code)
    meta.__dict__[_MARK] = extra
    meta.__dict__["_llmscope_full"] = (config, trust_remote_code)  # not a submodule
    return meta


def _num_layers(config: PretrainedConfig) -> int | None:
    value = config_value(text_config(config), "num_hidden_layers", None)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def layer_keys(text: PretrainedConfig, layers: int) -> list[tuple]:
    """Per layer, what in the config can make it differ from another layer."""
    per_layer, index_lists, periods, thresholds = [], [], [], []
    for name, value in sorted(vars(text).items()):
        if isinstance(value, (list, tuple)):
            if len(value) == layers:  # one entry per layer
                per_layer.append([_hashable(v) for v in value])
            elif value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                index_lists.append(frozenset(value))  # mlp_only_layers, full_attn_idxs
        elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
            if name in _PERIODS:
                periods.append(value)
            elif name in _THRESHOLDS:
                thresholds.append(value)
    return [
        (
            tuple(values[i] for values in per_layer),
            tuple(i in members for members in index_lists),
            tuple(i % period for period in periods),
            tuple(min(i, bound) for bound in thresholds),
        )
        for i in range(layers)
    ]


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def prefix_config(config: PretrainedConfig, prefix: int, layers: int) -> PretrainedConfig:
    """CONFIG with its first PREFIX layers: per-layer lists cut to match."""
    small = copy.deepcopy(config)
    text = text_config(small)
    for name, value in list(vars(text).items()):
        if isinstance(value, (list, tuple)) and len(value) == layers:
            setattr(text, name, type(value)(value[:prefix]))
    text.num_hidden_layers = prefix
    return small


def _layer_list(meta: nn.Module, count: int) -> tuple[str, Any] | None:
    from llmscope.config.parameters import decoder_layers_prefix

    name = decoder_layers_prefix(meta, count)
    return (name, meta.get_submodule(name)) if name else None


def _outside_layers(meta: nn.Module, count: int) -> list[tuple[str, tuple]] | None:
    """The parameters outside the decoder layers: names and shapes."""
    found = _layer_list(meta, count)
    if found is None:
        return None
    inside = {id(p) for p in found[1].parameters()}
    return [(n, tuple(p.shape)) for n, p in meta.named_parameters() if id(p) not in inside]


def _signature(layer: nn.Module) -> tuple:
    return type(layer).__name__, tuple((n, tuple(p.shape)) for n, p in layer.named_parameters())


def _extra_layers(meta: nn.Module, keys: list[tuple], prefix: int) -> dict[str, int] | None:
    """{path of the first layer of each kind: layers of that kind past the prefix}; None where the
    prefix build does not bear the kinds out (layers sharing weights, one kind built two ways)."""
    found = _layer_list(meta, prefix)
    if found is None:
        return None
    name, layers = found
    owners: dict[int, int] = {}
    for j, layer in enumerate(layers):
        for param in layer.parameters():
            if owners.setdefault(id(param), j) != j:
                return None  # weights shared across layers: multiplying would count them again
    signatures: dict[tuple, tuple] = {}
    first: dict[tuple, int] = {}
    for j in range(prefix):
        if signatures.setdefault(keys[j], _signature(layers[j])) != _signature(layers[j]):
            return None
        first.setdefault(keys[j], j)
    extra: dict[str, int] = {}
    for key in keys[prefix:]:
        path = f"{name}.{first[key]}"
        extra[path] = extra.get(path, 0) + 1
    return extra


def is_prefix_build(meta: nn.Module) -> bool:
    return bool(getattr(meta, _MARK, None))


def exact_counts(config: PretrainedConfig, meta: nn.Module) -> tuple[MixtureOfExperts | None, ParameterCount]:
    """``mixture_of_experts`` and ``count_parameters`` of the whole model, from a full or prefix build."""
    moe = mixture_of_experts(config, meta)
    counts = count_parameters(meta, moe)
    extra: dict[str, int] = getattr(meta, _MARK, None) or {}
    if not extra:
        return moe, counts
    from torch import nn

    totals = dataclasses.asdict(counts)
    extra_moe_layers = 0
    for path, times in extra.items():
        parent_name, _, index = path.rpartition(".")
        parent = meta.get_submodule(parent_name)
        layer = parent[int(index)]
        parent[int(index)] = nn.Identity()  # the counts without this layer: the difference is the layer's
        try:
            without = dataclasses.asdict(count_parameters(meta, moe))
        finally:
            parent[int(index)] = layer
        for field, value in dataclasses.asdict(counts).items():
            totals[field] += times * (value - without[field])
        if any("experts" in n.split(".") for n, _ in layer.named_parameters()):
            extra_moe_layers += times
    if moe is not None:
        moe = dataclasses.replace(moe, moe_layers=moe.moe_layers + extra_moe_layers)
        totals["active"] = totals["total"] - (moe.num_experts - moe.num_experts_per_tok) * (
            moe.parameters_per_expert * moe.moe_layers
        )
    else:
        totals["active"] = totals["total"]
    return moe, ParameterCount(**totals)


def full_model(meta: nn.Module) -> nn.Module:
    """The whole model (for what needs every layer, like a placement over devices): a prefix build is
    built again in full, once."""
    if not is_prefix_build(meta):
        return meta
    cached = getattr(meta, "_llmscope_whole", None)
    if cached is None:
        config, trust_remote_code = meta._llmscope_full
        cached = loading.build_meta_model(config, trust_remote_code=trust_remote_code)
        meta.__dict__["_llmscope_whole"] = cached  # not a submodule
    return cached


def whole_module_tree(meta: nn.Module, shapes: dict[str, tuple] | None = None) -> Any:
    """``weights.module_tree`` of the whole model (a prefix build is built whole for it, once), with
    ``shapes`` (``config.shapes.module_shapes``) where given."""
    from llmscope.config.parameters import module_tree

    return module_tree(full_model(meta), shapes=shapes)
