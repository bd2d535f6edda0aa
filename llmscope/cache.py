"""What transformers' generation cache holds for a model, from its config alone.

The layout (which layers slide, over what window) comes from ``DynamicCache(config=...)`` itself
rather than from rules per architecture, so ``inspect`` and ``memory`` show the same numbers.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from llmscope.configs import config_value, text_config
from llmscope.weights import DTYPE_BYTES

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PretrainedConfig


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


def _deep_cache_layers(text: PretrainedConfig) -> list[Any] | None:
    """A deep model's cache layers from a prefix holding every kind of layer (``param_count``): a
    DynamicCache of 100,000 layers takes transformers most of a minute to set up. None: not deep."""
    from transformers import DynamicCache

    from llmscope import param_count

    count = config_value(text, "num_hidden_layers", None)
    if not isinstance(count, int) or count <= param_count.FULL_BUILD_LIMIT:
        return None
    keys = param_count.layer_keys(text, count)
    first: dict[Any, int] = {}
    for index, key in enumerate(keys):
        first.setdefault(key, index)
    prefix = max(first.values()) + 1
    if prefix > param_count.FULL_BUILD_LIMIT:
        return None
    layers = DynamicCache(config=param_count.prefix_config(text, prefix, count)).layers
    return [layers[first[key]] for key in keys] if len(layers) == prefix else None


def dynamic_cache_layers(text: PretrainedConfig) -> list[Any]:
    """The layers of ``DynamicCache(config=text)``; a deep model's read from a prefix of its layers."""
    from transformers import DynamicCache

    heterogeneous = getattr(text, "is_heterogeneous", True)  # else every layer's config is the config itself
    layers = None if heterogeneous else _deep_cache_layers(text)
    return layers if layers is not None else DynamicCache(config=text).layers


def kv_cache_estimate(
    config: PretrainedConfig, *, context: int, batch: int = 1, dtype: str = "bfloat16"
) -> KVCacheEstimate:
    """Bytes of keys and values that transformers' DynamicCache holds for this many tokens.

    Heads and head size per layer come from the config (per-layer configs where it has them). A
    hybrid model's linear-attention and Mamba layers hold no keys and values and are left out.
    A sliding layer keeps its last ``sliding_window - 1`` tokens, as DynamicSlidingWindowLayer does.
    """
    from transformers.cache_utils import DynamicLayer

    element = DTYPE_BYTES[dtype]
    text = text_config(config)
    heterogeneous = getattr(text, "is_heterogeneous", True)  # else every layer's config is the config itself
    cache_layers = dynamic_cache_layers(text)
    per_layer = (getattr(text, "per_layer_config", None) if heterogeneous else None) or [text] * len(cache_layers)
    layer_types = list(getattr(text, "layer_types", None) or [])
    groups: dict[tuple[str, int | None, int, int], list[int]] = {}
    shapes: dict[int, tuple[Any, int, int]] = {}  # id(layer config) -> (it, kv heads, head size)
    for index, (layer, layer_config) in enumerate(zip(cache_layers, per_layer)):
        if not isinstance(layer, DynamicLayer):  # a hybrid's linear-attention / Mamba layer, or none at all
            continue
        window = getattr(layer, "sliding_window", None)
        window = int(window) if window is not None else None
        kind = layer_types[index] if index < len(layer_types) else ("sliding_attention" if window else "full_attention")
        if kind == "dummy":  # shares another layer's cache, or holds none
            continue
        if id(layer_config) not in shapes:  # once per config: the same one for every layer of most models
            heads = config_value(layer_config, "num_attention_heads")
            shapes[id(layer_config)] = (
                layer_config,  # kept alive, so that its id is not reused by another layer's config
                int(config_value(layer_config, "num_key_value_heads", heads) or heads),
                int(config_value(layer_config, "head_dim", None) or config_value(layer_config, "hidden_size") // heads),
            )
        _, kv_heads, head_dim = shapes[id(layer_config)]
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


def takes_kv_cache(model: Any) -> bool:
    """Whether the model's forward takes transformers' KV cache as ``past_key_values``.

    Recurrent models do not (Mamba: ``cache_params``, RWKV: ``state``, xLSTM: its own cache): the
    decode loops run them on the whole sequence at each step instead, which gives the same tokens.
    """
    import inspect

    return "past_key_values" in inspect.signature(model.forward).parameters
