"""Numbers, sizes and probabilities written (and sizes read) the same way everywhere.

Both the core (error messages, size options) and the render layer use these; nothing here imports
anything heavier than ``re``.
"""

from __future__ import annotations

import re

from llmscope.errors import UsageError

_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,  # bare letters: binary, as nvidia-smi shows
}
_SIZE_HINT = "write it like 24GiB, 80GB, 512MiB"


def parse_size(text: str | int) -> int:
    """'24GiB' -> 25769803776; GB/MB/KB are powers of 1000, GiB/MiB/KiB (and bare G/M/K) of 1024."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise UsageError(f"size {text}: must be more than 0")
        return text
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _SIZE_UNITS:
        raise UsageError(f"cannot read the size {text!r}", hint=_SIZE_HINT)
    number = float(match.group(1)) * _SIZE_UNITS[unit]
    if not number < 2**80:  # a yottabyte: beyond any machine, and infinity cannot become an int
        raise UsageError(f"size {text!r}: too large", hint=_SIZE_HINT)
    value = int(number)
    if value <= 0:
        raise UsageError(f"size {text!r}: must be more than 0")
    return value


def fmt_int(value: int | None) -> str:
    """Thousands separated: 32,768 (None: '-')."""
    return "-" if value is None else f"{value:,}"


def fmt_bytes(value: float | None) -> str:
    """Binary units: 1.50 GiB."""
    if value is None:
        return "-"
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.2f} {unit}"
        value /= 1024
    return f"{value:.2f} TiB"  # pragma: no cover


def fmt_count(value: int | None) -> str:
    """Short parameter counts, three significant digits: 124M, 3.82B."""
    if value is None:
        return "-"
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return str(value)


def fmt_prob(prob: float | None) -> str:
    """One probability format for the whole tool, as a percentage: 41.2%, 3.07%, 0.095%, <0.001%.

    Exactly 0 (a token cut by top-k / top-p) is "0%", never a tiny number; None is "-".
    """
    if prob is None:
        return "-"
    if prob == 0:
        return "0%"
    percent = 100 * prob
    if percent >= 9.95:
        return f"{percent:.1f}%"
    if percent >= 0.0995:
        return f"{percent:.2f}%"
    if percent >= 0.0005:  # shows as at least 0.001%
        return f"{percent:.3f}%"
    return "<0.001%"
