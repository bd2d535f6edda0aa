"""``llmscope tokenize`` through main(): JSON against AutoTokenizer, stdin and --file, views, errors."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def hf(tiny_models):
    from transformers import AutoTokenizer

    return {name: AutoTokenizer.from_pretrained(tiny_models[name]) for name in ("gpt2", "llama", "bert")}


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def _one_line_error(result) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_json_matches_autotokenizer(cli, tiny_models, hf):
    text = "def add(a, b):\n\treturn a + b  # 東京 😀 <s>"
    for name in ("gpt2", "llama", "bert"):
        result = cli("tokenize", text, "-m", tiny_models[name], "--json")
        assert result.exit_code == 0, result.stderr
        data = result.json()
        expected = hf[name](text, return_offsets_mapping=True)
        assert data["ids"] == expected["input_ids"]
        assert data["tokens"] == hf[name].convert_ids_to_tokens(expected["input_ids"])
        assert data["offsets"] == [list(o) for o in expected["offset_mapping"]]
        assert data["num_tokens"] == len(expected["input_ids"])
        assert data["text"] == text


def test_rendering_fits_80_columns(cli, tiny_models, hf):
    text = "Tabs\tand  spaces\nnew line café"
    result = cli("tokenize", text, "-m", tiny_models["llama"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    ids = hf["llama"](text)["input_ids"]
    assert f"{len(ids)} tokens" in result.stdout
    assert "bos_token" in result.stdout  # the added <s> is explained
    for token_id in ids:
        assert f" {token_id} " in result.stdout


def test_stdin_bytes_and_invalid_utf8(cli, tiny_models, hf, monkeypatch):
    text = "naïve\tcafé\n"
    _stdin(monkeypatch, text.encode())
    result = cli("tokenize", "-", "-m", tiny_models["gpt2"], "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["ids"] == hf["gpt2"](text)["input_ids"]
    assert result.json()["text"] == text

    _stdin(monkeypatch, b"caf\xe9 latin-1")
    bad = cli("tokenize", "-", "-m", tiny_models["gpt2"])
    _one_line_error(bad)
    assert "not valid UTF-8" in bad.stderr


def test_file_input(cli, tiny_models, hf, tmp_path):
    path = tmp_path / "in.txt"
    text = "line one\r\nline two\n\n"
    path.write_bytes(text.encode())
    result = cli("tokenize", "--file", path, "-m", tiny_models["bert"], "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["ids"] == hf["bert"](text)["input_ids"]
    missing = cli("tokenize", "--file", tmp_path / "nope.txt", "-m", tiny_models["bert"])
    _one_line_error(missing)
    assert "no such file" in missing.stderr


def test_empty_text(cli, tiny_models, hf):
    for name in ("gpt2", "bert"):
        result = cli("tokenize", "", "-m", tiny_models[name], "--json")
        assert result.exit_code == 0, result.stderr
        assert result.json()["ids"] == hf[name]("")["input_ids"]
    shown = cli("tokenize", "", "-m", tiny_models["gpt2"])
    assert shown.exit_code == 0 and "0 tokens" in shown.stdout


def test_chat(cli, tiny_models, hf):
    result = cli("tokenize", "Hi", "-m", tiny_models["llama"], "--chat", "--system", "Be brief.", "--json")
    assert result.exit_code == 0, result.stderr
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    tok = hf["llama"]
    assert result.json()["text"] == tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert result.json()["ids"] == list(tok.apply_chat_template(messages, add_generation_prompt=True)["input_ids"])
    no_template = cli("tokenize", "Hi", "-m", tiny_models["gpt2"], "--chat")
    _one_line_error(no_template)
    assert "no chat template" in no_template.stderr and "tiny-gpt2" in no_template.stderr


def test_ids_view(cli, tiny_models, hf):
    tok = hf["bert"]
    ids = tok("hello [MASK] world")["input_ids"]
    result = cli("tokenize", "--ids", ",".join(map(str, ids)), "-m", tiny_models["bert"], "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["tokens"] == tok.convert_ids_to_tokens(ids)
    assert result.json()["text"] == tok.decode(ids)
    shown = cli("tokenize", "--ids", ",".join(map(str, ids)), "-m", tiny_models["bert"])
    assert shown.exit_code == 0 and "[MASK]" in shown.stdout
    _one_line_error(cli("tokenize", "--ids", str(len(tok)), "-m", tiny_models["bert"]))
    _one_line_error(cli("tokenize", "--ids", "1,two", "-m", tiny_models["bert"]))


def test_compare_view(cli, tiny_models, hf):
    text = "東京 😀 def f(x): return x"
    args = ("tokenize", text, "-m", tiny_models["gpt2"], "--compare", f"{tiny_models['llama']},{tiny_models['bert']}")
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.stderr
    models = result.json()["models"]
    assert [m["ids"] for m in models] == [hf[n](text)["input_ids"] for n in ("gpt2", "llama", "bert")]
    repeated = cli("tokenize", text, "-m", tiny_models["gpt2"], "-c", tiny_models["bert"], "--json")
    assert [m["num_tokens"] for m in repeated.json()["models"]] == [len(hf[n](text)["input_ids"]) for n in ("gpt2", "bert")]
    shown = cli(*args)
    assert shown.exit_code == 0 and "vs first" in shown.stdout and "CJK" in shown.stdout
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80
    assert "tiny-bert" in shown.stdout


def test_vocab_view(cli, tiny_models, hf):
    result = cli("tokenize", "--vocab", "-m", tiny_models["bert"], "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["model_type"] == "WordPiece" and data["byte_level"] is False
    assert data["vocab_size"] == hf["bert"].vocab_size
    assert {s["token"]: s["id"] for s in data["special_tokens"]}["[MASK]"] == hf["bert"].mask_token_id
    shown = cli("tokenize", "--vocab", "-m", tiny_models["gpt2"])
    assert shown.exit_code == 0 and "byte-level" in shown.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("tokenize",),
        ("tokenize", "x", "--ids", "1"),
        ("tokenize", "x", "--vocab"),
        ("tokenize", "x", "--system", "s"),
        ("tokenize", "x", "--file", "y"),
        ("tokenize", "x", "--compare", ","),
        ("tokenize", "x", "--export", "out.png"),
    ],
)
def test_bad_usage_exits_2_before_loading(cli, args):
    _one_line_error(cli(*args))


def test_help_does_not_import_transformers():
    code = (
        "import sys\nfrom llmscope.cli import main\ntry:\n    main(['tokenize', '--help'])\nexcept SystemExit:\n"
        "    pass\nprint('LOADED' if {'torch', 'transformers'} & set(sys.modules) else 'CLEAN')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "--compare" in out.stdout and out.stdout.strip().endswith("CLEAN")


@pytest.mark.slow
def test_embedded_default_json(cli):
    from transformers import AutoTokenizer

    from llmscope import loading
    from llmscope.loading.resolve import resolve

    text = "Hello,\tworld!  東京 😀\n"
    result = cli("tokenize", text, "--json")
    assert result.exit_code == 0, result.stderr
    folder, _ = loading.model._pretrained_location(resolve(None), "tokenizer")
    direct = AutoTokenizer.from_pretrained(folder)
    assert result.json()["ids"] == direct(text)["input_ids"]
    assert result.json()["added_special_tokens"][0]["token"] == direct.bos_token
