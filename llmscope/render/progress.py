"""The reporter the CLI installs: the core's notices, spinners and progress bars, drawn by Rich on stderr.

Rich and the consoles are imported when something is first reported, not when this module is: the
CLI installs a ``RichReporter`` on every run, ``--help`` and completion included.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from llmscope.progress import Progress, Reporter


def _animate(console: Any) -> bool:
    """Spinners and bars only on a terminal (a pipe or a log file gets plain lines, or nothing)."""
    return bool(console.is_terminal) and not os.environ.get("LLMSCOPE_NO_PROGRESS")


class _RichBar(Progress):
    """What ``RichReporter.progress`` hands the core: advancing moves one Rich task."""

    def __init__(self, progress: Any, task: Any) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        self._progress.update(self._task, advance=n)


class RichReporter(Reporter):
    """Notices as dim lines, status as a spinner, progress as a transient bar: all on ``render.stderr``."""

    def notice(self, text: str) -> None:
        from rich.text import Text

        from llmscope import render

        render.stderr.print(Text(text, style="dim"), soft_wrap=True)

    @contextlib.contextmanager
    def status(self, text: str) -> Iterator[None]:
        from rich.text import Text

        from llmscope import render

        if _animate(render.stderr):
            with render.stderr.status(text):
                yield
        else:
            render.stderr.print(Text(text, style="dim"), soft_wrap=True)
            yield

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None = None, *, unit: str = "items") -> Iterator[Progress]:
        from rich import progress as rp

        from llmscope import render

        amount = rp.DownloadColumn() if unit == "bytes" else rp.MofNCompleteColumn()
        columns = (rp.TextColumn("{task.description}"), rp.BarColumn(), amount, rp.TimeRemainingColumn())
        bars = rp.Progress(*columns, console=render.stderr, disable=not _animate(render.stderr), transient=True)
        with bars:
            yield _RichBar(bars, bars.add_task(description, total=total))
