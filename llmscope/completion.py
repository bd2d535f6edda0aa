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


SHELLS = {"bash": "llmscope.bash", "zsh": "llmscope.zsh", "fish": "llmscope.fish"}


def completion_script(shell: str) -> str:
    """The completion script Typer generates for ``llmscope`` in SHELL (bash, zsh, fish)."""
    from typer.completion import get_completion_script

    return get_completion_script(prog_name="llmscope", complete_var="_LLMSCOPE_COMPLETE", shell=shell)


def write_completions(folder: Path) -> None:
    """Regenerate completions/: ``python -m llmscope.completion completions``."""
    folder.mkdir(parents=True, exist_ok=True)
    for shell, name in SHELLS.items():
        (folder / name).write_text(completion_script(shell))


if __name__ == "__main__":
    import sys

    write_completions(Path(sys.argv[1] if len(sys.argv) > 1 else "completions"))
