"""--help, every COMMAND --help and shell completion never import torch or transformers.

For --help, pydantic is on the list too: Typer coerces a not-given option through pydantic when
its default is None, which made every `llmscope COMMAND --help` pay for importing it (about 100 ms,
most of the gap to a bare Typer app's --help). The root's flags are plain bools so that this
stays so. (Completion does import it: Typer coerces every parameter of the command being
completed; it is still faster than a bare Typer app's --help.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "accelerate", "gguf", "safetensors", "tokenizers")
HELP_HEAVY = (*HEAVY, "pydantic")

PROBE = r"""
import json, os, sys
sys.argv = ["llmscope", *json.loads(os.environ["PROBE_ARGS"])]
from llmscope.cli import main
try:
    main()
except SystemExit:
    pass
heavy = [m for m in json.loads(os.environ["PROBE_HEAVY"]) if m in sys.modules]
sys.stderr.write("\nHEAVY=" + json.dumps(heavy) + "\n")
"""


def _imported(args: list[str], modules: tuple[str, ...] = HELP_HEAVY, **env: str) -> tuple[list[str], str]:
    """The listed modules that running llmscope with `args` imported, and what it printed."""
    environ = {**os.environ, "PROBE_ARGS": json.dumps(args), "PROBE_HEAVY": json.dumps(modules), **env}
    done = subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, timeout=60)
    line = [x for x in done.stderr.splitlines() if x.startswith("HEAVY=")][-1]
    return json.loads(line[len("HEAVY="):]), done.stdout


# Every command of the Typer app, in --help order, pinned by hand: adding, renaming or dropping a
# command must change this list (and README) on purpose.
COMMANDS = ["inspect", "memory", "tokenize", "next-token", "layers", "embeddings", "generate", "score", "compare",
            "attention", "heads", "why", "contributions", "patch", "experts", "pack", "report"]


def test_the_app_has_exactly_the_pinned_commands():
    import typer.main

    from llmscope.cli import app

    assert [c.name for c in app.registered_commands] == COMMANDS
    assert app.registered_groups == []
    assert list(typer.main.get_command(app).commands) == COMMANDS  # what the shell sees: click's command group


def test_readme_has_a_section_for_each_command_and_no_other():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    # "## llmscope NAME" or "## llmscope NAME: what it shows"
    headings = re.findall(r"^## llmscope ([^\s:]+)(?::.*)?$", readme, flags=re.MULTILINE)
    assert sorted(headings) == sorted(COMMANDS)  # both ways, and each once
    assert len(headings) == len(set(headings))


def test_root_help_imports_nothing_heavy():
    heavy, out = _imported(["--help"])
    assert heavy == []
    assert "Usage: llmscope [OPTIONS] COMMAND" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_imports_nothing_heavy(command):
    heavy, out = _imported([command, "--help"])
    assert heavy == []
    assert f"Usage: llmscope {command} [OPTIONS]" in out


def test_completion_imports_nothing_heavy():
    env = {"_LLMSCOPE_COMPLETE": "complete_bash", "COMP_WORDS": "llmscope inspect --", "COMP_CWORD": "2"}
    heavy, out = _imported([], (*HEAVY, "rich"), **env)  # no Rich reporter installed while completing
    assert heavy == []
    assert "--modules" in out.split()  # it did complete


def test_import_llmscope_does_not_import_rich():
    """The Python API is the quiet core: Rich comes only with render (the CLI, or llmscope.show)."""
    code = "import llmscope, llmscope.units, llmscope.progress, sys; print('rich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_import_llmscope_is_cheap():
    code = "import llmscope, sys; print([m for m in %r if m in sys.modules])" % (HEAVY,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
