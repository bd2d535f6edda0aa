"""How a model attends (heads, key/value groups, sliding windows), read from its config alone.

``attention`` checks ``layer`` and ``head`` here before any weights load (a bad index costs nothing), and
labels each layer with its kind (``full_attention``, ``sliding_attention``) from the same config.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from llmscope.errors import ModelFormatError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PretrainedConfig


@dataclasses.dataclass(frozen=True)
class AttentionKind:
    """How the model attends: heads, key/value groups, sliding windows."""

    num_attention_heads: int
    num_key_value_heads: int
    gqa_group_size: int
    sliding_window: int | None
    layer_types: list[str] | None
    causal: bool


def attention_kind(config: PretrainedConfig, *, causal: bool = True) -> AttentionKind:
    from llmscope.config.values import key_value_heads, text_config

    text = text_config(config)
    heads = int(getattr(text, "num_attention_heads"))
    kv_heads = key_value_heads(text, heads)
    window = getattr(text, "sliding_window", None)
    layer_types = list(getattr(text, "layer_types", None) or []) or None
    if layer_types is not None and "sliding_attention" not in layer_types:
        window = None  # a window in the config that no layer uses (Mistral-style configs with null types)
    if getattr(text, "use_sliding_window", True) is False:
        window = None
    return AttentionKind(
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        gqa_group_size=heads // kv_heads if kv_heads else 1,
        sliding_window=int(window) if window else None,
        layer_types=layer_types,
        causal=causal,
    )


def layer_type(kind: AttentionKind, layer: int) -> str | None:
    """transformers' name for LAYER's attention (``full_attention``, ``sliding_attention``), where known."""
    if kind.layer_types and layer < len(kind.layer_types):
        return kind.layer_types[layer]
    if kind.sliding_window:
        return "sliding_attention"
    return None


def resolve_layer(layer: int, num_layers: int) -> int:
    """A layer index, negative counting from the end, checked against the model's layers."""
    index = layer + num_layers if layer < 0 else layer
    if not 0 <= index < num_layers:
        raise UsageError(
            f"`layer={layer}`: this model has {num_layers} layers",
            hint=f"use 0 to {num_layers - 1}, or -1 to -{num_layers} counting from the end",
        )
    return index


def check_head(head: int | None, num_heads: int) -> None:
    if head is not None and not 0 <= head < num_heads:
        raise UsageError(f"`head={head}`: this model has {num_heads} attention heads", hint=f"use 0 to {num_heads - 1}")


def check_indices(config: PretrainedConfig, layer: int, head: int | None) -> tuple[int, int]:
    """(layers, heads) of the model, once LAYER and HEAD are known to be among them; a model whose
    blocks carry a recurrent state instead of attention is refused here, before its weights load."""
    from llmscope.config.values import config_value, text_config
    from llmscope.config.state import family

    text = text_config(config)
    if family(config) is not None:
        raise ModelFormatError(
            f"{config.model_type} has no attention layers: its {family(config)} blocks carry a state instead",
            hint="llmscope inspect shows them; try a transformer such as gpt2 or Qwen/Qwen2.5-0.5B",
        )
    num_layers = int(config_value(text, "num_hidden_layers"))
    num_heads = int(config_value(text, "num_attention_heads"))
    resolve_layer(layer, num_layers)
    check_head(head, num_heads)
    return num_layers, num_heads
