"""Reading a model's config: values by their Hugging Face names, and the shape details they imply.

``inspect``, ``memory``, placement and ``experts`` all read configs through these functions, so a
config quirk (an alias, a text sub-config, GPT-2's ``n_inner=None``) is handled in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmscope.errors import ModelFormatError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PretrainedConfig


def config_value(config: Any, name: str, default: Any = ...) -> Any:
    """A config attribute by its HF name (attribute_map aliases included).

    Missing (or None) without a ``default`` is a ModelFormatError naming the attribute.
    """
    value = getattr(config, name, None)
    if value is None and default is ...:
        raise ModelFormatError(f"the config has no {name}", hint="is this a language model config?")
    return default if value is None else value


def text_config(config: PretrainedConfig) -> PretrainedConfig:
    """The language model's config: the config itself, or a multimodal wrapper's text sub-config."""
    return config.get_text_config(decoder=True)


def tied_embeddings(config: PretrainedConfig) -> bool:
    """Whether the LM head reuses the input embedding matrix."""
    text = text_config(config)
    return bool(getattr(text, "tie_word_embeddings", getattr(config, "tie_word_embeddings", False)))


def intermediate_size(config: PretrainedConfig, hidden: int) -> int | None:
    """The feed-forward width, under whichever name the architecture uses."""
    for name in ("intermediate_size", "n_inner", "ffn_dim", "moe_intermediate_size"):
        value = getattr(config, name, None)
        if value:
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


def max_positions(config: PretrainedConfig) -> int | None:
    """The longest context the model states (max_position_embeddings), None when it states none."""
    text = text_config(config)
    value = getattr(text, "max_position_embeddings", None) or getattr(config, "max_position_embeddings", None)
    return int(value) if value else None


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
