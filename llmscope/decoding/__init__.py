"""Writing text: sampling, the batched decode loop, generate and compare, the next-token distribution, stepping.

``generate``, ``compare`` and their result types are read from ``decoding/generation.py`` when first asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

_FROM_GENERATION = ("generate", "compare", "GenerationResult", "ComparisonResult", "KVCacheComparison",
                    "distinct_n", "repetition_rate")

__all__ = list(_FROM_GENERATION)


def __getattr__(name: str) -> Any:
    if name in _FROM_GENERATION:
        return getattr(importlib.import_module("llmscope.decoding.generation"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
