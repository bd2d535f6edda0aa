"""``llmscope pack`` through main(): JSON numbers, rendering, stdin, bad values."""

from __future__ import annotations

import io
import math

import pytest
from transformers import AutoTokenizer

DOCS = ["The cat sat on the mat because it was tired.", "Hello world.", "Attention is all you need. " * 6]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    return path


def test_json_numbers(cli, tiny_models, corpus):
    folder = str(tiny_models["gpt2"])
    r = cli("pack", corpus, "--by-line", "--seq-len", "16", "-m", folder, "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    tok = AutoTokenizer.from_pretrained(folder)
    lengths = [len(tok(d, add_special_tokens=False)["input_ids"]) for d in DOCS]
    assert data["documents"] == 3 and data["tokens"] == sum(lengths) and data["seq_len"] == 16
    assert data["padded"]["sequences"] == sum(math.ceil(n / 16) for n in lengths)
    assert data["packed"]["sequences"] == math.ceil((sum(lengths) + 3) / 16)
    assert data["packed"]["padding_tokens"] == data["packed"]["sequences"] * 16 - sum(lengths) - 3
    assert data["separator"] == tok.eos_token
    assert "lengths" not in data
    assert 0 < data["padded"]["utilisation"] <= data["packed"]["utilisation"] <= 1


def test_rendering_at_80_columns(cli, tiny_models, corpus):
    r = cli("pack", corpus, "--by-line", "--seq-len", "16", "-m", str(tiny_models["gpt2"]))
    assert r.exit_code == 0, r.stderr
    for text in ("padded", "packed", "utilisation", "padding tokens", "longer than 16 tokens"):
        assert text in r.stdout
    assert all(len(line) <= 80 for line in r.stdout.splitlines())


def test_stdin(cli, tiny_models, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(DOCS[0]))
    r = cli("pack", "-", "--seq-len", "4", "-m", str(tiny_models["gpt2"]), "--json")
    assert r.exit_code == 0, r.stderr
    tok = AutoTokenizer.from_pretrained(str(tiny_models["gpt2"]))
    assert r.json()["tokens"] == len(tok(DOCS[0], add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--seq-len", "0"], "seq-len"),
        (["--seq-len", "-5"], "seq-len"),
        (["--seq-len", "abc"], "seq-len"),
        ([], "seq-len"),
    ],
)
def test_bad_seq_len_exit_2(cli, tiny_models, corpus, args, needle):
    r = cli("pack", corpus, "-m", str(tiny_models["gpt2"]), *args)
    assert r.exit_code == 2
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_missing_file_exit_2(cli, tiny_models, tmp_path):
    r = cli("pack", tmp_path / "nope.txt", "--seq-len", "8", "-m", str(tiny_models["gpt2"]))
    assert r.exit_code == 2 and "no such file" in r.stderr
    r = cli("pack", tmp_path, "--seq-len", "8", "-m", str(tiny_models["gpt2"]))
    assert r.exit_code == 2 and "folder" in r.stderr


@pytest.mark.slow
def test_demo_tokenizer(cli, corpus):
    r = cli("pack", corpus, "--by-line", "--seq-len", "32", "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json()["separator"] == "<eos>"
