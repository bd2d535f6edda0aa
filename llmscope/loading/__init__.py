"""Reaching a model: resolving a name, the Hub, devices, GGUF conversion, the fast tokenizer, and loading.

``llmscope.loading`` is also the entry point of ``loading/model.py``: ``load()``, ``LoadSpec``,
``LoadedModel`` and the other public names below are read from there when first asked for, so that
importing a light module of this package (``resolve``, ``devices``) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_FROM_MODEL = (
    "LoadSpec", "LoadedModel", "ModelLike", "load_spec", "source_of", "load", "load_config", "infer_model_type",
    "load_tokenizer", "is_masked_lm", "model_class", "build_meta_model", "load_model",
)

__all__ = list(_FROM_MODEL)


def __getattr__(name: str) -> Any:
    if name in _FROM_MODEL:  # not cached here: a test's monkeypatch of loading.model is seen
        return getattr(importlib.import_module("llmscope.loading.model"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
