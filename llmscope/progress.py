"""Progress and notices from the core, through a reporter that does nothing until the CLI installs one.

The core never prints: a long loop asks ``reporter().progress(...)`` for a bar, a one-line remark goes
to ``reporter().notice(...)``. In a notebook nothing is shown unless a reporter is set; the CLI
installs a Rich one on stderr (``llmscope.render.progress.RichReporter``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class Progress:
    """A bar handed out by ``Reporter.progress``: the core only advances it."""

    def advance(self, n: int = 1) -> None:  # noqa: D102 - nothing to do by default
        return None


class Reporter:
    """The silent reporter: every call is accepted and nothing is shown."""

    def notice(self, text: str) -> None:
        """One line of talk for the person running the command (not data)."""
        return None

    @contextlib.contextmanager
    def status(self, text: str) -> Iterator[None]:
        """A spinner around slow work whose length is unknown (loading a model)."""
        yield

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None = None, *, unit: str = "items") -> Iterator[Progress]:
        """A bar over ``total`` steps (``unit`` may be "bytes" to show sizes)."""
        yield Progress()


_current: Reporter = Reporter()


def reporter() -> Reporter:
    """The reporter in force."""
    return _current


def set_reporter(new: Reporter | None) -> Reporter:
    """Install ``new`` (None: the silent one) and return the one it replaces."""
    global _current
    old, _current = _current, new if new is not None else Reporter()
    return old
