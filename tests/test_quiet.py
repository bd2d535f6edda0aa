"""A quiet core: the Python API prints nothing; the CLI draws the core's notices and progress on stderr.

The core (everything in llmscope/ but cli.py, _options.py, commands/ and render/) talks only through
``llmscope.progress.reporter()``, which does nothing until the CLI installs a Rich one.
"""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "llmscope"
OUTSIDE_THE_CORE = {"cli.py", "_options.py", "__main__.py", "_docs.py"}  # __main__ calls cli.main; _docs renders --help
OUTSIDE_THE_CORE_DIRS = {"commands", "render"}


def _core_modules() -> list[Path]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in OUTSIDE_THE_CORE_DIRS or str(relative) in OUTSIDE_THE_CORE:
            continue
        found.append(path)
    return found


def _talks(tree: ast.AST) -> list[str]:
    """Imports of rich / llmscope.render, print() calls and sys.stdout / sys.stderr uses, with line numbers."""
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            problems.append(f"line {node.lineno}: print()")
            continue
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in ("stdout", "stderr")
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            problems.append(f"line {node.lineno}: sys.{node.attr}")
            continue
        else:
            continue
        for name in names:
            if name == "rich" or name.startswith("rich.") or name == "llmscope.render" or name.startswith("llmscope.render."):
                problems.append(f"line {node.lineno}: imports {name}")
    return problems


def test_the_core_list_is_the_core():
    names = {str(p.relative_to(PACKAGE)) for p in _core_modules()}
    assert {"forward/attention.py", "text/packing.py", "forward/experts.py", "loading/model.py", "progress.py",
            "units.py"} <= names
    assert not any(n.startswith(("render", "commands")) or n == "cli.py" for n in names)


