"""A chat template rendered under a time and memory budget, in a forked child that can be stopped.

jinja's sandbox bounds ``range`` only: ``lipsum(10**9)``, ``(10 + n) ** (10**9 + n)``, a string repeated
to gigabytes, two nested ``range(99999)`` or a 100 MB ``raise_exception`` message run for minutes or take
gigabytes, in transformers' own renderer too. So the render runs in a forked copy of this process under
an address-space limit (what it has now plus the budget), and the parent stops it at the deadline; its
answer (the text, or the error it raised, cut short) comes back through a pipe. Where ``fork`` is not the
way to start a process (off Linux), the template renders in-process, unbounded, as before.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Callable

from llmscope.errors import UsageError

SECONDS_ENV = "LLMSCOPE_MAX_TEMPLATE_SECONDS"
BYTES_ENV = "LLMSCOPE_MAX_TEMPLATE_BYTES"
DEFAULT_SECONDS = 10.0
DEFAULT_BYTES = 512 * 2**20  # a real template's render takes a few MB
MESSAGE_CHARS = 200  # an error raised inside a template is cut to this many characters


class TemplateOverBudget(Exception):
    """The render ran past its time or memory budget (``what`` says which, in words)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class TemplateRaised(Exception):
    """The template raised: its exception's type name and message (cut to MESSAGE_CHARS)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def budget() -> tuple[float, int]:
    """(seconds, bytes) one render may take: LLMSCOPE_MAX_TEMPLATE_SECONDS (a number) and
    LLMSCOPE_MAX_TEMPLATE_BYTES (a size such as 512MiB), else 10 s and 512 MiB."""
    from llmscope.units import parse_size

    seconds_text = os.environ.get(SECONDS_ENV, "").strip()
    try:
        seconds = float(seconds_text) if seconds_text else DEFAULT_SECONDS
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise UsageError(f"{SECONDS_ENV}={seconds_text!r}: must be a number of seconds above 0")
    bytes_text = os.environ.get(BYTES_ENV, "").strip()
    try:
        size = (int(bytes_text) if bytes_text.isdigit() else parse_size(bytes_text)) if bytes_text else DEFAULT_BYTES
    except UsageError as exc:
        raise UsageError(f"{BYTES_ENV}={bytes_text!r}: {exc.template}", hint=exc.hint_template) from None
    if size <= 0:
        raise UsageError(f"{BYTES_ENV}={bytes_text!r}: must be more than 0")
    return seconds, size


def render_bounded(render: Callable[[], str], *, max_chars: int) -> str:
    """``render()`` under the budget; raises TemplateOverBudget (time, memory, or an answer longer than
    MAX_CHARS) or TemplateRaised (what the template raised)."""
    seconds, size = budget()
    if not sys.platform.startswith("linux"):
        return _unwrap(_attempt(render, max_chars))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: render, answer, leave without running the parent's exit handlers
        try:
            os.close(read_end)
            _limit_address_space(size)
            data = pickle.dumps(_attempt(render, max_chars))
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        data = _read_until(read_end, time.monotonic() + seconds)
    finally:
        os.close(read_end)
        _stop(pid)
    if data is None:
        raise TemplateOverBudget(f"ran past {seconds:g} s ({SECONDS_ENV})")
    try:
        answer = pickle.loads(data)
    except Exception:  # noqa: BLE001 - nothing (or half an answer): the child was killed, by the memory limit
        raise TemplateOverBudget(f"stopped without an answer, past {_size(size)} of memory ({BYTES_ENV})") from None
    if answer[0] == "memory":
        answer = ("memory", f"took more than {_size(size)} of memory ({BYTES_ENV})")
    return _unwrap(answer)


def _attempt(render: Callable[[], str], max_chars: int) -> tuple[str, ...]:
    """The render's outcome as plain strings: ("ok", text), ("raised", kind, message), ("memory", ""),
    ("long", what)."""
    try:
        text = render()
    except MemoryError:
        return ("memory", "")
    except RecursionError:
        return ("long", "recursed too deep")
    except Exception as exc:  # noqa: BLE001 - the template's error, carried back as text
        try:
            message = str(exc)
        except Exception:  # noqa: BLE001
            message = ""
        return ("raised", type(exc).__name__, _cut(message.strip().splitlines()[0] if message.strip() else ""))
    if len(text) > max_chars:
        return ("long", f"wrote {len(text):,} characters, more than {max_chars:,}")
    return ("ok", text)


def _unwrap(answer: tuple[str, ...]) -> str:
    if answer[0] == "ok":
        return answer[1]
    if answer[0] == "raised":
        raise TemplateRaised(answer[1], answer[2])
    if answer[0] == "memory":
        raise TemplateOverBudget(answer[1] or "ran out of memory")
    raise TemplateOverBudget(answer[1])


def _cut(message: str) -> str:
    return message if len(message) <= MESSAGE_CHARS else message[: MESSAGE_CHARS - 1] + "…"


def _size(size: int) -> str:
    from llmscope.units import fmt_bytes

    return fmt_bytes(size)


def _limit_address_space(size: int) -> None:
    """What this process has mapped now, plus SIZE: beyond it, allocations fail (MemoryError)."""
    import resource

    try:
        with open("/proc/self/status") as handle:
            used = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError):
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = used + size
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft == resource.RLIM_INFINITY or limit < soft:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _read_until(fd: int, deadline: float) -> bytes | None:
    """Everything the child writes, up to its end of file; None when the deadline comes first."""
    import select

    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _stop(pid: int) -> None:
    """End the child (done, or past its deadline) and reap it."""
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass

