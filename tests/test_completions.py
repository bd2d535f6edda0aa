"""completions/ holds the scripts the CLI generates today, and MODEL completes from the HF cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmscope._completion import SHELLS, completion_script

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_completion_scripts_are_up_to_date(shell):
    committed = (ROOT / "completions" / SHELLS[shell]).read_text()
    assert committed == completion_script(shell), "regenerate with: python -m llmscope._completion completions"
    assert "_LLMSCOPE_COMPLETE" in committed


def _complete(words: str, cword: int) -> list[str]:
    env = {**os.environ, "_LLMSCOPE_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    done = subprocess.run([sys.executable, "-m", "llmscope"], env=env, capture_output=True, text=True, timeout=60)
    return done.stdout.split()


def test_commands_complete():
    assert "inspect" in _complete("llmscope ins", 1)


def test_model_completes_from_the_hub_cache(tmp_path: Path, monkeypatch):
    hub = tmp_path / "hub"
    for repo in ("models--gpt2", "models--microsoft--Phi-3-mini-4k-instruct", "datasets--x--y"):
        (hub / repo).mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert _complete("llmscope inspect micro", 2) == ["microsoft/Phi-3-mini-4k-instruct"]
    assert _complete("llmscope inspect ", 2) == ["gpt2", "microsoft/Phi-3-mini-4k-instruct"]


def _from_bash(args: str, **env: str) -> subprocess.CompletedProcess:
    # bash stays the parent process (`; true`), so Typer's shell detection finds bash.
    command = f"{sys.executable} -m llmscope {args}; true"
    return subprocess.run(["bash", "-c", command], env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_show_completion_prints_the_committed_script():
    done = _from_bash("--show-completion")
    assert done.stdout.rstrip("\n") == (ROOT / "completions" / "llmscope.bash").read_text().rstrip("\n")


def test_install_completion_writes_the_script_and_sources_it(tmp_path: Path):
    done = _from_bash("--install-completion", HOME=str(tmp_path))
    assert "bash completion installed" in done.stdout
    script = tmp_path / ".bash_completions" / "llmscope.sh"
    assert "_LLMSCOPE_COMPLETE" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
