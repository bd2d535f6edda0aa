"""The transformers class a config loads into, and that model built on the meta device (no weights).

Which class holds a config's language-model head (causal or masked), the ``model_type`` an older
config.json leaves out (read backwards from transformers' auto mappings), and the weight-free build
that ``inspect``, ``memory`` and the check before a load (will the weights fit?) count parameters on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmscope.errors import ModelFormatError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PretrainedConfig, PreTrainedModel


def is_masked_lm(config: PretrainedConfig) -> bool:
    """True for encoder models trained with masked language modelling (BERT, RoBERTa...)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    architectures = getattr(config, "architectures", None) or []
    if any("MaskedLM" in a or a.endswith("ForPreTraining") for a in architectures):
        return True
    if getattr(config, "is_decoder", False) or config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return False
    return config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def model_class(config: PretrainedConfig, *, trust_remote_code: bool = False) -> Any:
    """The transformers class that holds this config's language-model head."""
    import transformers
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    masked = is_masked_lm(config)
    for name in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, name, None)
        suffixes = ("ForMaskedLM",) if masked else ("ForCausalLM", "LMHeadModel")
        if cls is not None and name.endswith(suffixes):
            return cls
    mapping = MODEL_FOR_MASKED_LM_MAPPING_NAMES if masked else MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if config.model_type in mapping or (trust_remote_code and getattr(config, "auto_map", None)):
        return transformers.AutoModelForMaskedLM if masked else transformers.AutoModelForCausalLM
    raise ModelFormatError(
        f"unsupported architecture {config.model_type!r}: not a causal or masked language model",
        hint="llmscope reads language models that transformers implements (GPT-2, Llama, Gemma, BERT...)",
    )


def build_meta_model(config: PretrainedConfig, *, trust_remote_code: bool = False) -> PreTrainedModel:
    """The model built on the meta device from its config: every shape, no memory, no weights.

    Weights are tied as the real checkpoint ties them, so shared tensors are one Parameter.
    """
    import torch

    cls = model_class(config, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        if hasattr(cls, "from_config"):
            model = cls.from_config(config, trust_remote_code=trust_remote_code)
        else:
            model = cls._from_config(config)
    model.tie_weights()
    return model


def infer_model_type(architectures: list[str]) -> str | None:
    """The ``model_type`` whose transformers classes include one of ``architectures`` (None: no such one).

    Reads transformers' own auto mappings backwards. A class several model types share
    (``LlamaForCausalLM``) goes to the type whose config class has the class's prefix (``LlamaConfig``).
    """
    from transformers.models.auto import modeling_auto as auto
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    mappings = (
        auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        auto.MODEL_FOR_PRETRAINING_MAPPING_NAMES,
        auto.MODEL_MAPPING_NAMES,
    )
    for architecture in architectures:
        candidates = {
            model_type
            for mapping in mappings
            for model_type, names in mapping.items()
            if architecture in (names if isinstance(names, (list, tuple)) else (names,))
        }
        if len(candidates) > 1:
            prefixes = {t: CONFIG_MAPPING_NAMES.get(t, "").removesuffix("Config") for t in candidates}
            candidates = {t for t, p in prefixes.items() if p and architecture.startswith(p)}
            if candidates:  # the longest prefix; on a tie (gpt2 and gpt-sw3 share GPT2Config) the type
                # that is its config class's own model_type, then by name: never by set order
                longest = max(len(prefixes[t]) for t in candidates)
                tied = sorted(t for t in candidates if len(prefixes[t]) == longest)
                own = [t for t in tied if _config_model_type(t) == t]
                candidates = {(own or tied)[0]}
        if candidates:
            return candidates.pop()
    return None


def _config_model_type(model_type: str) -> str | None:
    """The model_type declared by the config class transformers registers for MODEL_TYPE."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    try:
        return getattr(CONFIG_MAPPING[model_type], "model_type", None)
    except (KeyError, ImportError, AttributeError):
        return None
