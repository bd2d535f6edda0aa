"""Refuse to load weights that cannot fit, instead of being killed by the OOM killer."""

from __future__ import annotations

import os

from llmscope.errors import ResourceError
from llmscope.units import fmt_bytes


def available_ram() -> int:
    """Bytes of RAM the system can give without swapping (psutil comes with accelerate)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        raise


def check_weights_fit(weight_bytes: int, target: str, dtype: str, name: str) -> None:
    """Raise ResourceError when ``weight_bytes`` cannot fit where they are going.

    ``target`` is 'cpu', 'cuda:N', 'mps' or 'auto' (GPUs and RAM together, as accelerate spreads).
    ``LLMSCOPE_SKIP_MEMORY_CHECK=1`` turns the check off.
    """
    import torch

    if os.environ.get("LLMSCOPE_SKIP_MEMORY_CHECK"):
        return
    if target.startswith("cuda"):
        available = int(torch.cuda.mem_get_info(int(target.split(":")[1]))[0])
        where = f"is free on {target}"
    elif target == "auto":
        gpus = sum(int(torch.cuda.mem_get_info(i)[0]) for i in range(torch.cuda.device_count()))
        available = gpus + available_ram()
        where = "is free on the GPUs and in RAM together"
    else:
        available = available_ram()
        where = "of RAM is available"
    if weight_bytes <= 0.95 * available:
        return
    hints = []
    for smaller, size in (("bfloat16", 2), ("float16", 2)):
        if dtype == "float32" and weight_bytes * size / 4 <= 0.95 * available:
            hints.append(f"`dtype={smaller}`")
            break
    if target != "auto" and torch.cuda.is_available():
        hints.append("`device=auto` (spreads it over the GPUs and the CPU)")
    hint = "try " + " or ".join(hints) if hints else "use a smaller model or a machine with more memory"
    raise ResourceError(
        f"{name} needs {fmt_bytes(weight_bytes)} for its weights in {dtype}, but only "
        f"{fmt_bytes(available)} {where}",
        hint=hint,
    )
