"""The resolver: what the user typed -> ModelSource, without torch or the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmscope.errors import ModelNotFoundError, UsageError
from llmscope.loading.resolve import resolve


def test_nothing_means_the_embedded_default():
    source = resolve(None)
    assert source.kind == "embedded"
    assert resolve("").kind == "embedded"


@pytest.mark.parametrize("name", ["gpt2", "microsoft/Phi-3-mini-4k-instruct", "mistralai/Mixtral-8x7B-v0.1"])
def test_hub_ids(name):
    source = resolve(name, revision="main")
    assert (source.kind, source.location, source.revision) == ("hub", name, "main")


def test_local_folder_with_config(tmp_path: Path):
    (tmp_path / "config.json").write_text("{}")
    source = resolve(str(tmp_path))
    assert source.kind == "folder" and source.location == str(tmp_path.resolve())
    assert resolve(tmp_path) == source  # a Path as well as a str


def test_gguf_file_and_folder_with_gguf_file(tmp_path: Path):
    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    (tmp_path / "b.gguf").write_bytes(b"GGUF")
    by_file = resolve(str(tmp_path / "a.gguf"))
    assert (by_file.kind, by_file.gguf_file) == ("gguf", "a.gguf")
    by_folder = resolve(str(tmp_path), gguf_file="b.gguf")
    assert by_folder.gguf_path == (tmp_path / "b.gguf").resolve()
    with pytest.raises(UsageError, match="several .gguf"):
        resolve(str(tmp_path))


@pytest.mark.parametrize("name", ["./no/such/folder", "/definitely/missing", "model.gguf", "a/b/c", "bad id!"])
def test_missing_paths_and_malformed_ids(name):
    with pytest.raises(ModelNotFoundError):
        resolve(name)


def test_folder_without_a_model(tmp_path: Path):
    with pytest.raises(ModelNotFoundError, match="without config.json"):
        resolve(str(tmp_path))


def test_missing_demo_extra_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n.startswith("gemma3") else real(n, *a))
    with pytest.raises(Exception) as info:
        resolve(None)
    assert "llmscope[demo]" in str(info.value)
