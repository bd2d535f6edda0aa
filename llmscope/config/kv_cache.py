"""What transformers' generation cache holds for a model, from its config alone.

The layout (which layers slide, over what window) comes from ``DynamicCache(config=...)`` itself
rather than from rules per architecture, so ``inspect`` and ``memory`` show the same numbers.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from llmscope.config.values import config_value, key_value_heads, text_config
from llmscope.config.parameters import DTYPE_BYTES

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
    # MLA (DeepSeek V2/V3, Kimi, GLM-4.7 lite...): transformers caches the compressed latent (kv_lora_rank
    # wide, in the keys' place) and the shared RoPE key (qk_rope_head_dim, in the values' place), one head
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    # DeepSeek sparse attention: the indexer's keys, this wide per token, kept beside the layer's cache
    indexer_key_dim: int | None = None
    # DeepSeek V4: one tensor serves as keys and values over the window, and every compress_rate tokens
    # become one compressed entry (CSA layers: with their indexer's); compressed_bytes (in bytes) holds
    # those entries and the compressor's buffers at the context length
    compress_rate: int | None = None
    compressed_bytes: int = 0


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

    from llmscope.config import deep_build

    count = config_value(text, "num_hidden_layers", None)
    if not isinstance(count, int) or count <= deep_build.FULL_BUILD_LIMIT:
        return None
    keys = deep_build.layer_keys(text, count)
    first: dict[Any, int] = {}
    for index, key in enumerate(keys):
        first.setdefault(key, index)
    prefix = max(first.values()) + 1
    if prefix > deep_build.FULL_BUILD_LIMIT:
        return None
    layers = DynamicCache(config=deep_build.prefix_config(text, prefix, count)).layers
    return [layers[first[key]] for key in keys] if len(layers) == prefix else None


def dynamic_cache_layers(text: PretrainedConfig) -> list[Any]:
    """The cache layers a forward pass fills: those of ``DynamicCache(config=text)`` (a deep model's
    read from a prefix of its layers), then, for a model that visits some layers more than once
    (:func:`_revisited`), the copies of theirs its forward appends, as transformers' cache holds them."""
    return _filled(text)[0]


def cache_layer_owners(text: PretrainedConfig) -> list[int]:
    """For each of :func:`dynamic_cache_layers`, the model layer it serves (its index in the config's
    per-layer lists): the layer itself, or the looped layer a copy was made for."""
    return _filled(text)[1]


def _filled(text: PretrainedConfig) -> tuple[list[Any], list[int]]:
    """:func:`dynamic_cache_layers` and :func:`cache_layer_owners`, from one DynamicCache."""
    from transformers import DynamicCache

    heterogeneous = getattr(text, "is_heterogeneous", True)  # else every layer's config is the config itself
    layers = None if heterogeneous else _deep_cache_layers(text)
    layers = layers if layers is not None else DynamicCache(config=text).layers
    owners = list(range(len(layers)))
    # transformers appends the copies only to a cache of one layer per model layer (not yet extended)
    if len(layers) == config_value(text, "num_hidden_layers", None):
        owners += _revisited(text)
    return [layers[i] for i in owners], owners


def _revisited(text: PretrainedConfig) -> list[int]:
    """The layers whose cache layers a forward pass copies, once per pass after the first, in the
    order it appends the copies. Inkling2-Loop passes ``loop_num_passes`` times through layers
    ``loop_layer_index_start..end-1``; Dory ``n_recurrent_loops`` times through its ``n_recurrent_layers``
    after the ``n_input_layers``, with a cache per loop unless ``recurrent_kv_cache_mode`` is
    ``last_loop`` (one per layer, written by the last loop only)."""
    start, end, passes = (config_value(text, name, None)
                          for name in ("loop_layer_index_start", "loop_layer_index_end", "loop_num_passes"))
    if None in (start, end, passes):
        start, count, passes = (config_value(text, name, None)
                                for name in ("n_input_layers", "n_recurrent_layers", "n_recurrent_loops"))
        if None in (start, count, passes) or config_value(text, "recurrent_kv_cache_mode", "per_loop") != "per_loop":
            return []
        end = int(start) + int(count)
    return list(range(int(start), int(end))) * max(int(passes) - 1, 0)


