"""The errors of loading, text, config and memory in two languages (issue 27): a Python caller reads the
function's parameters (``context=5,000``, ``allow_longer=True``, ``model``), a person at the CLI reads
the running command's own options (``--context 5,000``, ``--allow-longer``, ``MODEL`` or ``--model``),
from the one error the core raised."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import api_error as _api  # one error check, in the API words
from conftest import cli_error as _cli  # and as the CLI writes it

import llmscope
from llmscope.errors import PARAMETER, UsageError
from llmscope.loading.model import LoadSpec
from llmscope.text import inputs
from llmscope.text.tokens import decode_ids, parse_ids

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("loading", "text", "config", "memory", "decoding", "forward", "explain")
# Parameters only the Python API can pass (no command has an option for them): they stay in the API's words.
API_ONLY = {"models", "settings"}


def _command(name: str):
    import typer.main

    from llmscope.cli import app

    return typer.main.get_command(app).commands[name]


def test_a_parameter_that_is_an_option(cli, one_error_line):
    """``model`` is tokenize's --model option."""
    assert _api(lambda: llmscope.inspect_model(LoadSpec(gguf_file="x.gguf"))) == (
        "gguf_file needs a model folder to look in")
    line = _cli(cli, one_error_line, "tokenize", "hi", "--gguf-file", "x.gguf")
    assert line.endswith("Error: --gguf-file needs a --model folder to look in")


def test_a_positional_argument_is_its_metavar(cli, one_error_line, tmp_path):
    """``model`` is inspect's MODEL argument, ``text`` tokenize's TEXT."""
    line = _cli(cli, one_error_line, "inspect", "--gguf-file", "x.gguf")
    assert line.endswith("Error: --gguf-file needs a MODEL folder to look in")
    notes = tmp_path / "notes.txt"
    notes.write_text("the cat", encoding="utf-8")
    line = _cli(cli, one_error_line, "tokenize", "the cat", "--file", str(notes), "-m", "/nonexistent/model")
    assert line.endswith("Error: give TEXT or --file, not both")


def test_a_value_and_a_bool_flag(cli, one_error_line, config_folder):
    """``context=5,000`` is ``--context 5,000``; ``allow_longer=True`` is the flag alone."""
    folder = str(config_folder("gpt2"))
    beyond = "is beyond this model's maximum of 1,024 tokens"
    assert _api(lambda: llmscope.memory_report(folder, context=5000, memory="1GiB")) == (
        f"context=5,000 {beyond} (pass allow_longer=True to size it anyway)")
    line = _cli(cli, one_error_line, "memory", folder, "--context", "5000", "--memory", "1GiB")
    assert line.endswith(f"Error: --context 5,000 {beyond} (pass --allow-longer to size it anyway)")

    assert _api(lambda: llmscope.memory_report(folder, gpus="2x8GiB", measure=True)) == (
        "measure=True runs on one device (leave out gpus and cpu)")
    line = _cli(cli, one_error_line, "memory", folder, "--gpus", "2x8GiB", "--measure")
    assert line.endswith("Error: --measure runs on one device (leave out --gpus and --cpu)")


def test_a_bare_name_and_an_example_value(cli, one_error_line):
    assert _api(lambda: parse_ids(" ")) == "ids: no token ids given (e.g. ids=504,3575,12)"
    line = _cli(cli, one_error_line, "tokenize", "--ids", " ", "-m", "/nonexistent/model")
    assert line.endswith("Error: --ids: no token ids given (e.g. --ids 504,3575,12)")
    assert _api(lambda: decode_ids("5,x", model="/nonexistent/model")) == (
        "ids: 'x' is not a token id (token ids are whole numbers >= 0)")


def test_files_read_and_written(cli, one_error_line, tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"caf\xe9")
    bad = "is not valid UTF-8: byte 0xe9 at offset 3"
    assert _api(lambda: inputs.read_text(None, latin1)).startswith(f"file={latin1} {bad}")
    line = _cli(cli, one_error_line, "tokenize", "--file", str(latin1), "-m", "/nonexistent/model")
    assert f"Error: --file {latin1} {bad}" in line

    notes = tmp_path / "notes.txt"
    notes.write_text("the cat", encoding="utf-8")
    same = "is the input file of this command: saving would overwrite it"
    assert _api(lambda: inputs.check_not_input(notes, [notes])) == (
        f"export={notes} {same} (give export another file name)")
    line = _cli(cli, one_error_line, "tokenize", "--file", str(notes), "--export", str(notes))
    assert line.endswith(f"Error: --export {notes} {same} (give --export another file name)")
    assert _api(lambda: inputs.read_text("the cat", notes)) == "give text or file, not both"
    assert _api(lambda: inputs.check_writable_file(tmp_path, option="export")).startswith(
        f"export={tmp_path} is a folder (")


def test_a_parameter_whose_option_has_another_name(config_folder):
    """memory's --for is the parameter ``mode``: the CLI stops a bad value first, the core's words still map."""
    from llmscope._options import flag_namer

    with pytest.raises(UsageError) as caught:
        llmscope.memory_report(str(config_folder("gpt2")), mode="train", memory="1GiB")
    assert str(caught.value).startswith("mode=train: unknown mode (")
    assert caught.value.render(flag_namer(_command("memory"))).startswith("--for train: unknown mode (")


# --------------------------------------------------------------------------------------------
# Every parameter these packages name is an option of a command that calls them


def _named_parameters() -> dict[str, set[str]]:
    """Each `name` written in the message or hint of an error raised in PACKAGES -> the files naming it."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / "llmscope" / package).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Call) and getattr(node.func, "id", "").endswith("Error")):
                    continue
                parts = [*node.args, *(k.value for k in node.keywords if k.arg == "hint")]
                for text in (_text(n) for part in parts for n in ast.walk(part)):
                    for match in PARAMETER.finditer(text or ""):
                        found.setdefault(match.group(1), set()).add(f"{package}/{path.name}")
    return found


def _text(node: ast.AST) -> str | None:
    """A string literal's text; an f-string's with each replacement field as {} (never a name)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


COMMANDS = ("inspect", "tokenize", "pack", "memory", "generate", "next-token", "layers", "score", "compare",
            "embeddings", "attention", "heads", "why", "contributions", "patch", "experts", "report")


def test_every_parameter_named_is_some_command_option():
    names = _named_parameters()
    assert {"device", "gguf_file", "ids", "seq_len", "context", "allow_longer", "measure"} <= set(names)
    options = {p.name for name in COMMANDS for p in _command(name).params}
    missing = {name: sorted(where) for name, where in names.items() if name not in options | API_ONLY}
    assert not missing, missing
    assert API_ONLY <= set(names)  # still named somewhere, or the list is stale


@pytest.mark.parametrize(
    "command,names",
    [
        ("inspect", {"model", "revision", "gguf_file", "trust_remote_code", "export"}),
        ("tokenize", {"model", "revision", "gguf_file", "trust_remote_code", "export", "text", "file", "ids", "chat",
                      "system"}),
        ("pack", {"model", "revision", "gguf_file", "trust_remote_code", "export", "seq_len", "separator"}),
        ("memory", {"model", "revision", "gguf_file", "trust_remote_code", "export", "context", "batch", "dtype",
                    "kv_dtype", "memory", "gpus", "cpu", "allow_longer", "mode", "attn_implementation", "measure",
                    "runs"}),
    ],
)
def test_each_command_has_the_parameters_its_core_names(command, names):
    assert names <= {p.name for p in _command(command).params}