def test_no_core_module_imports_rich_or_render_or_prints():
    found = {}
    for path in _core_modules():
        problems = _talks(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        if problems:
            found[str(path.relative_to(PACKAGE))] = problems
    assert found == {}


def test_the_checker_sees_what_it_looks_for():
    code = "from llmscope import render\nimport rich.progress\nprint('x')\nimport sys\nsys.stderr.write('x')\n"
    assert _talks(ast.parse(code)) == [
        "line 1: imports llmscope.render",
        "line 2: imports rich.progress",
        "line 3: print()",
        "line 5: sys.stderr",
    ]


# --------------------------------------------------------------------------------------------
# The API, run as a notebook would: nothing on stdout or stderr

API_CALLS = r"""
import json, os
import llmscope

paths = json.loads(os.environ["QUIET_MODELS"])
llama, mixtral, gguf = paths["llama"], paths["mixtral"], paths["gguf"]
cpu_llama, cpu_mixtral = llmscope.LoadSpec(llama, device="cpu"), llmscope.LoadSpec(mixtral, device="cpu")
short = llmscope.settings_for(max_new_tokens=3)
results = [
    llmscope.tokenize("The cat sat on the mat.", model=llama),
    llmscope.inspect_model(llama),
    llmscope.memory_report(llama, context=128),
    llmscope.pack(["The cat sat on the mat.", "The dog was not amused."], model=llama, seq_len=16),
    llmscope.predict_next_token("The cat sat", model=cpu_llama),
    llmscope.predict_next_token("The cat sat", model=cpu_llama, steps=2),
    llmscope.layer_report("The cat sat", model=cpu_llama),
    llmscope.generate("The cat sat", model=cpu_llama, settings=short),
    llmscope.compare("The cat sat", model=cpu_llama,
                     strategies=llmscope.parse_strategy_list("greedy,sample", max_new_tokens=3)),
    llmscope.attention_weights("The cat sat", model=cpu_llama),
    llmscope.expert_routing("The cat sat", model=cpu_mixtral),
]
# A GGUF in an empty llmscope cache: its metadata and tokenizer are converted here, quietly.
results.append(llmscope.tokenize("The cat sat", model=gguf))
results.append(llmscope.predict_next_token("The cat sat", model=llmscope.LoadSpec(gguf, device="cpu")))
lm = llmscope.load(llama, device="cpu")  # sdpa or eager: attention switches it for one call, quietly
results.append(llmscope.attention_weights("The cat sat", model=lm))
with open(os.environ["QUIET_DONE"], "w") as done:
    done.write(json.dumps([type(r).__name__ for r in results]))
"""


def _run_api_calls(tiny_models, tiny_gguf, tmp_path, prelude: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LLMSCOPE_NO_PROGRESS"}  # no help from that switch
    env.update(
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        TRANSFORMERS_VERBOSITY="error",
        QUIET_MODELS=json.dumps({**{k: str(v) for k, v in tiny_models.items()}, "gguf": str(tiny_gguf)}),
        LLMSCOPE_CACHE=str(tmp_path / "fresh-cache"),  # so the GGUF conversion runs (and could talk)
        QUIET_DONE=str(tmp_path / "done.json"),
    )
    done = subprocess.run([sys.executable, "-c", prelude + API_CALLS], env=env, capture_output=True, text=True,
                          timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_api_prints_nothing(tiny_models, tiny_gguf, tmp_path):
    done = _run_api_calls(tiny_models, tiny_gguf, tmp_path)
    assert json.loads((tmp_path / "done.json").read_text())[-1] == "AttentionResult"  # every call ran
    assert done.stdout == ""
    assert done.stderr == ""


def test_the_api_raises_no_warning(tiny_models, tiny_gguf, tmp_path):
    """Every warning an error, from the first import on: a deprecated transformers keyword (a
    FutureWarning) or any other drift of the libraries fails here the day it appears."""
    done = _run_api_calls(tiny_models, tiny_gguf, tmp_path, prelude="import warnings\nwarnings.simplefilter('error')\n")
    assert done.stdout == "" and done.stderr == ""


# --------------------------------------------------------------------------------------------
# The CLI installs the Rich reporter: notices and bars on stderr, never on stdout


def test_cli_shows_the_eager_notice_on_stderr_only(cli, tiny_models):
    r = cli("attention", "The cat sat", "-m", tiny_models["llama"], "--device", "cpu", "--json")
    assert r.exit_code == 0, r.stderr
    assert "Loading with eager attention" in r.stderr
    assert "eager" not in r.stdout
    assert r.json()["layer"] == 1


def test_cli_shows_the_gguf_conversion_on_stderr(cli, tiny_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSCOPE_CACHE", str(tmp_path / "fresh-cache"))
    r = cli("tokenize", "The cat sat", "-m", tiny_gguf, "--json")
    assert r.exit_code == 0, r.stderr
    assert "Converting the tokenizer of tiny-llama-q8_0.gguf" in r.stderr
    assert "GGUF" not in r.stdout
    assert r.json()["ids"]


def test_cli_puts_the_silent_reporter_back(cli, tiny_models, capsys):
    from llmscope.progress import Reporter, reporter

    assert cli("attention", "The cat sat", "-m", tiny_models["llama"], "--device", "cpu").exit_code == 0
    assert type(reporter()) is Reporter
    import llmscope

    capsys.readouterr()
    llmscope.attention_weights("The cat sat", model=llmscope.LoadSpec(str(tiny_models["llama"]), device="cpu"))
    out, err = capsys.readouterr()
    assert out == ""
    assert "eager" not in err  # (transformers' own "Loading weights" bar may be there: see the subprocess test)


@pytest.fixture
def terminal(monkeypatch):
    """render.stderr as a terminal writing into a buffer (so spinners and bars are drawn)."""
    from rich.console import Console

    from llmscope import render

    monkeypatch.delenv("LLMSCOPE_NO_PROGRESS", raising=False)
    buffer = io.StringIO()
    monkeypatch.setattr(render, "stderr", Console(file=buffer, force_terminal=True, width=80, color_system=None))
    monkeypatch.setattr(render, "reset_consoles", lambda: None)  # the cli fixture would replace it
    return buffer


def test_rich_reporter_draws_a_byte_bar_on_a_terminal(terminal):
    from llmscope.render.progress import RichReporter

    with RichReporter().progress("Tokenizing", total=3 * 2**20, unit="bytes") as bar:
        bar.advance(2**20)
        bar.advance(2 * 2**20)
    drawn = terminal.getvalue()
    assert "Tokenizing" in drawn
    assert "3.1/3.1 MB" in drawn  # Rich's DownloadColumn: the bytes done out of the total


def test_rich_reporter_counts_items(terminal):
    from llmscope.render.progress import RichReporter

    with RichReporter().progress("Scoring windows", total=4) as bar:
        for _ in range(4):
            bar.advance()
    assert "4/4" in terminal.getvalue()


def test_rich_reporter_without_a_terminal_writes_plain_lines_and_no_bar(monkeypatch):
    from rich.console import Console

    from llmscope import render
    from llmscope.render.progress import RichReporter

    buffer = io.StringIO()
    monkeypatch.setattr(render, "stderr", Console(file=buffer, force_terminal=False, width=80))
    talk = RichReporter()
    talk.notice("Loading with eager attention")
    with talk.status("Reading the GGUF metadata"):
        pass
    with talk.progress("Tokenizing", total=10) as bar:
        bar.advance(10)
    assert buffer.getvalue() == "Loading with eager attention\nReading the GGUF metadata\n"


def test_pack_on_the_cli_draws_its_bar_for_large_inputs(cli, tiny_models, tmp_path, terminal, monkeypatch):
    from llmscope.text import packing

    docs = tmp_path / "docs.txt"
    docs.write_text("The cat sat on the mat.\n" * 2000, encoding="utf-8")
    monkeypatch.setattr(packing, "PROGRESS_BYTES", 1)  # "large" without tokenizing megabytes
    r = cli("pack", str(docs), "--by-line", "--seq-len", "32", "-m", tiny_models["llama"], "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json()["documents"] == 2000
    assert "Tokenizing" in terminal.getvalue()
    assert "Tokenizing" not in r.stdout