def kv_cache_estimate(
    config: PretrainedConfig, *, context: int, batch: int = 1, dtype: str = "bfloat16"
) -> KVCacheEstimate:
    """Bytes of keys and values that transformers' DynamicCache holds for this many tokens.

    Heads and head size per layer come from the config (per-layer configs where it has them). A
    hybrid model's linear-attention and Mamba layers hold no keys and values and are left out.
    A sliding layer keeps its last ``sliding_window - 1`` tokens, as DynamicSlidingWindowLayer does.
    """
    from transformers.cache_utils import DynamicIndexedLayer, DynamicLayer

    element = DTYPE_BYTES[dtype]
    text = text_config(config)
    heterogeneous = getattr(text, "is_heterogeneous", True)  # else every layer's config is the config itself
    cache_layers, owners = _filled(text)
    per_layer_config = (getattr(text, "per_layer_config", None) if heterogeneous else None) or []
    layer_types = list(getattr(text, "layer_types", None) or [])
    # Mllama's cross-attention layers cache an image's keys and values, none of the prompt's
    cross = set(getattr(text, "cross_attention_layers", None) or [])
    # CPM-Ant prepends prompt_length learned prompt tokens to every sequence, and caches them too
    prompt_tokens = int(getattr(text, "prompt_length", 0) or 0) if text.model_type == "cpmant" else 0
    tokens = context + prompt_tokens
    # Inkling's sliding layers have their own heads, under swa_ names
    swa_heads = config_value(text, "swa_num_key_value_heads", None) is not None
    groups: dict[tuple[str, int | None, int, int, tuple[int, int] | None, int | None, int | None], list[int]] = {}
    shapes: dict[tuple[int, bool], tuple[Any, int, int, tuple[int, int] | None]] = {}  # read once per layer config
    # index: the cache layer's; owner: the model layer's (a looped layer's copies share its config entries)
    for index, (layer, owner) in enumerate(zip(cache_layers, owners)):
        if not isinstance(layer, DynamicLayer):  # a hybrid's linear-attention / Mamba layer, or none at all
            continue
        layer_config = per_layer_config[owner] if owner < len(per_layer_config) else text
        window = getattr(layer, "sliding_window", None)
        window = int(window) if window is not None else None
        kind = layer_types[owner] if owner < len(layer_types) else ("sliding_attention" if window else "full_attention")
        if kind == "dummy" or owner in cross:  # shares another layer's cache, or holds none
            continue
        swa = swa_heads and "sliding" in kind
        if (id(layer_config), swa) not in shapes:  # once per config: the same one for every layer of most models
            # the config kept alive, so that its id is not reused by another layer's config
            shapes[id(layer_config), swa] = (layer_config, *_cached_shape(layer_config, swa))
        _, kv_heads, head_dim, latent = shapes[id(layer_config), swa]
        indexer = _indexer_key_dim(layer_config, owner) if isinstance(layer, DynamicIndexedLayer) else None
        rate = (getattr(layer_config, "compress_rates", None) or {}).get(kind) if kind in COMPRESSED else None
        groups.setdefault((kind, window, kv_heads, head_dim, latent, indexer, rate), []).append(index)
    out: list[KVCacheLayerGroup] = []
    for (kind, window, kv_heads, head_dim, latent, indexer, rate), layers in groups.items():
        kept = min(tokens, window - 1) if window else tokens
        # the latent and RoPE key; DeepSeek V4's one tensor for keys and values; or keys and values
        width = sum(latent) if latent else (1 if rate else 2) * kv_heads * head_dim
        per_token = int(batch * (width + (indexer or 0)) * element * len(layers))
        compressed = 0
        if rate:
            compressed = len(layers) * _compressed_bytes(text, kind, int(rate), head_dim, context, batch, element)
        out.append(
            KVCacheLayerGroup(
                layer_type=kind,
                layers=layers,
                num_key_value_heads=1 if latent else kv_heads,
                head_dim=head_dim,
                sliding_window=window,
                tokens_kept=kept,
                bytes_per_token=per_token,
                bytes=per_token * kept + compressed,
                kv_lora_rank=latent[0] if latent else None,
                qk_rope_head_dim=latent[1] if latent else None,
                indexer_key_dim=indexer,
                compress_rate=int(rate) if rate else None,
                compressed_bytes=compressed,
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


COMPRESSED = ("heavily_compressed_attention", "compressed_sparse_attention")  # DeepSeek V4's layer kinds


def _cached_shape(layer_config: Any, swa: bool) -> tuple[int, int, tuple[int, int] | None]:
    """KV heads and head size of what a layer caches, and MLA's (latent, RoPE key) widths or None."""
    prefix = "swa_" if swa else ""
    heads = config_value(layer_config, f"{prefix}num_attention_heads")
    if getattr(layer_config, "new_decoder_architecture", False):
        kv_heads = heads  # Falcon-40B broadcasts keys and values to every query head, then caches them
    else:
        kv_heads = int(config_value(layer_config, "swa_num_key_value_heads")) if swa else key_value_heads(layer_config, heads)
    head_dim = int(config_value(layer_config, f"{prefix}head_dim", None)
                   or config_value(layer_config, "dim_head", None)  # CPM-Ant
                   or config_value(layer_config, "hidden_size") // heads)
    rank = config_value(layer_config, "kv_lora_rank", None)
    latent = (int(rank), int(config_value(layer_config, "qk_rope_head_dim"))) if rank else None
    return kv_heads, head_dim, latent


def _compressed_bytes(text: Any, kind: str, rate: int, head_dim: int, context: int, batch: int, element: float) -> int:
    """One DeepSeek V4 layer's compressed entries and compressor state at ``context`` tokens, as its
    cache layer (DeepseekV4HCACache / CSACache) holds them: one entry per ``rate`` tokens, the tokens
    since the last entry (values and gates) in a buffer; a CSA layer's compressor runs two series
    (twice as wide in the buffer), keeps the last window's first series for the next call, and its
    indexer does all of this again ``index_head_dim`` wide."""
    entries, rest = divmod(context, rate)
    if kind == "heavily_compressed_attention":
        elements = entries * head_dim + 2 * rest * head_dim
    else:
        both = head_dim + int(config_value(text, "index_head_dim"))
        elements = entries * both + 2 * rest * 2 * both + (2 * rate * both if entries else 0)
    return int(batch * elements * element)


def _indexer_key_dim(layer_config: Any, index: int) -> int | None:
    """The width of the indexer keys a sparse-attention layer caches per token: ``index_head_dim``
    (Qwen4-Exp: ``indexer_head_dim`` per indexer key head; GLM-5 Next packs a gate of the same width
    and a validity flag beside it). None where the layer reuses another layer's indexer (``shared``)."""
    kinds = getattr(layer_config, "indexer_types", None)
    if isinstance(kinds, list) and index < len(kinds) and kinds[index] == "shared":
        return None
    dim = config_value(layer_config, "index_head_dim", None)
    if dim is None:
        dim = config_value(layer_config, "indexer_head_dim", None)
        return int(dim) * int(config_value(layer_config, "indexer_kv_heads", 1) or 1) if dim else None
    if config_value(layer_config, "index_kpool", None):  # GLM-5 Next: key, compression gate, valid flag
        return 2 * int(dim) + 1
    return int(dim)

