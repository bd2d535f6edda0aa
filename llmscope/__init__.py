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
    "inspect_model": "llmscope.config.architecture",
    "ArchitectureReport": "llmscope.config.architecture",
    "kv_cache_estimate": "llmscope.config.kv_cache",
    "load": "llmscope.loading.model",
    "LoadedModel": "llmscope.loading.model",
    "LoadSpec": "llmscope.loading.model",
    "resolve": "llmscope.loading.resolve",
    "ModelSource": "llmscope.loading.resolve",
    "LlmscopeError": "llmscope.errors",
    "show": "llmscope.render",
    "renderable": "llmscope.render",
    "generate": "llmscope.decoding.generation",
    "compare": "llmscope.decoding.generation",
    "GenerationResult": "llmscope.decoding.generation",
    "ComparisonResult": "llmscope.decoding.generation",
    "DecodingSettings": "llmscope.decoding.sampling",
    "settings_for": "llmscope.decoding.sampling",
    "parse_strategy_list": "llmscope.decoding.sampling",
    "memory_report": "llmscope.memory.report",
    "MemoryReport": "llmscope.memory.report",
    "parse_size": "llmscope.units",
    "attention_weights": "llmscope.forward.attention",  # = llmscope.forward.attention.attention
    "AttentionResult": "llmscope.forward.attention",
    "attention_walk": "llmscope.forward.walk",  # = llmscope.forward.walk.walk
    "AttentionWalk": "llmscope.forward.walk",
    "head_scores": "llmscope.forward.heads",  # = llmscope.forward.heads.heads
    "HeadsReport": "llmscope.forward.heads",
    "why": "llmscope.explain.why",
    "WhyResult": "llmscope.explain.why",
    "contributions": "llmscope.explain.contributions",
    "ContributionsResult": "llmscope.explain.contributions",
    "patch": "llmscope.explain.patch",
    "PatchResult": "llmscope.explain.patch",
    "expert_routing": "llmscope.forward.experts",  # = llmscope.forward.experts.experts
    "ExpertRoutingResult": "llmscope.forward.experts",
    "pack": "llmscope.text.packing",
    "PackingResult": "llmscope.text.packing",
    "tokenize": "llmscope.text.tokens",
    "decode_ids": "llmscope.text.tokens",
    "compare_tokenizers": "llmscope.text.tokens",
    "vocab_info": "llmscope.text.vocab",
    "TokenizationResult": "llmscope.text.tokens",
    "DecodeResult": "llmscope.text.tokens",
    "TokenizerComparison": "llmscope.text.tokens",
    "VocabInfo": "llmscope.text.vocab",
    "predict_next_token": "llmscope.decoding.next_token",  # = llmscope.decoding.next_token.next_token
    "NextTokenResult": "llmscope.decoding.distribution",
    "Stepper": "llmscope.decoding.stepping",
    "stepper": "llmscope.decoding.stepping",
    "layer_report": "llmscope.forward.layers",  # = llmscope.forward.layers.layers
    "LayerReport": "llmscope.forward.layers",
    "score_text": "llmscope.forward.scoring",
    "compare_scores": "llmscope.forward.scoring",
    "ScoreResult": "llmscope.forward.scoring",
    "ScoreComparison": "llmscope.forward.scoring",
    "prompt_report": "llmscope.views",
    "PromptReport": "llmscope.views",
    "embedding_report": "llmscope.forward.embeddings",  # = llmscope.forward.embeddings.embeddings
    "EmbeddingReport": "llmscope.forward.embeddings",
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
