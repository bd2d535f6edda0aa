"""Issue 34 item 5: a chat template's render is bounded in time and memory.

jinja's sandbox bounds ``range`` only, and transformers' renderer adds nothing: each case here ran past
60 s or took 1-5 GB, and a 100 MB ``raise_exception`` message became one 100 MB stderr line. Each now
ends in one line naming the template, within the budget (LLMSCOPE_MAX_TEMPLATE_SECONDS, set to 3 s here
so the suite stays quick; LLMSCOPE_MAX_TEMPLATE_BYTES), in a capped subprocess so that a regression
fails instead of eating the machine.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

USAGE, RUNTIME = 2, 1
CEILING = 6 * 2**30  # the CLI's own ~1.2 GB, the template's 512 MiB budget, and room
SECONDS = "3"

HOSTILE = {
    # name: (template, words the error line holds)
    "lipsum(10**5)": ("{{ lipsum(10**5) }}", "ran past 3 s (LLMSCOPE_MAX_TEMPLATE_SECONDS)"),
    "lipsum(10**9)": ("{{ lipsum(10**9) }}", "ran past 3 s"),
    "a power of a billion": ("{% set n = messages|length %}{{ (10 + n) ** (10 ** 9 + n) }}", "ran past 3 s"),
    "strftime of 10**7 characters": ("{{ strftime_now('%Y' * 10**7) }}", "characters, more than"),
    "two nested range(99999)": ("{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
                                "ran past 3 s"),
    "repetition to 3 GB": ("{{ 'x' * 3 * 10**9 }}", "took more than 512.00 MiB of memory (LLMSCOPE_MAX_TEMPLATE_BYTES)"),
    "a MemoryError": ("{{ 'x' * 10**12 }}", "took more than 512.00 MiB of memory"),
}


def run_capped(*args: object, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CEILING, CEILING))

    return subprocess.run([sys.executable, "-m", "llmscope", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "LLMSCOPE_MAX_TEMPLATE_SECONDS": SECONDS, **(env or {})},
                          preexec_fn=cap, timeout=timeout)


def one_line(done: subprocess.CompletedProcess, code: int) -> str:
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert done.returncode == code, (done.returncode, done.stderr[-2000:])
    assert len(errors) == 1 and "Traceback" not in done.stderr and done.stdout == "", done.stderr[-2000:]
    assert "this is a bug" not in errors[0] and len(done.stderr) < 2000, done.stderr[-2000:]
    return errors[0]


@pytest.fixture
def with_template(tiny_models: dict[str, Path], tmp_path: Path):
    """``with_template(text)``: a copy of the tiny llama whose chat template is TEXT."""

    def make(template: str) -> Path:
        folder = tmp_path / "templated"
        shutil.copytree(tiny_models["llama"], folder)
        config = json.loads((folder / "tokenizer_config.json").read_text())
        config.pop("chat_template", None)
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
        (folder / "chat_template.jinja").write_text(template)
        return folder

    return make


def test_a_normal_template_still_renders(with_template):
    folder = with_template("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}<|assistant|>")
    done = run_capped("tokenize", "hello", "-m", folder, "--chat", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["text"] == "<|user|>hello<|assistant|>"


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_template_is_one_line_within_its_budget(with_template, name):
    template, words = HOSTILE[name]
    folder = with_template(template)
    start = time.monotonic()
    line = one_line(run_capped("tokenize", "hello", "-m", folder, "--chat"), RUNTIME)
    assert time.monotonic() - start < 45
    assert f"{folder}: its chat template" in line and words in line and "was stopped" in line, line


def test_generate_chat_is_bounded_too(with_template):
    folder = with_template(HOSTILE["a power of a billion"][0])
    line = one_line(run_capped("generate", "hello", "-m", folder, "--chat", "-n", "2"), RUNTIME)
    assert "its chat template ran past 3 s" in line, line


def test_a_100_mb_raise_exception_message_is_cut(with_template):
    """raise_exception is how a template refuses messages (exit 2, as before); its message is cut to 200
    characters, not printed as one 100 MB line."""
    folder = with_template("{{ raise_exception('y' * 10**8) }}")
    line = one_line(run_capped("tokenize", "hello", "-m", folder, "--chat"), USAGE)
    assert "its chat template refused these messages (yyy" in line and len(line) < 400, line[:500]


def test_the_memory_budget_is_configurable(with_template):
    """A 100 MB string renders within 512 MiB, and not within 64 MiB."""
    folder = with_template("{{ ('x' * 10**8)[:5] }}{{ messages[0]['content'] }}")
    done = run_capped("tokenize", "hello", "-m", folder, "--chat", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["text"] == "xxxxxhello", done.stderr[-2000:]
    line = one_line(run_capped("tokenize", "hello", "-m", folder, "--chat",
                               env={"LLMSCOPE_MAX_TEMPLATE_BYTES": "64MiB"}), RUNTIME)
    assert "took more than 64.00 MiB of memory" in line, line


@pytest.mark.parametrize(("variable", "value"), [("LLMSCOPE_MAX_TEMPLATE_SECONDS", "soon"),
                                                 ("LLMSCOPE_MAX_TEMPLATE_SECONDS", "0"),
                                                 ("LLMSCOPE_MAX_TEMPLATE_BYTES", "lots")])
def test_a_bad_budget_is_a_usage_error(cli, one_error_line, tiny_models, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    line = one_error_line(cli("tokenize", "hello", "-m", str(tiny_models["llama"]), "--chat"), USAGE)
    assert f"{variable}={value!r}" in line, line
