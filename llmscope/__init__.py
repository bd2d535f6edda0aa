"""llmscope: a command-line microscope for Hugging Face language models.

The functions the CLI calls are the Python API, imported lazily so ``import llmscope`` stays cheap::

    import llmscope
    report = llmscope.inspect_model("gpt2")
    report.parameters.total   # 124439808
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "inspect_model": "llmscope.architecture",
    "ArchitectureReport": "llmscope.architecture",
    "kv_cache_estimate": "llmscope.architecture",
    "load": "llmscope.loading",
    "LoadedModel": "llmscope.loading",
    "LoadSpec": "llmscope.loading",
    "resolve": "llmscope.resolve",
    "ModelSource": "llmscope.resolve",
    "LlmscopeError": "llmscope.errors",
    "show": "llmscope.render",
    "renderable": "llmscope.render",
    "generate": "llmscope.decoding",
    "compare": "llmscope.decoding",
    "GenerationResult": "llmscope.decoding",
    "ComparisonResult": "llmscope.decoding",
    "DecodingSettings": "llmscope.sampling",
    "memory_report": "llmscope.memory",
    "MemoryReport": "llmscope.memory",
    "parse_size": "llmscope.units",
    "attention_weights": "llmscope.attention",  # = llmscope.attention.attention (the name is the module's)
    "AttentionResult": "llmscope.attention",
    "expert_routing": "llmscope.experts",  # = llmscope.experts.experts
    "ExpertRoutingResult": "llmscope.experts",
    "pack": "llmscope.packing",
    "PackingResult": "llmscope.packing",
    "tokenize": "llmscope.tokens",
    "decode_ids": "llmscope.tokens",
    "compare_tokenizers": "llmscope.tokens",
    "vocab_info": "llmscope.vocab",
    "TokenizationResult": "llmscope.tokens",
    "DecodeResult": "llmscope.tokens",
    "TokenizerComparison": "llmscope.tokens",
    "VocabInfo": "llmscope.vocab",
    "predict_next_token": "llmscope.next_token",  # = llmscope.next_token.next_token
    "NextTokenResult": "llmscope.distribution",
    "Stepper": "llmscope.stepping",
    "stepper": "llmscope.stepping",
    "layer_report": "llmscope.layers",  # = llmscope.layers.layers
    "LayerReport": "llmscope.layers",
    "score_text": "llmscope.scoring",
    "compare_scores": "llmscope.scoring",
    "ScoreResult": "llmscope.scoring",
    "ScoreComparison": "llmscope.scoring",
    "prompt_report": "llmscope.report",
    "PromptReport": "llmscope.report",
    "embedding_report": "llmscope.embeddings",  # = llmscope.embeddings.embeddings
    "EmbeddingReport": "llmscope.embeddings",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'llmscope' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
