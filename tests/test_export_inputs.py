"""Issue 34, item 2: ``--export`` never overwrites a file the model is read from.

``inspect FOLDER --gguf-file model.txt --export FOLDER/model.txt`` replaced a 138,656-byte model with
4,559 bytes of text: the export check knew text inputs only. Now the .gguf given as MODEL, the
--gguf-file inside a folder, and any file already in the model folder are inputs too: one line, exit
2, before anything loads, in whatever order the options are typed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

USAGE = 2


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("LLMSCOPE_CACHE", str(root))
    return root


@pytest.fixture
def gguf_folder(tiny_gguf: Path, tmp_path: Path) -> Path:
    """A folder holding the tiny GGUF under a name that does not end in .gguf, as in the issue."""
    folder = tmp_path / "FOLDER"
    folder.mkdir()
    shutil.copy(tiny_gguf, folder / "model.txt")
    return folder


def refused(cli, one_error_line, cache: Path, *args: str) -> str:
    """The one error line of ``llmscope ARGS`` (exit 2), with nothing converted or loaded first."""
    line = one_error_line(cli(*args), USAGE)
    assert not (cache / "gguf").exists() and not (cache / "inspect").exists(), "the check came after a load"
    return line


@pytest.mark.parametrize("order", ["model-first", "export-first"])
def test_the_issue_s_case_leaves_the_model_file_whole(cli, one_error_line, cache, gguf_folder, order):
    model = gguf_folder / "model.txt"
    before = model.read_bytes()
    model_args = [str(gguf_folder), "--gguf-file", "model.txt"]
    export_args = ["--export", str(model)]
    args = model_args + export_args if order == "model-first" else export_args + model_args
    line = refused(cli, one_error_line, cache, "inspect", *args)
    assert f"--export {model} is the model file this command reads" in line
    assert model.read_bytes() == before


def test_a_gguf_file_given_directly_is_not_exported_onto(cli, one_error_line, cache, tiny_gguf, tmp_path):
    """Onto the .gguf itself (not an export format), or onto a link or a second name for it."""
    before = tiny_gguf.read_bytes()
    assert "unknown format" in refused(cli, one_error_line, cache, "inspect", str(tiny_gguf), "--export",
                                       str(tiny_gguf))
    link = tmp_path / "link.txt"
    link.symlink_to(tiny_gguf)
    hard = tmp_path / "same-file.svg"
    try:
        os.link(tiny_gguf, hard)
    except OSError:  # another filesystem: the link is enough
        hard = link
    for target in (link, hard):
        line = refused(cli, one_error_line, cache, "inspect", str(tiny_gguf), "--export", str(target))
        assert "is the model file this command reads" in line
    assert tiny_gguf.read_bytes() == before


@pytest.fixture
def llama(tiny_models, tmp_path: Path) -> Path:
    folder = tmp_path / "llama"
    shutil.copytree(tiny_models["llama"], folder)
    return folder


@pytest.mark.parametrize("command", [["inspect", "{model}"], ["tokenize", "Hello", "-m", "{model}"],
                                     ["memory", "{model}"]], ids=["inspect", "tokenize", "memory"])
@pytest.mark.parametrize("name", ["notes.txt", "sub/merges.txt"])
def test_a_file_in_the_model_folder_is_not_exported_onto(cli, one_error_line, cache, llama, command, name):
    """Loading reads a folder's config, tokenizer and weight files, and the tokenizer cache hashes every
    file there: an existing file in it is an input."""
    target = llama / name
    target.parent.mkdir(exist_ok=True)
    target.write_text("what the model folder holds\n")
    args = [part.format(model=llama) for part in command]
    for order in (args + ["--export", str(target)], [args[0], "--export", str(target), *args[1:]]):
        line = refused(cli, one_error_line, cache, *order)
        assert "is a file in the model folder" in line and str(llama) in line
    assert target.read_text() == "what the model folder holds\n"


def test_a_new_file_in_the_model_folder_may_be_exported(cli, cache, llama):
    target = llama / "architecture.svg"
    result = cli("inspect", str(llama), "--export", str(target))
    assert result.exit_code == 0, result.stderr
    assert target.read_text().startswith("<svg")


def test_the_text_input_check_still_holds(cli, one_error_line, cache, llama, tmp_path):
    """The check of text inputs (``tokenize -f in.txt --export in.txt``) is untouched by the model's."""
    source = tmp_path / "in.txt"
    source.write_text("Hello\n")
    line = one_error_line(cli("tokenize", "-f", str(source), "-m", str(llama), "--export", str(source)), USAGE)
    assert "is the input file" in line and source.read_text() == "Hello\n"
