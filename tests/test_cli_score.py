"""``llmscope score`` through main(): --json against transformers, stdin and --file, views, errors."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

TEXT = "The cat sat on the mat. Paris is the capital of France."
ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def _loss(folder, text):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = torch.tensor([AutoTokenizer.from_pretrained(folder)(text)["input_ids"]])
    with torch.inference_mode():
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)(ids, labels=ids).loss.item()


def test_json_matches_transformers(cli, tiny_models):
    from transformers import AutoTokenizer

    result = cli("score", TEXT, "-m", tiny_models["llama"], "--device", "cpu", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()  # (its top-level keys are pinned in test_json_keys)
    assert data["text"] == TEXT and data["window"] == 256 and data["stride"] == 255
    assert data["perplexity"] == pytest.approx(math.exp(_loss(tiny_models["llama"], TEXT)), rel=1e-5)
    assert data["scored"] == data["num_tokens"] - 1 == len(data["tokens"]) - 1
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    ids = tokenizer(TEXT)["input_ids"]
    assert [t["id"] for t in data["tokens"]] == ids and ids[0] == tokenizer.convert_tokens_to_ids("<s>")
    assert [t["token"] for t in data["tokens"]] == [tokenizer.decode([i]) for i in ids]  # (ASCII: whole characters)
    assert data["tokens"][0] == {"id": tokenizer.bos_token_id, "token": "<s>", "logprob": None, "rank": None,
                                 "top": None}  # the BOS is context, never scored
    second = data["tokens"][1]
    assert list(second) == ["id", "token", "logprob", "rank", "top"] and list(second["top"]) == ["id", "token", "prob"]


def test_view_fits_80_columns(cli, tiny_models):
    result = cli("score", TEXT, "-m", tiny_models["gpt2"], "--device", "cpu", "--top", "3")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert TEXT in result.stdout  # the coloured text is the text itself
    assert "Most surprising tokens (top 3)" in result.stdout
    for label in ("perplexity", "bits per byte", "mean NLL"):
        assert label in result.stdout
    table = lines[lines.index(next(x for x in lines if "Most surprising" in x)) + 3 :]
    assert sum(1 for line in table[:4] if line.strip() and line.split()[0].isdigit()) == 3


def test_stdin_file_and_windows(cli, tiny_models, monkeypatch, tmp_path):
    long = " ".join([TEXT] * 6)
    _stdin(monkeypatch, long.encode())
    from_stdin = cli("score", "-", "-m", tiny_models["gpt2"], "--device", "cpu", "--json", "--window", "16",
                     "--stride", "8").json()
    path = tmp_path / "in.txt"
    path.write_text(long)
    from_file = cli("score", "--file", path, "-m", tiny_models["gpt2"], "--device", "cpu", "--json", "--window", "16",
                    "--stride", "8").json()
    assert from_stdin == from_file
    assert from_file["windows"] > 10 and from_file["stride"] == 8 and from_file["scored"] == from_file["num_tokens"] - 1


def test_compare_model(cli, tiny_models):
    result = cli("score", TEXT, "-m", tiny_models["gpt2"], "--compare-model", tiny_models["llama"], "--device",
                 "cpu", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()  # (its top-level keys are pinned in test_json_keys)
    assert len(data["models"]) == 2 and data["model"] == data["models"][0]["model"]
    assert data["models"][1]["perplexity"] == pytest.approx(math.exp(_loss(tiny_models["llama"], TEXT)), rel=1e-5)
    assert list(data["disagreements"][0]) == ["start", "end", "text", "bits", "spread"]
    view = cli("score", TEXT, "-m", tiny_models["gpt2"], "--compare-model", tiny_models["llama"], "--device", "cpu")
    assert view.exit_code == 0 and "Where they disagree most" in view.stdout and "bits/byte" in view.stdout
    assert max(len(line) for line in view.stdout.splitlines()) <= 80


def _one_line_error(result, *words):
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr


def test_errors_come_before_any_model_loads(cli, monkeypatch, tmp_path):
    from llmscope import loading

    calls = []
    monkeypatch.setattr(loading, "load", lambda *a, **k: calls.append(a) or pytest.fail("loaded"))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"caf\xe9")
    _one_line_error(cli("score", ""), "the text is empty")
    _one_line_error(cli("score"), "no text to score")
    _one_line_error(cli("score", "hello", "--window", "1"), "--window 1: must be at least 2")
    _one_line_error(cli("score", "hello", "--stride", "0"), "--stride 0: must be at least 1")
    _one_line_error(cli("score", "hello", "--window", "4", "--stride", "5"), "larger than --window")
    _one_line_error(cli("score", "--file", latin1), "not valid UTF-8", "byte 0xe9")
    _one_line_error(cli("score", "--file", "/dev/zero"), "not a regular file")
    _one_line_error(cli("score", "--file", latin1, "--export", latin1.with_suffix(".txt")), "is the input file")
    assert calls == []


def test_masked_model_exits_2(cli, tiny_models):
    result = cli("score", TEXT, "-m", tiny_models["bert"], "--device", "cpu")
    assert result.exit_code == 2 and result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]  # (after the weights loaded, with their own progress talk)
    assert last.startswith("Error:") and "masked language model" in last and "causal model" in last


def test_stdin_from_dev_zero_stops_at_the_limit():
    env = {**os.environ, "LLMSCOPE_MAX_INPUT_BYTES": "1MiB"}
    with open("/dev/zero", "rb") as zero:
        done = subprocess.run([sys.executable, "-m", "llmscope", "score", "-"], stdin=zero, capture_output=True,
                              text=True, timeout=60, env=env, cwd=ROOT)
    assert done.returncode == 2
    assert "Error:" in done.stderr and "larger than 1.00 MiB" in done.stderr


@pytest.mark.slow
def test_embedded_gemma_from_the_cli(cli):
    result = cli("score", "The capital of France is Paris.", "--device", "cpu", "--dtype", "float32", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["tokens"][0]["token"] == "<bos>" and data["window"] == 32768
    assert 1 < data["perplexity"] < 1000
