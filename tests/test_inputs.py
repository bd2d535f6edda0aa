"""llmscope.text.inputs: TEXT / - / --file read as a bounded stream, strict UTF-8, regular files only."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmscope.text import inputs
from llmscope.errors import UsageError

ROOT = Path(__file__).parent.parent


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_text_stdin_and_file(monkeypatch, tmp_path):
    assert inputs.read_text("héllo", None) == "héllo"
    _stdin(monkeypatch, "naïve\tcafé 東京\n".encode())
    assert inputs.read_text("-", None) == "naïve\tcafé 東京\n"
    path = tmp_path / "in.txt"
    path.write_bytes("a\r\nb 😀".encode())
    assert inputs.read_text(None, path) == "a\r\nb 😀"  # bytes as they are: no newline translation
    assert inputs.read_text(None, str(path)) == "a\r\nb 😀"


def test_text_and_file_together_or_neither(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("x")
    with pytest.raises(UsageError, match="not both"):
        inputs.read_text("x", path)
    with pytest.raises(UsageError, match="no text to score"):
        inputs.read_text(None, None, missing="no text to score")


def test_the_limit_applies_to_stdin_and_files(monkeypatch, tmp_path):
    monkeypatch.setenv(inputs.LIMIT_ENV, "1000")
    assert inputs.max_input_bytes() == 1000
    _stdin(monkeypatch, b"a" * 1000)
    assert inputs.read_text("-", None) == "a" * 1000  # exactly the limit is fine
    _stdin(monkeypatch, b"a" * 1001)
    with pytest.raises(UsageError, match=r"standard input is larger than 1,000 B.*LLMSCOPE_MAX_INPUT_BYTES"):
        inputs.read_text("-", None)
    path = tmp_path / "big.txt"
    path.write_bytes(b"b" * 1001)
    with pytest.raises(UsageError, match="larger than"):
        inputs.read_text(None, path)


def test_the_limit_reads_no_further_than_it(monkeypatch):
    class Endless(io.RawIOBase):
        read_bytes = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            buffer[:] = b"z" * len(buffer)
            Endless.read_bytes += len(buffer)
            return len(buffer)

    with pytest.raises(UsageError):
        inputs.read_bounded(Endless(), "standard input", 3 * 2**20)
    assert Endless.read_bytes <= 3 * 2**20 + 1


def test_text_streams_are_bounded_too(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("é" * 50))  # a notebook's stdin: no .buffer
    assert inputs.read_stdin(limit=50) == "é" * 50
    monkeypatch.setattr(sys, "stdin", io.StringIO("é" * 51))
    with pytest.raises(UsageError, match="larger than"):
        inputs.read_stdin(limit=50)


def test_limit_from_the_environment(monkeypatch):
    monkeypatch.delenv(inputs.LIMIT_ENV, raising=False)
    assert inputs.max_input_bytes() == 64 * 2**20
    monkeypatch.setenv(inputs.LIMIT_ENV, "1GiB")
    assert inputs.max_input_bytes() == 2**30
    for bad in ("lots", "0", "-5"):
        monkeypatch.setenv(inputs.LIMIT_ENV, bad)
        with pytest.raises(UsageError, match="LLMSCOPE_MAX_INPUT_BYTES"):
            inputs.max_input_bytes()


def test_invalid_utf8_names_where(monkeypatch, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("first line\ncaf".encode() + b"\xe9 au lait")
    with pytest.raises(UsageError) as caught:
        inputs.read_text(None, path)
    message = str(caught.value)
    assert f"file={path} is not valid UTF-8: byte 0xe9 at offset 14 (line 2, byte 4 of that line)" in message
    assert "iconv" in message
    _stdin(monkeypatch, b"ok\xff")
    with pytest.raises(UsageError, match="standard input is not valid UTF-8: byte 0xff at offset 2"):
        inputs.read_text("-", None)


def test_special_files_are_refused(tmp_path):
    with pytest.raises(UsageError, match=r"not a regular file \(a device\).*- < /dev/zero"):
        inputs.read_file("/dev/zero")
    with pytest.raises(UsageError, match=r"not a regular file \(a folder\)"):
        inputs.read_file(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match=r"not a regular file \(a named pipe, FIFO\)"):
        inputs.read_file(fifo)  # refused without opening it (opening a FIFO would block)
    link = tmp_path / "zero-link"
    link.symlink_to("/dev/zero")
    with pytest.raises(UsageError, match=r"not a regular file \(a device\)"):
        inputs.read_file(link)
    with pytest.raises(UsageError, match="no such file"):
        inputs.read_file(tmp_path / "missing.txt")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(UsageError, match="cannot read it"):
        inputs.read_file(loop)


def test_stdin_from_dev_zero_stops_at_the_limit_fast():
    """``- < /dev/zero`` through a real process: stops at the limit (here 1 MiB) at once, in bounded memory."""
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from llmscope.text import inputs\n"
        "try:\n    inputs.read_text('-', None)\nexcept inputs.UsageError as exc:\n    print(exc); sys.exit(2)\n"
    )
    env = {**os.environ, inputs.LIMIT_ENV: "1MiB"}
    start = time.perf_counter()
    with open("/dev/zero", "rb") as zero:
        done = subprocess.run([sys.executable, "-c", code], stdin=zero, capture_output=True, text=True,
                              timeout=60, env=env, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert "standard input is larger than 1.00 MiB" in done.stdout
    assert time.perf_counter() - start < 30
