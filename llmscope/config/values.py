"""Reading a model's config: values by their Hugging Face names, and the shape details they imply.

``inspect``, ``memory``, placement and ``experts`` all read configs through these functions, so a
config quirk (an alias, a text sub-config, GPT-2's ``n_inner=None``) is handled in one place.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import TYPE_CHECKING, Any

from llmscope.errors import ModelFormatError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PretrainedConfig


PER_LAYER = ("num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size")


def _get(config: Any, name: str) -> Any:
    """getattr that reads a per-layer attribute (transformers raises for those) as None."""
    try:
        return getattr(config, name, None)
    except RuntimeError as exc:  # AmbiguousGlobalPerLayerAttributeError: the value differs per layer
        if type(exc).__name__ == "AmbiguousGlobalPerLayerAttributeError":
            return None
        raise


def config_value(config: Any, name: str, default: Any = ...) -> Any:
    """A config attribute by its HF name (attribute_map aliases included).

    Where the value is per layer (a list, or per-layer configs), the most common one: the per-kind
    table (:func:`layer_kinds`) shows them all. Missing (or None) without a ``default`` is a
    ModelFormatError naming the attribute.
    """
    value = _get(config, name)
    if value is None or isinstance(value, list):
        values = [v for v in per_layer_values(config, name) or [] if v is not None]
        value = Counter(values).most_common(1)[0][0] if values else value
    if value is None and default is ...:
        raise ModelFormatError(f"the config has no {name}", hint="is this a language model config?")
    return default if value is None else value


def key_value_heads(config: Any, heads: int) -> int:
    """The attention's key/value heads: ``num_key_value_heads``, else Falcon's: one with
    ``multi_query`` (Falcon-7B), ``num_kv_heads`` in its new decoder architecture (Falcon-40B)."""
    value = config_value(config, "num_key_value_heads", None)
    if value is None and getattr(config, "multi_query", False) and not getattr(config, "new_decoder_architecture", False):
        return 1
    if value is None:
        value = config_value(config, "num_kv_heads", None)
    return int(value or heads)


def text_config(config: PretrainedConfig) -> PretrainedConfig:
    """The language model's config: the config itself, or a multimodal wrapper's text sub-config.

    A byte-level model (BLT) whose layers sit in a latent ``global_config`` is described by it.
    """
    if not hasattr(config, "get_text_config"):  # a plain object standing in for a config: itself
        return config
    text = config.get_text_config(decoder=True)
    if _get(text, "num_hidden_layers") is None and getattr(text, "global_config", None) is not None:
        return text.global_config
    return text


def vocab_size(config: PretrainedConfig) -> int:
    """The vocabulary the LM head scores: the text config's, else the top config's (BLT's bytes)."""
    return int(config_value(text_config(config), "vocab_size", None) or config_value(config, "vocab_size"))


def tied_embeddings(config: PretrainedConfig) -> bool:
    """Whether the LM head reuses the input embedding matrix."""
    text = text_config(config)
    return bool(getattr(text, "tie_word_embeddings", getattr(config, "tie_word_embeddings", False)))


def intermediate_size(config: PretrainedConfig, hidden: int) -> int | None:
    """The feed-forward width, under whichever name the architecture uses."""
    for name in ("intermediate_size", "n_inner", "ffn_dim", "moe_intermediate_size"):
        value = config_value(config, name, None)
        if isinstance(value, int) and value:
            return int(value)
    if config.model_type == "gpt2":
        return 4 * hidden  # GPT-2's n_inner=None means 4 x hidden
    return None


def activation(config: PretrainedConfig) -> str | None:
    """The feed-forward activation's name (silu, gelu_pytorch_tanh...)."""
    for name in ("hidden_activation", "hidden_act", "activation_function"):
        value = getattr(config, name, None)
        if value:
            return str(value)
    return None


# The deepest model llmscope reads: what a layer count costs (per-layer lists, a prefix build, cache
# layers) is checked to stay within seconds up to here (tests/test_latency_paths.py builds 100,000
# layers); a config declaring more (2**32-1, to hurt) is refused before anything counts its layers.
MAX_LAYERS = 100_000
LAYER_COUNT_KEYS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers", "block_count",
                    "num_decoder_layers", "decoder_layers", "num_encoder_layers", "encoder_layers")


def too_many_layers(values: Any, depth: int = 0) -> tuple[str, int] | None:
    """The first layer count in a raw config dict (nested sub-configs included) above MAX_LAYERS, as
    (key, value); None when every count is within it."""
    if not isinstance(values, dict) or depth > 8:
        return None
    for key, value in values.items():
        if (key in LAYER_COUNT_KEYS and isinstance(value, int) and not isinstance(value, bool)
                and value > MAX_LAYERS):
            return key, value
    for value in values.values():
        found = too_many_layers(value, depth + 1)
        if found:
            return found
    return None


# The names a config gives its context length under, most common first (GPT-2: n_positions; ChatGLM:
# seq_length; a few: max_sequence_length).
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def context_length(config: Any) -> int | None:
    """The longest sequence the model's positions cover: the text config's (else the top config's)
    first of CONTEXT_KEYS that is a positive int; None when the config does not say (0 or missing)."""
    text = text_config(config) if hasattr(config, "get_text_config") else config
    for source in (text, config):
        for key in CONTEXT_KEYS:
            value = getattr(source, key, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def rope(config: PretrainedConfig) -> tuple[float | dict[str, float] | None, dict[str, Any] | None]:
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


def per_layer_values(config: Any, name: str) -> list[Any] | None:
    """One value per decoder layer: from per-layer configs (Gemma 4), or a per-layer list (Gemma 3n's
    intermediate_size); None where the config holds one value for every layer."""
    count = _get(config, "num_hidden_layers")
    if not isinstance(count, int) or count <= 0:  # a wrapper's own config: its layers are in a sub-config
        return None
    # transformers gives every config a per-layer view; only a heterogeneous one differs per layer
    layers = getattr(config, "per_layer_config", None) if getattr(config, "is_heterogeneous", True) else None
    if layers:
        values = [_get(c, name) for c in layers]
        return [v[i] if isinstance(v, list) and len(v) == len(layers) else v for i, v in enumerate(values)]
    value = _get(config, name)
    if isinstance(value, list) and count and len(value) == count:
        return list(value)
    return None


@dataclasses.dataclass(frozen=True)
class LayerKind:
    """Decoder layers that share one shape (per-layer configs where layers differ)."""

    layer_type: str  # full_attention, sliding_attention...
    layers: list[int]
    num_attention_heads: int | None
    num_key_value_heads: int | None
    head_dim: int | None
    intermediate_size: int | None


def layer_kinds(config: PretrainedConfig) -> list[LayerKind] | None:
    """Layers grouped by type and shape, where the config gives shapes per layer and they differ."""
    text = text_config(config)
    columns = {name: per_layer_values(text, name) for name in PER_LAYER}
    if not any(columns.values()):
        return None
    count = int(config_value(text, "num_hidden_layers"))
    types = list(getattr(text, "layer_types", None) or [])
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index in range(count):
        kind = types[index] if index < len(types) else "layer"
        shape = tuple(
            (values[index] if values and index < len(values) else config_value(text, name, None))
            for name, values in columns.items()
        )
        groups.setdefault((kind, *shape), []).append(index)
    shapes = {key[1:] for key in groups}
    if len(shapes) < 2:
        return None
    return [LayerKind(key[0], layers, *(int(v) if isinstance(v, int) else None for v in key[1:]))
            for key, layers in groups.items()]
