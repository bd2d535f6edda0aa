"""Errors a user can cause, and the exit codes they end in.

Every error a person can trigger is an ``LlmscopeError``: it carries one line of message and a
``hint`` naming the next step. ``cli.main`` is the only place that turns one into stderr text and
an exit code. The classes also subclass the stdlib type they are closest to, so Python API users
can catch ``FileNotFoundError`` or ``ValueError`` as usual.
"""

from __future__ import annotations

import enum


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
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


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
