"""The one reader for text a command is given: TEXT, ``-`` (standard input) or ``--file PATH``, bounded.

Standard input and files are read as a stream, never more than the limit (64 MiB by default;
``LLMSCOPE_MAX_INPUT_BYTES`` raises it, e.g. ``LLMSCOPE_MAX_INPUT_BYTES=1GiB``): past it, one line and
exit 2, so ``- < /dev/zero`` stops at once instead of eating the machine. Bytes are strict UTF-8, and
an error says where the first bad byte is. ``--file`` takes regular files only: a device, a FIFO or a
folder is refused (read it as ``-`` if that is really meant, where the limit applies).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import IO, Any

from llmscope.errors import UsageError, literal

DEFAULT_MAX_INPUT_BYTES = 64 * 2**20
LIMIT_ENV = "LLMSCOPE_MAX_INPUT_BYTES"
_CHUNK = 2**20  # read 1 MiB at a time


def max_input_bytes() -> int:
    """The input limit in bytes: ``LLMSCOPE_MAX_INPUT_BYTES`` (a size such as 256MiB), else 64 MiB."""
    value = os.environ.get(LIMIT_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_INPUT_BYTES
    if value.isdigit() and int(value) > 0:  # a plain number of bytes
        return int(value)
    from llmscope.units import parse_size

    try:
        return parse_size(value)
    except UsageError as exc:
        raise UsageError(f"{LIMIT_ENV}={value!r}: {exc.template}", hint=exc.hint_template) from None


def _flag(option: str) -> str:
    """``option`` (a function's parameter name, ``file``) as a message names it: ```file```, which the
    CLI writes as its own flag (``--file``)."""
    return f"`{option}`"


def _named(option: str, path: str | os.PathLike[str]) -> str:
    """``option`` given PATH, as a message names it: ```file=notes.txt``` (the CLI: ``--file notes.txt``)."""
    return f"`{option}={literal(str(os.fspath(path)))}`"


def _too_large(where: str, limit: int) -> UsageError:
    from llmscope.units import fmt_bytes

    return UsageError(
        f"{where} is larger than {fmt_bytes(limit)}, the limit on input",
        hint=f"raise it with {LIMIT_ENV}=1GiB, or give a shorter text",
    )


def read_bounded(stream: IO[Any], where: str, limit: int) -> bytes | str:
    """Everything ``stream`` holds, read in chunks; more than ``limit`` bytes (characters, for a text
    stream) is a UsageError, raised as soon as the limit is passed."""
    parts: list[Any] = []
    size = 0
    while True:
        chunk = stream.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _too_large(where, limit)
    if parts and isinstance(parts[0], str):
        return "".join(parts)
    return b"".join(parts)


def decode_utf8(data: bytes, where: str) -> str:
    """Strict UTF-8; the error names the first bad byte, its offset, line and column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise UsageError(
            f"{where} is not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start:,} "
            f"(line {line}, byte {column} of that line)",
            hint="convert it first, e.g. iconv -f latin1 -t utf-8",
        ) from None


def read_stdin(limit: int | None = None) -> str:
    """Standard input as text, bounded by ``limit`` (default: ``max_input_bytes()``)."""
    limit = max_input_bytes() if limit is None else limit
    if sys.stdin is None:
        return ""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a text stream (notebooks, tests): already decoded
        return str(read_bounded(sys.stdin, "standard input", limit))
    data = read_bounded(stream, "standard input", limit)
    return decode_utf8(data if isinstance(data, bytes) else data.encode(), "standard input")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe, FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def check_regular_file(path: str | os.PathLike[str], where: str, limit: int) -> Path:
    """PATH as a Path, refused unless it is an existing regular file of at most ``limit`` bytes."""
    target = Path(path).expanduser()
    try:
        info = target.stat()  # follows symlinks: a link to /dev/zero is a device
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except OSError as exc:  # a symlink loop, a name too long, no permission on a folder on the way
        raise UsageError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(
            f"{where}: not a regular file ({_kind(info.st_mode)})",
            hint=None if stat.S_ISDIR(info.st_mode) else f"to read it anyway, give - and redirect: - < {path}",
        )
    if info.st_size > limit:  # known before reading a byte (a /proc file says 0 and is read bounded)
        raise _too_large(where, limit)
    return target


def read_file(path: str | os.PathLike[str], limit: int | None = None, *, option: str = "file",
              where: str | None = None) -> str:
    """A regular UTF-8 file as text, bounded by ``limit`` (default: ``max_input_bytes()``).

    An error names it as the parameter ``option`` given PATH (``file=notes.txt``), or as ``where``."""
    limit = max_input_bytes() if limit is None else limit
    where = _named(option, path) if where is None else where
    target = check_regular_file(path, where, limit)
    try:
        with open(target, "rb") as handle:
            data = read_bounded(handle, where, limit)
    except OSError as exc:
        raise UsageError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    return decode_utf8(data if isinstance(data, bytes) else data.encode(), where)


def read_text(text: str | None, file: str | os.PathLike[str] | None, *, missing: str = "no text given",
              limit: int | None = None) -> str:
    """TEXT as given, ``-`` for standard input, or ``--file PATH``: exactly one of them.

    ``missing`` is the message when neither is given. Nothing here checks that the text is not
    empty: commands differ in what an empty text means.
    """
    if file is not None:
        if text is not None:
            raise UsageError("give `text` or `file`, not both")
        return read_file(file, limit)
    if text is None:
        raise UsageError(missing, hint="give `text`, - for standard input, or `file=PATH`")
    if text == "-":
        return read_stdin(limit)
    return text


def iter_lines(path: str | os.PathLike[str] | None, *, where: str,
               limit: int | None = None) -> Iterator[tuple[str, int]]:
    """(line without its line break, bytes it took) for each line of a regular file, or of standard
    input when ``path`` is None: a stream, bounded by ``limit`` bytes in all (default
    ``max_input_bytes()``), strict UTF-8. A line with no end (``/dev/zero``) stops at the limit too."""
    limit = max_input_bytes() if limit is None else limit
    if path is not None:
        target = check_regular_file(path, where, limit)
        try:
            handle: IO[Any] = open(target, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    else:
        handle = getattr(sys.stdin, "buffer", None) or sys.stdin
    size = 0
    number = 0
    try:
        while True:
            line = handle.readline(limit + 1 - size)
            if not line:
                return
            size += len(line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass"))
            if size > limit:
                raise _too_large(where, limit)
            number += 1
            if isinstance(line, bytes):
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise UsageError(
                        f"{where} is not valid UTF-8: byte 0x{line[exc.start]:02x} on line {number:,} "
                        f"(byte {exc.start + 1} of that line)",
                        hint="convert it first, e.g. iconv -f latin1 -t utf-8",
                    ) from None
            else:
                text = line
            yield text.rstrip("\r\n"), len(line)
    finally:
        if path is not None:
            handle.close()


# --------------------------------------------------------------------------------------------
# Outputs, checked before any work


def check_writable_file(path: str | os.PathLike[str], *, option: str) -> None:
    """Refuse, as a usage error, an output path this process cannot write: a folder, a special
    file, a read-only file, or a name whose folder is missing or refuses new files (``/proc``).

    It is tried, not guessed from permission bits (root passes every ``os.access``): an existing
    file is opened for writing without truncating it; a new one is created and removed again.
    ``option`` is the parameter that names the file (``export``).
    """
    where = _named(option, path)
    target = Path(path).expanduser()
    try:
        info = target.stat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise UsageError(f"{where}: cannot use it ({exc.strerror or exc})") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{where} is a folder", hint=f"give a file name inside it, e.g. {Path(path) / 'out.svg'}")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{where}: not a regular file ({_kind(info.st_mode)})", hint="give a file name")
    if info is None and not target.parent.is_dir():
        raise UsageError(f"{where}: the folder {target.parent} does not exist")
    try:
        if info is not None:
            os.close(os.open(target, os.O_WRONLY))
        else:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            os.unlink(target)
    except OSError as exc:
        raise UsageError(f"{where}: cannot write it ({exc.strerror or exc})",
                         hint="choose a file in a folder you can write to") from None


def check_not_input(output: str | os.PathLike[str] | None, inputs: Iterable[str | os.PathLike[str] | None], *,
                    option: str = "export") -> None:
    """Refuse an output that is one of the command's input files: saving would overwrite what was read.
    ``option`` is the parameter that names the output."""
    if output is None:
        return
    out = Path(output).expanduser()
    for item in inputs:
        if item is None or str(item) == "-":
            continue
        source = Path(item).expanduser()
        try:
            same = os.path.samefile(out, source)
        except OSError:
            same = out.resolve() == source.resolve()
        if same:
            raise UsageError(f"{_named(option, output)} is the input file of this command: saving would "
                             f"overwrite it", hint=f"give {_flag(option)} another file name")


def check_not_model_file(output: str | os.PathLike[str] | None, model: str | os.PathLike[str] | None,
                         gguf_file: str | None = None, *, option: str = "export") -> None:
    """Refuse an output that is a file the model is read from: MODEL itself (a .gguf file), the
    ``gguf_file`` inside the MODEL folder, or any file already inside the MODEL folder (loading reads
    its config, tokenizer and weight files, and the tokenizer cache hashes every file there). A new
    file in the folder, or any file for a hub id (whose files live in the Hub's cache), is fine."""
    if output is None or model is None or str(model).strip() == "":
        return
    out = Path(output).expanduser()
    place = Path(model).expanduser()
    if not out.exists() or not place.exists():
        return
    model_files = [place] if place.is_file() else ([place / gguf_file] if gguf_file else [])
    for source in model_files:
        with contextlib.suppress(OSError):
            if os.path.samefile(out, source):
                raise UsageError(f"{_named(option, output)} is the model file this command reads: saving "
                                 "would overwrite it", hint=f"give {_flag(option)} another file name")
    if place.is_dir() and place.resolve() in out.resolve().parents:
        raise UsageError(f"{_named(option, output)} is a file in the model folder {literal(str(place))}: "
                         "saving would overwrite what the model is read from",
                         hint=f"give {_flag(option)} a file outside the model folder")
