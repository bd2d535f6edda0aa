"""Reaching a model: resolving a name, the Hub, devices, GGUF conversion, the fast tokenizer, and loading.

``llmscope.loading`` is also the entry point of ``loading/model.py`` and ``loading/meta.py``: ``load()``,
``LoadSpec``, ``LoadedModel`` and the other public names below are read from there when asked for, so that
importing a light module of this package (``resolve``, ``devices``) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    **dict.fromkeys(("LoadSpec", "LoadedModel", "ModelLike", "load_spec", "source_of", "load", "load_config",
                     "load_tokenizer", "load_model"), "llmscope.loading.model"),
    **dict.fromkeys(("infer_model_type", "is_masked_lm", "model_class", "build_meta_model"), "llmscope.loading.meta"),
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:  # not cached here: a test's monkeypatch of the defining module is seen
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
