"""Shell completion of MODEL: hub ids already in the local Hugging Face cache. No torch here."""

from __future__ import annotations

import os
from pathlib import Path


def hf_hub_cache() -> Path:
    """The hub cache folder, by huggingface_hub's own rules, without importing it (fast on TAB)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def cached_model_ids() -> list[str]:
    """Model repos in the hub cache: folders named models--owner--name."""
    try:
        entries = os.listdir(hf_hub_cache())
    except OSError:
        return []
    return sorted(e[len("models--"):].replace("--", "/") for e in entries if e.startswith("models--"))


def complete_model(incomplete: str) -> list[str]:
    """Cached hub ids that start with what was typed (paths are left to the shell)."""
    return [m for m in cached_model_ids() if m.startswith(incomplete)]


# The values options take, offered on TAB. Kept here, not imported from the modules that check them,
# so that a TAB imports nothing heavy; tests/test_latency_paths.py pins them to those modules.
GENERATE_STRATEGIES = ("greedy", "sample", "top-k", "top-p", "min-p", "typical", "beam")  # sampling.STRATEGIES
NEXT_TOKEN_STRATEGIES = ("greedy", "sample", "top-k", "top-p", "min-p", "typical")  # stepping.STRATEGIES
DEVICES = ("auto", "cpu", "cuda", "mps")  # devices.DEVICES, plus cuda:N
DTYPES = ("auto", "float32", "bfloat16", "float16")  # devices.DTYPES
MEMORY_FOR = ("generate", "forward")  # memory --for (issue 19)
WHY_METHODS = ("grad-x-input", "integrated-gradients", "occlusion")  # attribution.METHODS
WHY_UNITS = ("token", "word", "sentence")  # spans.BY


def _starting(values: tuple[str, ...] | list[str], incomplete: str) -> list[str]:
    return [v for v in values if v.startswith(incomplete)]


def complete_strategy(incomplete: str) -> list[str]:
    return _starting(GENERATE_STRATEGIES, incomplete)


def complete_next_token_strategy(incomplete: str) -> list[str]:
    return _starting(NEXT_TOKEN_STRATEGIES, incomplete)


def complete_why_method(incomplete: str) -> list[str]:
    return _starting(WHY_METHODS, incomplete)


def complete_why_unit(incomplete: str) -> list[str]:
    return _starting(WHY_UNITS, incomplete)


def complete_strategies(incomplete: str) -> list[str]:
    """compare --strategies is a comma-separated list: complete its last item, keep the rest."""
    head, _, last = incomplete.rpartition(",")
    prefix = f"{head}," if head else ""
    taken = {part.split("=")[0] for part in head.split(",") if part}
    return [prefix + v for v in GENERATE_STRATEGIES if v.startswith(last) and v not in taken]


def _gpu_count() -> int:
    """NVIDIA GPUs the driver lists (no torch on TAB); at least one cuda:N is always offered."""
    try:
        return max(1, len(os.listdir("/proc/driver/nvidia/gpus")))
    except OSError:
        return 1


def complete_device(incomplete: str) -> list[str]:
    values = [*DEVICES[:3], *(f"cuda:{i}" for i in range(_gpu_count())), DEVICES[3]]
    return _starting(values, incomplete.lower())


def complete_dtype(incomplete: str) -> list[str]:
    return _starting(DTYPES, incomplete.lower())


def complete_memory_for(incomplete: str) -> list[str]:
    return _starting(MEMORY_FOR, incomplete)


SHELLS = {"bash": "llmscope.bash", "zsh": "llmscope.zsh", "fish": "llmscope.fish"}


def completion_script(shell: str) -> str:
    """The completion script Typer generates for ``llmscope`` in SHELL (bash, zsh, fish)."""
    from typer.completion import get_completion_script

    return get_completion_script(prog_name="llmscope", complete_var="_LLMSCOPE_COMPLETE", shell=shell)


def write_completions(folder: Path) -> None:
    """Regenerate completions/: ``python -m llmscope._completion completions``."""
    folder.mkdir(parents=True, exist_ok=True)
    for shell, name in SHELLS.items():
        (folder / name).write_text(completion_script(shell))


if __name__ == "__main__":
    import sys

    write_completions(Path(sys.argv[1] if len(sys.argv) > 1 else "completions"))
