"""``llmscope memory`` through main(): exit codes, --json keys, rendering, bad values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CONFIGS = Path(__file__).parent / "data" / "configs"
GiB = 2**30


def test_json_keys_and_numbers(cli, config_folder):
    folder = config_folder("mixtral-8x7b-v0.1")
    result = cli("memory", folder, "--context", "4096", "--batch", "2", "--gpus", "2x80GiB", "--cpu", "64GiB", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    for key in ("parameters", "weights", "kv_cache", "transient_bytes", "fits", "headroom_bytes", "max_context",
                "placement"):
        assert key in data
    assert set(data["parameters"]) >= {"total", "active"}
    assert data["parameters"]["active"] < data["parameters"]["total"]
    assert set(data["weights"]) >= {"dtype", "bytes"}
    assert "file_bytes" not in data["weights"]  # GGUF only
    assert data["weights"]["bytes"] == 2 * data["parameters"]["total"]
    kv = data["kv_cache"]
    assert set(kv) >= {"dtype", "context", "batch", "bytes_per_token", "bytes", "layers"}
    raw = json.loads((CONFIGS / "mixtral-8x7b-v0.1.json").read_text())
    head_dim = raw["hidden_size"] // raw["num_attention_heads"]
    per_token = 2 * 2 * raw["num_key_value_heads"] * head_dim * 2 * raw["num_hidden_layers"]  # K+V, batch, bf16
    assert kv["bytes_per_token"] == per_token
    assert kv["bytes"] == per_token * 4096
    assert data["fits"] is True
    assert [p["device"] for p in data["placement"]] == ["cuda:0", "cuda:1"]
    assert sorted(i for p in data["placement"] for i in p["layers"]) == list(range(32))
    for p in data["placement"]:
        assert set(p) >= {"device", "bytes", "layers"}
        assert p["bytes"] <= 80 * GiB


def test_single_budget_has_no_placement(cli, config_folder):
    result = cli("memory", config_folder("gpt2"), "--memory", "1GB", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["placement"] is None
    assert data["headroom_bytes"] == 10**9 - data["weights"]["bytes"] - data["kv_cache"]["bytes"] - data[
        "transient_bytes"]
    assert data["max_context"] == 1024


def test_encoder_has_no_cache(cli, config_folder):
    data = cli("memory", config_folder("bert-base-uncased"), "--memory", "1GiB", "--json").json()
    assert data["kv_cache"] is None


def test_rendering_at_80_columns(cli, config_folder):
    result = cli("memory", config_folder("phi3-mini-4k-instruct"), "--memory", "8GiB", "--context", "4096")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "Phi3ForCausalLM" in out
    assert "32 sliding layers" in out and "keeps 2,046" in out
    assert "Does not fit" in out or "Fits" in out
    assert "Longest context" in out


def test_default_model_gguf(cli):
    # config only: the embedded model's weights are never loaded here
    result = cli("memory", "--context", "2048", "--memory", "2GiB", "--json")
    assert result.exit_code == 0, result.stderr
    weights = result.json()["weights"]
    assert weights["file_bytes"] > 0 and 4 < weights["bits_per_weight"] < 16
    assert {t["type"] for t in weights["types"]}


@pytest.mark.parametrize(
    "args",
    [
        ["--context", "0"],
        ["--context", "-3"],
        ["--batch", "0"],
        ["--memory", "lots"],
        ["--memory", "24XB"],
        ["--gpus", "2x"],
        ["--cpu", "0GiB"],
        ["--dtype", "int3"],
        ["--memory", "24GiB", "--gpus", "2x24GiB"],
        ["--context", "5000"],  # beyond gpt2's 1024
    ],
)
def test_bad_values_exit_2(cli, config_folder, args):
    result = cli("memory", config_folder("gpt2"), *args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_allow_longer(cli, config_folder):
    result = cli("memory", config_folder("gpt2"), "--context", "5000", "--allow-longer", "--memory", "8GiB", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["kv_cache"]["context"] == 5000


def test_gguf_file_and_tensor_bytes_are_what_the_gguf_reader_says(cli, tiny_gguf):
    """Two sizes, each named for what it counts: the file on disk, and its tensor data alone."""
    import gguf

    reader = gguf.GGUFReader(str(tiny_gguf))
    tensor_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    file_bytes = tiny_gguf.stat().st_size
    assert tensor_bytes < file_bytes  # the header and the vocabulary are in the file, not in the tensors
    weights = cli("memory", str(tiny_gguf), "--context", "64", "--memory", "1GiB", "--json").json()["weights"]
    assert (weights["file_bytes"], weights["tensor_bytes"]) == (file_bytes, tensor_bytes)
    info = cli("inspect", str(tiny_gguf), "--json").json()["gguf"]
    assert (info["file_bytes"], info["tensor_bytes"]) == (file_bytes, tensor_bytes)
