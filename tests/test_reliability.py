"""Every command against the mistakes users make and the inputs attackers send.

Each case must end with a non-zero exit (2 for a usage error, 1 for a runtime error), exactly one
line starting with ``Error:`` on stderr, nothing on stdout and no traceback. An error that reaches
``cli.main``'s last line of defence ("unexpected ... this is a bug in llmscope") fails the test:
it means a library error leaked untranslated.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

USAGE, RUNTIME = 2, 1

# Every command, and the arguments that make it run on MODEL (a path or hub id).
COMMANDS = ("inspect", "memory", "tokenize", "next-token", "layers", "generate", "compare", "attention",
            "heads", "experts", "pack")
LOADS_WEIGHTS = ("next-token", "layers", "generate", "compare", "attention", "heads", "experts")
LOADS_TOKENIZER = ("tokenize", "pack", *LOADS_WEIGHTS)
HAS_DEVICE = LOADS_WEIGHTS
PROMPT = "The cat sat on the mat"


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("docs") / "doc.txt"
    path.write_text("The cat sat on the mat. The dog was not amused.\n")
    return path


def argv(command: str, model: str | Path, *extra: str, doc: Path | None = None, prompt: str = PROMPT) -> list[str]:
    """``llmscope COMMAND`` pointed at MODEL with the least it needs to run."""
    model = str(model)
    if command in ("inspect", "memory"):
        return [command, model, *extra]
    if command == "pack":
        return [command, str(doc), "--seq-len", "16", "-m", model, *extra]
    return [command, prompt, "-m", model, *extra]


def copy_model(folder: Path, tmp_path: Path, name: str = "model") -> Path:
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


# --------------------------------------------------------------------------------------------
# Models that are not there


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_model_path(cli, command, doc, one_error_line):
    line = one_error_line(cli(*argv(command, "./no/such/model", doc=doc)), RUNTIME)
    assert "no such file or folder" in line


@pytest.mark.parametrize("command", COMMANDS)
def test_unknown_hub_id_offline(cli, command, doc, one_error_line):
    line = one_error_line(cli(*argv(command, "someone/model-that-is-not-cached", doc=doc)), RUNTIME)
    assert "HF_HUB_OFFLINE" in line and "someone/model-that-is-not-cached" in line


@pytest.mark.parametrize("command", COMMANDS)
def test_folder_without_a_model(cli, command, doc, tmp_path, one_error_line):
    line = one_error_line(cli(*argv(command, tmp_path, doc=doc)), RUNTIME)
    assert "without config.json" in line


@pytest.mark.parametrize("command", COMMANDS)
def test_file_that_is_not_a_model(cli, command, doc, one_error_line):
    line = one_error_line(cli(*argv(command, doc, doc=doc)), RUNTIME)
    assert "not a .gguf file" in line


class _NotFoundHub(http.server.BaseHTTPRequestHandler):
    """A stand-in for the Hub that knows no repository (answers as huggingface.co does)."""

    def _answer(self) -> None:
        body = b'{"error": "Repository not found"}'
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("X-Error-Message", "Repository not found")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = _answer

    def log_message(self, *args) -> None:
        pass


def _online(*args: str, endpoint: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_ENDPOINT": endpoint,
           "HF_HUB_ETAG_TIMEOUT": "5", "HF_HUB_DOWNLOAD_TIMEOUT": "5"}
    return subprocess.run([sys.executable, "-m", "llmscope", *args], env=env, capture_output=True, text=True,
                          timeout=180)


@pytest.mark.parametrize("command", ["inspect", "generate"])
def test_unknown_hub_id_online(command):
    """Online, against a local stand-in for the Hub that answers 404 RepoNotFound."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFoundHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        args = ["inspect", "someone/no-such-model"] if command == "inspect" else [
            "generate", "Hi", "-m", "someone/no-such-model"]
        done = _online(*args, endpoint=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert done.returncode == RUNTIME and len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert "no model 'someone/no-such-model' on the Hugging Face Hub" in errors[0]
    assert [line for line in done.stderr.splitlines() if line.strip() and "Loading" not in line] == errors


def test_hub_unreachable_online():
    """Online with the Hub unreachable (a port nobody listens on): one line saying so."""
    with socket.socket() as sock:  # a free port, closed again: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = _online("inspect", "someone/no-such-model", endpoint=f"http://127.0.0.1:{port}")
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert done.returncode == RUNTIME and len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert "not reachable" in errors[0], errors[0]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [f"The Hub (http://127.0.0.1:{port}) is not reachable: using the local cache only.", *errors]


def _as_hub_cache(folder: Path, cache: Path, repo: str) -> None:
    """Lay FOLDER out as huggingface_hub caches a download of REPO (refs/main -> a snapshot)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    entry = cache / ("models--" + repo.replace("/", "--"))
    shutil.copytree(folder, entry / "snapshots" / commit)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text(commit)


def test_hub_unreachable_cached_model_loads_from_the_cache(tiny_models, tmp_path):
    """No network, model cached: it runs from the cache (as HF_HUB_OFFLINE=1 would), with a note."""
    _as_hub_cache(tiny_models["gpt2"], tmp_path / "hub", "someone/tiny-gpt2")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = ("next-token", PROMPT, "--json")
    online = subprocess.run(
        [sys.executable, "-m", "llmscope", *args, "-m", "someone/tiny-gpt2"], capture_output=True, text=True,
        timeout=180, env={**os.environ, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0",
                          "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_CACHE": str(tmp_path / "hub")},
    )
    assert online.returncode == 0, online.stderr
    assert "not reachable: using the local cache only" in online.stderr
    local = subprocess.run([sys.executable, "-m", "llmscope", *args, "-m", str(tiny_models["gpt2"])],
                           capture_output=True, text=True, timeout=180, check=True)
    got, want = json.loads(online.stdout), json.loads(local.stdout)
    assert got["model"] == "someone/tiny-gpt2"
    assert got["input_ids"] == want["input_ids"] and got["candidates"] == want["candidates"]


# --------------------------------------------------------------------------------------------
# Corrupt and truncated files


@pytest.mark.parametrize("command", LOADS_WEIGHTS)
@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_safetensors(cli, command, damage, tiny_models, tmp_path, doc, one_error_line):
    folder = copy_model(tiny_models["llama"], tmp_path)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    if damage == "garbage":
        weights.write_bytes(os.urandom(len(data)))
    elif damage == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    else:
        weights.write_bytes(b"")
    line = one_error_line(cli(*argv(command, folder, doc=doc)), RUNTIME)
    assert str(folder) in line


@pytest.mark.parametrize("command", ["inspect", "memory", *LOADS_WEIGHTS])
@pytest.mark.parametrize("damage", ["not json", "truncated", "a list", "no model_type"])
def test_corrupt_config_json(cli, command, damage, tiny_models, tmp_path, doc, one_error_line):
    folder = copy_model(tiny_models["gpt2"], tmp_path)
    config = folder / "config.json"
    text = config.read_text()
    if damage == "not json":
        config.write_bytes(os.urandom(200))
    elif damage == "truncated":
        config.write_text(text[: len(text) // 2])
    elif damage == "a list":
        config.write_text("[1, 2, 3]")
    else:
        data = json.loads(text)
        del data["model_type"]
        data.pop("architectures", None)
        config.write_text(json.dumps(data))
    line = one_error_line(cli(*argv(command, folder, doc=doc)), RUNTIME)
    assert str(folder) in line


@pytest.mark.parametrize("command", LOADS_TOKENIZER)
@pytest.mark.parametrize("damage", ["not json", "truncated", "wrong shape"])
def test_corrupt_tokenizer_json(cli, command, damage, tiny_models, tmp_path, doc, one_error_line):
    folder = copy_model(tiny_models["gpt2"], tmp_path)
    tokenizer = folder / "tokenizer.json"
    text = tokenizer.read_text()
    if damage == "not json":
        tokenizer.write_bytes(os.urandom(300))
    elif damage == "truncated":
        tokenizer.write_text(text[: len(text) // 2])
    else:
        tokenizer.write_text(json.dumps({"model": {"type": "NoSuchModel"}, "version": "1.0"}))
    line = one_error_line(cli(*argv(command, folder, doc=doc)), RUNTIME)
    assert str(folder) in line


def _write_gguf(path: Path) -> bytes:
    """A small, well-formed GGUF (llama metadata and one tensor) written with the gguf package."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(8)
    writer.add_head_count(2)
    writer.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("damage", ["truncated", "header only", "garbage"])
def test_truncated_or_corrupt_gguf(cli, command, damage, tmp_path, doc, one_error_line):
    whole = _write_gguf(tmp_path / "whole.gguf")
    path = tmp_path / "broken.gguf"
    if damage == "truncated":
        path.write_bytes(whole[: len(whole) // 2])
    elif damage == "header only":
        path.write_bytes(whole[:10])
    else:
        path.write_bytes(b"GGUF" + os.urandom(500))
    line = one_error_line(cli(*argv(command, path, doc=doc)), RUNTIME)
    assert "broken.gguf" in line
    assert not [p for p in (Path(os.environ["LLMSCOPE_CACHE"]) / "gguf").glob("*/*") if p.is_dir()
                and (p / "llmscope-cache.json").exists() and "broken" in (p / "llmscope-cache.json").read_text()]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("model_type", ["not-an-architecture", "vit"])
def test_unsupported_architecture(cli, command, model_type, tiny_models, tmp_path, doc, one_error_line):
    folder = copy_model(tiny_models["gpt2"], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = model_type
    config["architectures"] = ["ViTForImageClassification" if model_type == "vit" else "NotAnArchitecture"]
    (folder / "config.json").write_text(json.dumps(config))
    result = cli(*argv(command, folder, doc=doc))
    if command in ("tokenize", "pack"):  # only the tokenizer is read: it is intact
        assert result.exit_code == 0, result.stderr
        return
    line = one_error_line(result, RUNTIME)
    assert "unsupported architecture" in line


# --------------------------------------------------------------------------------------------
# Devices


@pytest.mark.parametrize("command", HAS_DEVICE)
@pytest.mark.parametrize("device", ["cuda", "cuda:3"])
def test_cuda_without_a_gpu(cli, command, device, tiny_models, one_error_line):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    model = tiny_models["mixtral" if command == "experts" else "gpt2"]
    line = one_error_line(cli(*argv(command, model, "--device", device)), RUNTIME)
    assert "no CUDA GPU" in line and "--device cpu" in line


@pytest.mark.parametrize("command", HAS_DEVICE)
@pytest.mark.parametrize("option,value", [("--device", "tpu"), ("--device", "cuda:x"), ("--dtype", "int4")])
def test_unknown_device_or_dtype(cli, command, option, value, tiny_models, one_error_line):
    line = one_error_line(cli(*argv(command, tiny_models["gpt2"], option, value)), USAGE)
    assert value in line


# --------------------------------------------------------------------------------------------
# Out-of-range values for every numeric option, and unknown strategy names

HUGE = str(10**30)
OUT_OF_RANGE = [
    # memory
    ("memory", ["--context", "0"]),
    ("memory", ["--context", "-5"]),
    ("memory", ["--context", "abc"]),
    ("memory", ["--batch", "0"]),
    ("memory", ["--batch", "-1"]),
    ("memory", ["--memory", "0GiB"]),
    ("memory", ["--memory", "-1GiB"]),
    ("memory", ["--memory", "lots"]),
    ("memory", ["--memory", "nanGiB"]),
    ("memory", ["--cpu", "0"]),
    ("memory", ["--gpus", "0x80GiB"]),
    ("memory", ["--gpus", "2x"]),
    ("memory", ["--gpus", ","]),
    ("memory", ["--gpus", f"{HUGE}x80GiB"]),
    ("memory", ["--gpus", "100000000x80GiB"]),
    ("memory", ["--memory", "9" * 400 + "GiB"]),
    ("memory", ["--cpu", "9" * 400 + "GiB"]),
    ("memory", ["--kv-dtype", "int3"]),
    ("memory", ["--memory", "8GiB", "--gpus", "2x8GiB"]),
    # tokenize
    ("tokenize", ["--ids", "-1"]),
    ("tokenize", ["--ids", "abc"]),
    ("tokenize", ["--ids", ","]),
    ("tokenize", ["--ids", "1.5"]),
    ("tokenize", ["--ids", HUGE]),
    ("tokenize", ["--ids", "99999"]),
    # next-token
    ("next-token", ["--rows", "0"]),
    ("next-token", ["--rows", "-3"]),
    ("next-token", ["--top-k", "0"]),
    ("next-token", ["--top-k", "-3"]),
    ("next-token", ["--temperature", "-1"]),
    ("next-token", ["--temperature", "nan"]),
    ("next-token", ["--temperature", "inf"]),
    ("next-token", ["--temperature", "1e-300", "--steps", "1", "--strategy", "sample"]),
    ("next-token", ["--temperature", "1e-300"]),
    ("next-token", ["--top-p", "0"]),
    ("next-token", ["--top-p", "1.5"]),
    ("next-token", ["--top-p", "nan"]),
    ("next-token", ["--steps", "-1"]),
    ("next-token", ["--steps", HUGE]),
    ("next-token", ["--seed", "-1"]),
    ("next-token", ["--seed", HUGE]),
    ("next-token", ["--strategy", "telepathy"]),
    ("next-token", ["--strategy", "beam"]),
    ("next-token", ["--strategy", "greedy", "--top-p", "0.5"]),
    ("next-token", ["--min-p", "1.5"]),
    ("next-token", ["--typical-p", "0"]),
    ("next-token", ["--repetition-penalty", "0"]),
    ("next-token", ["--repetition-penalty", "inf"]),
    # layers
    ("layers", ["--top", "0"]),
    ("layers", ["--top", "-1"]),
    # generate
    ("generate", ["--temperature", "-1"]),
    ("generate", ["--temperature", "nan"]),
    ("generate", ["--temperature", "inf"]),
    ("generate", ["--temperature", "1e-300"]),
    ("generate", ["--top-k", "0"]),
    ("generate", ["--top-p", "0"]),
    ("generate", ["--top-p", "1.5"]),
    ("generate", ["--min-p", "-0.1"]),
    ("generate", ["--min-p", "1.5"]),
    ("generate", ["--typical-p", "0"]),
    ("generate", ["--typical-p", "2"]),
    ("generate", ["--num-beams", "0"]),
    ("generate", ["--max-new-tokens", "0"]),
    ("generate", ["--max-new-tokens", "-5"]),
    ("generate", ["--repetition-penalty", "0"]),
    ("generate", ["--repetition-penalty", "-1"]),
    ("generate", ["--repetition-penalty", "inf"]),
    ("generate", ["--repetition-penalty", "1e-230"]),
    ("generate", ["--repetition-penalty", "1e38"]),
    ("generate", ["--seed", "-1"]),
    ("generate", ["--seed", HUGE]),
    ("generate", ["--seed", str(2**64)]),
    ("generate", ["--strategy", "telepathy"]),
    ("generate", ["--strategy", ""]),
    ("generate", ["--strategy", "greedy", "--top-p", "0.5"]),
    ("generate", ["--num-beams", "3", "--strategy", "top-k"]),
    # compare
    ("compare", ["--strategies", "telepathy"]),
    ("compare", ["--strategies", ""]),
    ("compare", ["--strategies", "greedy,,beam"]),
    ("compare", ["--strategies", "greedy=3"]),
    ("compare", ["--strategies", "top-p=abc"]),
    ("compare", ["--strategies", "top-p=2"]),
    ("compare", ["--strategies", "top-k=0"]),
    ("compare", ["--strategies", "beam=0"]),
    ("compare", ["--strategies", "sample=-1"]),
    ("compare", ["--temperature", "-1"]),
    ("compare", ["--temperature", "1e-300"]),
    ("compare", ["--top-k", "0"]),
    ("compare", ["--top-p", "0"]),
    ("compare", ["--min-p", "2"]),
    ("compare", ["--typical-p", "0"]),
    ("compare", ["--num-beams", "0"]),
    ("compare", ["--max-new-tokens", "0"]),
    ("compare", ["--repetition-penalty", "0"]),
    ("compare", ["--seed", "-1"]),
    ("compare", ["--seed", HUGE]),
    # attention
    ("attention", ["--layer", "2"]),
    ("attention", ["--layer", "-3"]),
    ("attention", ["--layer", HUGE]),
    ("attention", ["--head", "4"]),
    ("attention", ["--head", "-1"]),
    ("attention", ["--top", "0"]),
    ("attention", ["--token", "99"]),
    ("attention", ["--token", "-99"]),
    ("attention", ["--token", "zebra"]),
    # pack
    ("pack", ["--seq-len", "0"]),
    ("pack", ["--seq-len", "-1"]),
    ("pack", ["--seq-len", "abc"]),
]


@pytest.mark.parametrize("command,extra", OUT_OF_RANGE, ids=[f"{c} {' '.join(e)[:40]}" for c, e in OUT_OF_RANGE])
def test_out_of_range_values(cli, command, extra, tiny_models, doc, one_error_line):
    if command == "pack":
        args = ["pack", str(doc), "-m", str(tiny_models["gpt2"]), *extra]
    else:
        args = argv(command, tiny_models["gpt2"], *extra)
    one_error_line(cli(*args), USAGE)


@pytest.mark.parametrize("command,extra", [
    ("next-token", ["--temperature", "0", "--steps", "3"]),
    ("next-token", ["--temperature", "0", "--top-p", "0.5", "--steps", "3"]),
    ("generate", ["--temperature", "0", "-n", "3"]),
    ("generate", ["--strategy", "sample", "--temperature", "0", "-n", "3"]),
])
def test_temperature_zero_is_greedy_and_says_so(cli, command, extra, tiny_models):
    """Once refused by next-token, temperature 0 is greedy everywhere: the argmax, as --strategy greedy
    writes it, and one notice on stderr saying so."""
    result = cli(*argv(command, tiny_models["gpt2"], *extra), "--json")
    assert result.exit_code == 0, result.stderr
    notices = [line for line in result.stderr.splitlines()
               if "temperature=0 always picks the most likely token" in line]
    assert len(notices) == 1 and "greedy" in notices[0], result.stderr
    data = result.json()
    assert data["strategy"] == "greedy" and any("temperature=0" in w for w in data["warnings"])
    n = ["--steps", "3"] if command == "next-token" else ["-n", "3"]
    greedy = cli(*argv(command, tiny_models["gpt2"], "--strategy", "greedy", *n), "--json")
    assert greedy.exit_code == 0, greedy.stderr
    if command == "next-token":
        assert [s["chosen"]["id"] for s in data["steps"]] == [s["chosen"]["id"] for s in greedy.json()["steps"]]
        assert data["candidates"] == greedy.json()["candidates"]  # nothing reshaped: the model's own distribution
    else:
        assert data["token_ids"] == greedy.json()["token_ids"]


# Large but valid values: clamped to what the model has, never a crash. Each case says what the
# clamp gives, checked against the model's own config and tokenizer or against a run without the
# huge value. The tiny GPT-2 has a 400-token vocabulary, 128 positions, 2 layers of width 64.
SEED_MAX = str(2**64 - 1)


def _all_candidates(data, again, vocab, config):
    assert len(data["candidates"]) == vocab  # every token of the vocabulary, no more


def _same_text_twice(data, again, vocab, config):
    seed, text = ("seed", "generated_text") if "steps" in data else (None, "text")
    assert (data[seed] if seed else data["settings"]["seed"]) == int(SEED_MAX)
    assert again()[text] == data[text]  # the same seed, the same text


def _whole_lens(data, again, vocab, config):
    assert [len(layer["lens_top"]) for layer in data["layers"]] == [vocab] * len(data["layers"])


def _top_k_beyond_the_vocabulary_is_plain_sampling(data, again, vocab, config):
    assert data["token_ids"] == again("--strategy", "sample", "-n", "4", "--seed", "5")["token_ids"]


def _up_to_the_context(data, again, vocab, config):
    assert data["stop_reason"] in ("context", "eos")  # cut by the context, not by --max-new-tokens (issue 21)
    if data["stop_reason"] == "context":
        assert data["prompt_tokens"] + data["num_tokens"] == config["n_positions"]
    else:
        assert data["prompt_tokens"] + data["num_tokens"] <= config["n_positions"]


def _every_position(data, again, vocab, config):
    # the last token sees every position of the prompt, and no more
    assert [len(layer["top"]) for layer in data["ranking"]] == [len(data["tokens"])] * config["n_layer"]


def _one_sequence(data, again, vocab, config):
    for layout in ("padded", "packed"):
        assert data[layout]["sequences"] == 1 and data[layout]["document_tokens"] == data["tokens"]


def _kv_cache_from_the_config(data, again, vocab, config):
    # keys and values, every layer, every channel, 2 bytes each (bfloat16), per token of every sequence
    per_token = 2 * config["n_layer"] * config["n_embd"] * 2
    assert data["kv_cache"]["bytes"] == per_token * 100_000 * 1000


def _next_top_k_beyond_the_vocabulary_is_plain_sampling(data, again, vocab, config):
    plain = again("--strategy", "sample", "--steps", "4", "--seed", "5")
    assert [s["chosen"]["id"] for s in data["steps"]] == [s["chosen"]["id"] for s in plain["steps"]]
    assert data["top_k_kept"] == data["sampling_kept"] == vocab  # the filter keeps the whole vocabulary
    assert [c["prob_sampling"] for c in data["candidates"]] == pytest.approx([c["prob"] for c in plain["candidates"]],
                                                                             abs=1e-7)


HUGE_BUT_VALID = [
    ("next-token", ["--rows", HUGE], _all_candidates),
    ("next-token", ["--top-k", HUGE, "--steps", "4", "--seed", "5"],
     _next_top_k_beyond_the_vocabulary_is_plain_sampling),
    ("next-token", ["--seed", SEED_MAX, "--strategy", "sample", "--steps", "3"], _same_text_twice),
    ("layers", ["--top", HUGE], _whole_lens),
    ("generate", ["--top-k", HUGE, "-n", "4", "--seed", "5"], _top_k_beyond_the_vocabulary_is_plain_sampling),
    ("generate", ["--max-new-tokens", HUGE], _up_to_the_context),
    ("generate", ["--seed", SEED_MAX, "--strategy", "sample", "-n", "3"], _same_text_twice),
    ("attention", ["--top", HUGE, "--token", "-1"], _every_position),
    ("pack", ["--seq-len", HUGE], _one_sequence),
    ("memory", ["--context", "100000", "--allow-longer", "--batch", "1000"], _kv_cache_from_the_config),
]


@pytest.mark.parametrize("command,extra,check", HUGE_BUT_VALID,
                         ids=[f"{c} {' '.join(e)[:40]}" for c, e, _ in HUGE_BUT_VALID])
def test_huge_but_valid_values(cli, command, extra, check, tiny_models, hf_tokenizers, doc):
    def run(*options: str) -> dict:
        if command == "pack":
            args = ["pack", str(doc), "-m", str(tiny_models["gpt2"]), *options]
        else:
            args = argv(command, tiny_models["gpt2"], *options)
        result = cli(*args, "--json")
        assert result.exit_code == 0, result.stderr
        assert "Error" not in result.stderr
        return result.json()

    config = json.loads((tiny_models["gpt2"] / "config.json").read_text())
    check(run(*extra), lambda *options: run(*(options or extra)), len(hf_tokenizers["gpt2"]), config)


def test_two_stdins_and_missing_files_for_pack(cli, tiny_models, tmp_path, one_error_line):
    gpt2 = str(tiny_models["gpt2"])
    one_error_line(cli("pack", "-", "-", "--seq-len", "8", "-m", gpt2), USAGE)
    one_error_line(cli("pack", str(tmp_path / "nope.txt"), "--seq-len", "8", "-m", gpt2), USAGE)
    one_error_line(cli("pack", str(tmp_path), "--seq-len", "8", "-m", gpt2), USAGE)


def test_tokenize_file_mistakes(cli, tiny_models, tmp_path, one_error_line):
    gpt2 = str(tiny_models["gpt2"])
    one_error_line(cli("tokenize", "-f", str(tmp_path / "nope.txt"), "-m", gpt2), USAGE)
    one_error_line(cli("tokenize", "-f", str(tmp_path), "-m", gpt2), USAGE)
    one_error_line(cli("tokenize", "text", "-f", str(tmp_path), "-m", gpt2), USAGE)


# --------------------------------------------------------------------------------------------
# Prompts longer than the model's context (the tiny models hold 128 or 256 positions)

LONG = "the cat sat on the mat " * 200  # about 1,200 tokens


@pytest.mark.parametrize("command", ["next-token", "layers", "generate", "compare", "attention", "heads", "experts"])
def test_prompt_longer_than_the_context(cli, command, tiny_models, one_error_line):
    model = tiny_models["mixtral" if command == "experts" else "gpt2"]
    line = one_error_line(cli(*argv(command, model, prompt=LONG)), USAGE)
    assert "context" in line


def test_steps_past_the_context(cli, tiny_models, one_error_line):
    prompt = "the cat sat on the mat " * 15  # under 128 tokens, but not with 100 more
    line = one_error_line(cli("next-token", prompt, "-m", str(tiny_models["gpt2"]), "--steps", "100"), USAGE)
    assert "context" in line


def test_bert_prompt_longer_than_its_context(cli, tiny_models, one_error_line):
    line = one_error_line(cli("next-token", LONG + " [MASK]", "-m", str(tiny_models["bert"])), USAGE)
    assert "context" in line


# --------------------------------------------------------------------------------------------
# Empty input and invalid UTF-8


@pytest.mark.parametrize("command", ["next-token", "layers", "attention", "heads", "experts"])
def test_empty_prompt(cli, command, tiny_models, one_error_line):
    model = tiny_models["mixtral" if command == "experts" else "gpt2"]
    line = one_error_line(cli(*argv(command, model, prompt="")), USAGE)
    assert "empty" in line


@pytest.mark.parametrize("command", ["generate", "compare"])
def test_empty_prompt_writes_from_the_start_token(cli, command, tiny_models):
    """generate and compare accept an empty prompt: they start from BOS, as model.generate does.
    The tiny GPT-2's tokenizer adds no BOS itself, so llmscope must put it there."""
    import torch
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"])
    bos = hf.config.bos_token_id
    expected = hf.generate(torch.tensor([[bos]]), max_new_tokens=3, do_sample=False, pad_token_id=bos)[0, 1:]
    extra = ["-S", "greedy"] if command == "compare" else []
    result = cli(command, "", "-m", str(tiny_models["gpt2"]), "-n", "3", *extra, "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    row = data["results"][0] if command == "compare" else data
    assert row["prompt_tokens"] == 1
    assert row["token_ids"] == expected.tolist()


def test_empty_prompt_without_a_start_token(cli, tiny_models, tmp_path, one_error_line):
    folder = copy_model(tiny_models["gpt2"], tmp_path)
    for name in ("config.json", "generation_config.json"):
        path = folder / name
        if path.exists():
            data = json.loads(path.read_text())
            data["bos_token_id"] = None
            path.write_text(json.dumps(data))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["bos_token"] = None
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    for command in ("generate", "compare"):
        line = one_error_line(cli(command, "", "-m", str(folder), "-n", "3"), USAGE)
        assert "empty" in line and "beginning-of-text" in line


def test_empty_file_for_pack(cli, tiny_models, tmp_path, one_error_line):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    line = one_error_line(cli("pack", str(empty), "--seq-len", "8", "-m", str(tiny_models["gpt2"])), USAGE)
    assert "no tokens" in line


INVALID_UTF8 = b"caf\xe9 \xff\xfe na\xefve"


def test_invalid_utf8_on_stdin_for_tokenize(cli, tiny_models, one_error_line, stdin):
    stdin(INVALID_UTF8)
    line = one_error_line(cli("tokenize", "-", "-m", str(tiny_models["gpt2"])), USAGE)
    assert "not valid UTF-8" in line and "0xe9" in line


def test_invalid_utf8_file_for_tokenize(cli, tiny_models, tmp_path, one_error_line):
    path = tmp_path / "latin1.txt"
    path.write_bytes(INVALID_UTF8)
    line = one_error_line(cli("tokenize", "-f", str(path), "-m", str(tiny_models["gpt2"])), USAGE)
    assert "not valid UTF-8" in line


def test_invalid_utf8_on_stdin_for_pack(cli, tiny_models, one_error_line, stdin):
    stdin(INVALID_UTF8)
    result = cli("pack", "-", "--seq-len", "8", "-m", str(tiny_models["gpt2"]))
    line = one_error_line(result, USAGE)
    assert "UTF-8" in line


def test_empty_stdin_for_tokenize_and_pack(cli, tiny_models, one_error_line, stdin):
    from transformers import AutoTokenizer

    stdin(b"")
    result = cli("tokenize", "-", "-m", str(tiny_models["llama"]), "--json")
    assert result.exit_code == 0, result.stderr
    # nothing but what the tokenizer adds by itself (the BOS)
    assert result.json()["ids"] == AutoTokenizer.from_pretrained(tiny_models["llama"])("")["input_ids"]
    stdin(b"")
    one_error_line(cli("pack", "-", "--seq-len", "8", "-m", str(tiny_models["gpt2"])), USAGE)


def test_invalid_utf8_on_a_real_stdin(tiny_models):
    """The same through a real process and pipe, where Python's own stdin decoding applies."""
    done = subprocess.run(
        [sys.executable, "-m", "llmscope", "tokenize", "-", "-m", str(tiny_models["gpt2"])],
        input=INVALID_UTF8, capture_output=True, timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "", "LC_ALL": "C.UTF-8"},
    )
    err = done.stderr.decode()
    assert done.returncode == USAGE, err
    assert done.stdout == b"" and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("Error:")] == [
        next(line for line in err.splitlines() if "not valid UTF-8" in line)
    ]


def test_invalid_utf8_in_interactive_answers(cli, tiny_models, stdin):
    stdin(b"\xff\xfe\n")
    result = cli("next-token", PROMPT, "-m", str(tiny_models["gpt2"]), "--interactive")
    assert result.exit_code in (0, USAGE), result.stderr
    assert "Traceback" not in result.stderr and "this is a bug" not in result.stderr


# --------------------------------------------------------------------------------------------
# Commands that do not fit the model


def test_dense_model_for_experts(cli, tiny_models, one_error_line):
    line = one_error_line(cli("experts", PROMPT, "-m", str(tiny_models["llama"])), RUNTIME)
    assert "mixture-of-experts" in line or "dense" in line


@pytest.mark.parametrize("command", ["generate", "compare"])
def test_masked_lm_cannot_write(cli, command, tiny_models, one_error_line):
    one_error_line(cli(*argv(command, tiny_models["bert"])), USAGE)


@pytest.mark.parametrize("command", ["next-token", "layers", "generate", "compare"])
def test_chat_without_a_chat_template(cli, command, tiny_models, one_error_line):
    line = one_error_line(cli(*argv(command, tiny_models["gpt2"], "--chat")), USAGE)
    assert "chat template" in line


@pytest.mark.parametrize("command", ["tokenize", "next-token", "layers", "generate", "compare"])
def test_system_without_chat(cli, command, tiny_models, one_error_line):
    line = one_error_line(cli(*argv(command, tiny_models["llama"], "--system", "Be brief.")), USAGE)
    assert "--chat" in line


@pytest.mark.parametrize("command", COMMANDS)
def test_unknown_option(cli, command, tiny_models, doc, one_error_line):
    line = one_error_line(cli(*argv(command, tiny_models["gpt2"], "--no-such-option", doc=doc)), USAGE)
    assert "--no-such-option" in line


@pytest.mark.parametrize("command", ["tokenize", "next-token", "layers", "generate", "compare", "attention",
                                     "experts", "inspect", "memory", "pack"])
def test_export_to_an_unknown_format(cli, command, tiny_models, doc, tmp_path, one_error_line):
    line = one_error_line(cli(*argv(command, tiny_models["gpt2"], "--export", str(tmp_path / "x.pdf"), doc=doc)),
                       USAGE)
    assert "x.pdf" in line


# --------------------------------------------------------------------------------------------
# One run on the real embedded model: a prompt beyond nothing but a bad layer index


@pytest.mark.slow
def test_demo_model_layer_out_of_range(cli, one_error_line):
    line = one_error_line(cli("attention", "Hello", "--layer", "18"), USAGE)
    assert "18 layers" in line


# --------------------------------------------------------------------------------------------
# Chat templates render in jinja's sandbox: a malicious one is stopped, never run

MALICIOUS_TEMPLATES = {
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "os via globals": "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "os via context": "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.system('touch MARKER') }}",
    "mutate messages": "{{ messages.append({'role': 'x'}) }}{{ messages | length }}",
}


@pytest.mark.parametrize("command", ["tokenize", "next-token", "layers", "generate", "compare"])
@pytest.mark.parametrize("name", list(MALICIOUS_TEMPLATES))
def test_malicious_chat_template_is_stopped(cli, command, name, tiny_models, tmp_path, one_error_line):
    marker = tmp_path / "PWNED"
    folder = copy_model(tiny_models["llama"], tmp_path)
    template = MALICIOUS_TEMPLATES[name].replace("MARKER", str(marker))
    (folder / "chat_template.jinja").write_text(template)
    # the template really is the one transformers will apply
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(folder).chat_template == template
    line = one_error_line(cli(*argv(command, folder, "--chat")), RUNTIME)
    assert "sandbox forbids" in line and "unsafe" in line
    assert not marker.exists()


def test_harmless_tricks_render_without_running_anything(cli, tiny_models, tmp_path):
    """Attribute lookups the sandbox allows but that reach nothing: the template renders, nothing runs."""
    folder = copy_model(tiny_models["llama"], tmp_path)
    template = "{{ ''.format.__self__ }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    (folder / "chat_template.jinja").write_text(template)
    result = cli("tokenize", "hello", "-m", str(folder), "--chat", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["text"] == "hello"


@pytest.mark.parametrize("command", ["tokenize", "next-token", "generate"])
def test_a_template_that_loops_forever_is_bounded(cli, command, tiny_models, tmp_path, one_error_line):
    """jinja's sandbox stops the loop ("Range too big"): a broken model file, not the user's
    mistake, so exit 1 as README's table says for a template stopped by the sandbox."""
    folder = copy_model(tiny_models["llama"], tmp_path)
    (folder / "chat_template.jinja").write_text("{% for i in range(10**12) %}x{% endfor %}")
    line = one_error_line(cli(*argv(command, folder, "--chat")), RUNTIME)
    assert "Range too big" in line


# --------------------------------------------------------------------------------------------
# Invalid UTF-8 in arguments: Python keeps those bytes as lone surrogates ("caf\udce9")


@pytest.mark.parametrize("command", ["tokenize", "next-token", "layers", "generate", "compare", "attention",
                                     "experts"])
def test_invalid_utf8_argument(cli, command, tiny_models, one_error_line):
    line = one_error_line(cli(*argv(command, tiny_models["gpt2"], prompt="caf\udce9")), USAGE)
    assert "not valid UTF-8" in line and "0xe9" in line


def test_invalid_utf8_in_an_option_value(cli, tiny_models, one_error_line):
    line = one_error_line(cli("next-token", "Hi", "-m", str(tiny_models["gpt2"]), "--show", "\udcff"), USAGE)
    assert "not valid UTF-8" in line


def test_a_file_name_that_is_not_utf8_still_works(cli, tiny_models, tmp_path):
    path = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.txt"))
    path.write_text("The cat sat on the mat.")
    result = cli("pack", str(path), "--seq-len", "8", "-m", str(tiny_models["gpt2"]), "--json")
    assert result.exit_code == 0, result.stderr
    from transformers import AutoTokenizer

    expected = len(AutoTokenizer.from_pretrained(tiny_models["gpt2"])("The cat sat on the mat.")["input_ids"])
    data = result.json()
    assert data["documents"] == 1 and data["tokens"] == expected


def test_invalid_utf8_argument_in_a_real_process(tiny_models):
    done = subprocess.run(
        [sys.executable.encode(), b"-m", b"llmscope", b"tokenize", b"caf\xe9", b"-m", bytes(tiny_models["gpt2"])],
        capture_output=True, timeout=120,
    )
    err = done.stderr.decode()
    assert done.returncode == USAGE and done.stdout == b"", err
    assert err.startswith("Error:") and "not valid UTF-8" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------
# Ctrl-C in the middle of generating (SIGINT reaches Python as KeyboardInterrupt in the forward pass)


@pytest.mark.parametrize("command", ["generate", "compare", "next-token"])
def test_ctrl_c_while_generating_exits_130_quietly(cli, command, tiny_models, monkeypatch):
    from transformers import GPT2LMHeadModel

    forward = GPT2LMHeadModel.forward
    calls = []

    def interrupted_on_the_third_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(GPT2LMHeadModel, "forward", interrupted_on_the_third_step)
    extra = ["--steps", "10"] if command == "next-token" else ["-n", "10"]
    result = cli(*argv(command, tiny_models["gpt2"], *extra))
    assert len(calls) == 3
    assert result.exit_code == 130
    assert "Traceback" not in result.stderr and "Error" not in result.stderr
