"""Errors a user can cause, and the exit codes they end in.

Every error a person can trigger is an ``LlmscopeError``: it carries one line of message and a
``hint`` naming the next step. ``cli.main`` is the only place that turns one into stderr text and
an exit code. The classes also subclass the stdlib type they are closest to, so Python API users
can catch ``FileNotFoundError`` or ``ValueError`` as usual.

A message speaks the API's language: it names a function's parameter, written in backticks where it is
raised (```top=0`: must be at least 1``, ```system` needs `chat=True```). ``str(error)`` drops the
backticks (``top=0: must be at least 1``); ``error.render(name_of)`` lets the CLI put its own flag in
their place (``--top 0: must be at least 1``, ``--system needs --chat``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable

# A parameter named in a message: `name` or `name=value`; a doubled backtick is a backtick of the text
# itself (``literal()`` writes any quoted text that way).
PARAMETER = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)(?:=([^`]*))?`")
_ESCAPED = "``"
_HELD = "\x00"


def literal(text: str) -> str:
    """TEXT (a path, a prompt, another library's message) to put in a message as it is: its backticks
    are not read as parameter names."""
    return str(text).replace("`", _ESCAPED)


class ExitCode(enum.IntEnum):
    """Process exit codes, documented in README."""

    OK = 0
    ERROR = 1  # a runtime error: the model, the file or the machine said no
    USAGE = 2  # a bad option or argument: nothing was loaded
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class LlmscopeError(Exception):
    """An error a user can cause: one line of message, plus an optional hint."""

    exit_code: int = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.template = message  # as raised: parameters in backticks
        self.hint_template = hint

    @property
    def message(self) -> str:
        """The message in the API's words: each parameter as ``name`` or ``name=value``."""
        return api_words(self.template)

    @property
    def hint(self) -> str | None:
        return api_words(self.hint_template) if self.hint_template is not None else None

    def render(self, name_of: Callable[[str, str | None], str | None]) -> str:
        """The whole line with each parameter as ``name_of(name, value)`` says (None: the API's words)."""

        def word(match: re.Match[str]) -> str:
            written = name_of(match.group(1), match.group(2))
            return written if written is not None else _api_word(match)

        message = _substitute(word, self.template)
        if self.hint_template is None:
            return message
        return f"{message} ({_substitute(word, self.hint_template)})"

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def _api_word(match: re.Match[str]) -> str:
    name, value = match.group(1), match.group(2)
    return name if value is None else f"{name}={value}"


def _substitute(word: Callable[[re.Match[str]], str], text: str) -> str:
    held = text.replace(_ESCAPED, _HELD)
    return PARAMETER.sub(lambda m: word(m).replace(_HELD, "`"), held).replace(_HELD, "`")


def api_words(text: str) -> str:
    """TEXT with every `name` / `name=value` parameter written plainly (the API's words)."""
    return _substitute(_api_word, text)


class UsageError(LlmscopeError, ValueError):
    """A value the user gave is out of range or conflicts with another one."""

    exit_code = ExitCode.USAGE


class ModelNotFoundError(LlmscopeError, FileNotFoundError):
    """The model named does not exist: no such path, no such hub repository."""


class ModelFormatError(LlmscopeError, ValueError):
    """The model files exist but cannot be read: corrupt, truncated, or unsupported."""


class RemoteCodeError(LlmscopeError, PermissionError):
    """The model needs code from its repository and --trust-remote-code was not given."""


class DeviceError(LlmscopeError, RuntimeError):
    """The device or dtype asked for is not available on this machine."""


class MissingDependencyError(LlmscopeError, ImportError):
    """An optional package (the demo model, gguf, ...) is not installed."""


class ResourceError(LlmscopeError, MemoryError):
    """The work would not fit into the memory or disk available."""
