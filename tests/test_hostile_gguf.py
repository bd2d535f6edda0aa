"""Issue 34 item 4: headers and layer counts that lie or ask for unbounded work.

Every length, count and offset a GGUF header declares is checked against the file before it is used,
whichever transformers is installed (the slow readers never see such a header); a layer count past
``MAX_LAYERS`` (2**32-1, in a GGUF or a config.json) is refused before anything counts layers. The
files are written here byte by byte, so each lie is exactly the one named.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

RUNTIME = 1
CEILING = 4 * 2**30  # address space of a capped run (a tiny model's run peaks near 1.2 GB)


# --------------------------------------------------------------------------------------------
# A GGUF written by hand: any length, count or offset, true or not


def _s(text: str, length: int | None = None) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw


def kv_u32(key: str, value: int) -> bytes:
    return _s(key) + struct.pack("<II", 4, value)


def kv_str(key: str, value: str, length: int | None = None) -> bytes:
    return _s(key) + struct.pack("<I", 8) + _s(value, length)


def kv_u8_array(key: str, count: int, payload: bytes | None = None) -> bytes:
    return _s(key) + struct.pack("<IIQ", 9, 0, count) + (bytes(count) if payload is None else payload)


def kv_str_array(key: str, items: list[str], count: int | None = None) -> bytes:
    return _s(key) + struct.pack("<IIQ", 9, 8, len(items) if count is None else count) + b"".join(map(_s, items))


def gguf_bytes(kvs: list[bytes], tensors=(), data: bytes = b"", *, kv_count: int | None = None,
               n_dims: int | None = None) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs) if kv_count is None else kv_count) + b"".join(kvs)
    for name, dims, ggml_type, offset in tensors:
        head += _s(name) + struct.pack("<I", len(dims) if n_dims is None else n_dims)
        head += struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", ggml_type, offset)
    return head + bytes(-len(head) % 32) + data


def llama_gguf(*, blocks: int = 1, extra: tuple[bytes, ...] = (), name_length: int | None = None,
               offset: int = 0, **lies: int) -> bytes:
    """A llama GGUF of one layer, hidden size 8 and a 16-token F32 embedding: valid unless told to lie."""
    kvs = [kv_str("general.architecture", "llama"), kv_str("general.name", "tiny", name_length),
           kv_u32("llama.block_count", blocks), kv_u32("llama.context_length", 64),
           kv_u32("llama.embedding_length", 8), kv_u32("llama.attention.head_count", 2), *extra]
    return gguf_bytes(kvs, [("token_embd.weight", (8, 16), 0, offset)], bytes(4 * 8 * 16), **lies)


def run_capped(*args: object, timeout: float = 90) -> subprocess.CompletedProcess:
    """``llmscope ARGS`` in a subprocess under an address-space ceiling and a time limit."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CEILING, CEILING))

    return subprocess.run([sys.executable, "-m", "llmscope", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ), preexec_fn=cap, timeout=timeout)


def capped_error(done: subprocess.CompletedProcess, code: int) -> str:
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert done.returncode == code, (done.returncode, done.stderr[-2000:])
    assert len(errors) == 1 and "Traceback" not in done.stderr and done.stdout == "", done.stderr[-2000:]
    assert "this is a bug" not in errors[0]
    return errors[0]


# --------------------------------------------------------------------------------------------
# The valid file reads; each lie is one line, exit 1


def test_the_hand_written_gguf_is_valid(cli, tmp_path):
    """The writer above makes a file llmscope reads: the refusals below are the lies, not the writer."""
    path = tmp_path / "valid.gguf"
    path.write_bytes(llama_gguf(extra=(kv_str_array("tokenizer.ggml.tokens", [f"t{i}" for i in range(16)]),)))
    result = cli("inspect", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["num_hidden_layers"] == 1 and data["hidden_size"] == 8 and data["vocab_size"] == 16


LIES = {
    # name: (the file's bytes, words the one error line must hold)
    "string length 2**62": (lambda: llama_gguf(name_length=2**62), "a string of 4,611,686,018,427,387,904 bytes"),
    "vocabulary of 2**32-1 strings": (
        lambda: llama_gguf(extra=(kv_str_array("tokenizer.ggml.tokens", ["a"], count=2**32 - 1),)),
        "tokenizer.ggml.tokens: 4,294,967,295 array elements"),
    "vocab_size 2**32-1": (lambda: llama_gguf(extra=(kv_u32("llama.vocab_size", 2**32 - 1),)),
                           "llama.vocab_size is 4,294,967,295, but token_embd.weight holds 16 rows"),
    "tensor offset 2**64-1": (lambda: llama_gguf(offset=2**64 - 1), "tensor token_embd.weight starts at"),
    "tensor past the end": (lambda: llama_gguf(offset=64), "token_embd.weight runs past the end of the file"),
    "array of 2**62 bytes": (lambda: llama_gguf(extra=(kv_u8_array("llama.junk", 2**62, payload=b""),)),
                             "llama.junk: 4,611,686,018,427,387,904 array elements"),
    "2**63 metadata keys": (lambda: llama_gguf(kv_count=2**63), "9,223,372,036,854,775,808 metadata keys"),
    "2**32-1 dimensions": (lambda: llama_gguf(n_dims=2**32 - 1), "declares 4,294,967,295 dimensions"),
    "truncated in the metadata": (lambda: llama_gguf()[:60], "past the end of the file"),
}


@pytest.mark.parametrize("ported", [True, False], ids=["ported", "another-transformers"])
@pytest.mark.parametrize("lie", LIES)
def test_a_header_that_lies_is_one_line(cli, one_error_line, tmp_path, monkeypatch, lie, ported):
    """Refused from the header alone, also where the fast port does not apply (no fallback that walks
    the lie: no numpy overflow warning, no exit 0), and nothing is cached for it."""
    from llmscope.loading import gguf_header

    if not ported:
        monkeypatch.setattr(gguf_header, "PORTED_SOURCES", {})
    make, words = LIES[lie]
    path = tmp_path / "lying.gguf"
    path.write_bytes(make())
    result = cli("inspect", str(path))
    line = one_error_line(result, RUNTIME)
    assert "lying.gguf" in line and words in line, line
    assert "Warning" not in result.stderr and "slow way" not in result.stderr, result.stderr
    cache = Path(os.environ["LLMSCOPE_CACHE"]) / "gguf"
    assert not [p for p in cache.glob("*/*/llmscope-cache.json") if "lying.gguf" in p.read_text()]


def test_the_limits_are_the_files_own_not_a_guess(tmp_path):
    """An array that just fits reads; one element more than the file holds does not. 100,000 layers
    are read (as a config.json's are), 100,001 are refused."""
    from llmscope.loading import gguf_header

    fits, over = tmp_path / "fits.gguf", tmp_path / "over.gguf"
    fits.write_bytes(gguf_bytes([kv_u8_array("llama.junk", 100)]))
    over.write_bytes(gguf_bytes([kv_u8_array("llama.junk", 2**20, payload=bytes(100))]))
    assert gguf_header.read_header(fits).metadata["llama.junk"] == [0] * 100
    with pytest.raises(gguf_header.BadHeader, match="past the end of the file"):
        gguf_header.read_header(over)
    for layers, refused in ((100_000, False), (100_001, True)):
        path = tmp_path / f"{layers}.gguf"
        path.write_bytes(llama_gguf(blocks=layers))
        header = gguf_header.read_header(path)
        if refused:
            with pytest.raises(gguf_header.BadHeader, match="at most 100,000 layers"):
                gguf_header.check_declared(header)
        else:
            gguf_header.check_declared(header)


# --------------------------------------------------------------------------------------------
# Unbounded work: capped subprocesses, so a regression fails instead of eating the machine


@pytest.mark.parametrize("command", ["inspect", "tokenize", "generate"])
def test_millions_of_metadata_elements_are_refused_at_once(command, tmp_path):
    """4,000,000 one-byte elements in a 4 MB file (157 s and 3.1 GB before; 105 s for tokenize, whose
    tokenizer conversion builds a Python object per element): refused from the header."""
    path = tmp_path / "wide.gguf"
    path.write_bytes(llama_gguf(extra=(kv_u8_array("llama.junk", 4_000_000),)))
    args = ["inspect", path] if command == "inspect" else [command, "hi", "-m", path]
    line = capped_error(run_capped(*args, timeout=60), RUNTIME)
    assert "wide.gguf" in line and "more than 2,097,152 elements" in line, line


def test_a_million_empty_strings_read_in_seconds(tmp_path):
    """8 MB of empty strings in one array (53 s and 1.8 GB before) is a valid file: read, lengths only."""
    path = tmp_path / "empty-strings.gguf"
    path.write_bytes(llama_gguf(extra=(kv_str_array("llama.junk", [""] * 1_000_000),)))
    done = run_capped("inspect", path, "--json", timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["num_hidden_layers"] == 1


def test_a_gguf_of_2_32_layers_is_refused(tmp_path):
    """block_count 2**32-1 in an 800-byte GGUF (5 GB within 100 s before)."""
    path = tmp_path / "deep.gguf"
    path.write_bytes(llama_gguf(blocks=2**32 - 1))
    line = capped_error(run_capped("inspect", path, timeout=60), RUNTIME)
    assert "llama.block_count is 4,294,967,295" in line and "at most 100,000 layers" in line, line


@pytest.mark.parametrize("command", ["inspect", "memory", "generate"])
@pytest.mark.parametrize("family", ["gpt2", "qwen2"])
def test_a_config_json_of_2_32_layers_is_refused(command, family, tmp_path):
    """n_layer (GPT-2) / num_hidden_layers (Qwen2, whose config class builds a per-layer list in its
    constructor) of 2**32-1: refused from the raw config, before the config class or a layer count."""
    folder = tmp_path / family
    folder.mkdir()
    if family == "gpt2":
        shutil.copy(Path(__file__).parent / "data" / "configs" / "gpt2.json", folder / "config.json")
        key = "n_layer"
    else:
        (folder / "config.json").write_text(json.dumps({
            "model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": 100}))
        key = "num_hidden_layers"
    config = json.loads((folder / "config.json").read_text())
    config[key] = 2**32 - 1
    (folder / "config.json").write_text(json.dumps(config))
    args = [command, folder] if command != "generate" else [command, "hi", "-m", folder]
    line = capped_error(run_capped(*args, timeout=60), RUNTIME)
    assert f"config.json says {key} 4,294,967,295" in line and "at most 100,000 layers" in line, line
