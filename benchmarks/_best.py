"""What the explaining views' benchmarks share: each mode timed ``repeat`` times, alternating, best time kept
(a shared machine's load comes and goes), after one warm-up call each where asked."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(modes: dict[str, Callable[[], object]], repeat: int, *, warm: bool = True) -> dict[str, float]:
    if warm:
        for fn in modes.values():
            fn()
    best = {name: float("inf") for name in modes}
    for _ in range(repeat):
        for name, fn in modes.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best
