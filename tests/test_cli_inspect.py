"""``llmscope inspect`` from the command line: output, --json keys, and every mistake a user makes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CONFIG_KEYS = {
    "model_type", "num_hidden_layers", "hidden_size", "vocab_size", "num_attention_heads",
    "num_key_value_heads", "head_dim", "intermediate_size", "max_position_embeddings",
}


def _one_clean_line(result) -> str:
    """The error: exactly one 'Error:' line on stderr, no traceback, nothing on stdout."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    return lines[0]


def test_tables_at_80_columns(cli, config_folder):
    result = cli("inspect", config_folder("gpt2"))
    assert result.exit_code == 0, result.stderr
    assert "124,439,808" in result.stdout and "GPT2LMHeadModel" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_json_uses_hugging_face_config_names(cli, config_folder):
    result = cli("inspect", config_folder("mixtral-8x7b-v0.1"), "--json")
    data = result.json()
    assert CONFIG_KEYS <= set(data)
    assert data["num_key_value_heads"] == 8 and data["head_dim"] == 128
    assert data["parameters"]["total"] == 46_702_792_704
    assert data["parameters"]["active"] == 12_879_925_248


def test_modules_tree(cli, config_folder):
    result = cli("inspect", config_folder("phi3-mini-4k-instruct"), "--modules")
    assert result.exit_code == 0
    assert "0-31: Phi3DecoderLayer x32" in result.stdout


def test_export_svg(cli, config_folder, tmp_path: Path):
    out = tmp_path / "gpt2.svg"
    result = cli("inspect", config_folder("gpt2"), "--export", out)
    assert result.exit_code == 0 and out.read_text().startswith("<svg")


def test_missing_path(cli):
    line = _one_clean_line(cli("inspect", "./no/such/model"))
    assert "no such file or folder" in line


def test_unknown_hub_id_offline(cli):
    result = cli("inspect", "someone/model-that-is-not-cached")
    assert result.exit_code == 1
    assert "HF_HUB_OFFLINE" in _one_clean_line(result)


def test_corrupt_config(cli, tmp_path: Path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2", ')
    result = cli("inspect", tmp_path)
    assert result.exit_code == 1 and "JSON" in _one_clean_line(result)


def test_unsupported_architecture(cli, tmp_path: Path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit", "hidden_size": 8}))
    result = cli("inspect", tmp_path)
    assert result.exit_code == 1 and "unsupported architecture" in _one_clean_line(result)


def test_truncated_gguf(cli, tmp_path: Path):
    (tmp_path / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 7)
    result = cli("inspect", tmp_path / "broken.gguf")
    assert result.exit_code == 1 and "GGUF" in _one_clean_line(result)


def test_bad_export_suffix_is_a_usage_error(cli, config_folder, tmp_path: Path):
    result = cli("inspect", config_folder("gpt2"), "--export", tmp_path / "out.png")
    assert result.exit_code == 2 and ".svg" in _one_clean_line(result)


def test_unknown_option_is_one_line(cli):
    result = cli("inspect", "--no-such-option")
    assert result.exit_code == 2 and "--no-such-option" in _one_clean_line(result)


def test_debug_shows_the_traceback(cli):
    with pytest.raises(Exception):
        cli("--debug", "inspect", "./no/such/model")


@pytest.mark.slow
def test_inspect_the_embedded_default(cli):
    result = cli("inspect", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["parameters"]["total"] == 268_098_176 and data["model_type"] == "gemma3_text"
    assert data["gguf"]["file_type"] == "Q4_K_M"
