"""Start-up: `llmscope --help`, every `llmscope COMMAND --help` and a TAB completion, against a
bare two-command Typer app's `--help`.

    python benchmarks/bench_startup.py

Prints the median wall time of each (fresh processes) and the ratio to the bare app's --help
(target: about 1.5x at most).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

BARE = textwrap.dedent('''
    import typer
    app = typer.Typer()
    @app.command()
    def one(name: str = "x"):
        """One."""
    @app.command()
    def two(count: int = 1):
        """Two."""
    app()
''')


def timed(args: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=env)
    return time.perf_counter() - start


def main(rounds: int = 21) -> None:
    from llmscope.cli import app

    llmscope = [sys.executable, "-m", "llmscope"]
    complete = {"_LLMSCOPE_COMPLETE": "complete_bash", "COMP_WORDS": "llmscope generate --", "COMP_CWORD": "2"}
    with tempfile.TemporaryDirectory() as folder:
        bare = Path(folder) / "bare.py"
        bare.write_text(BARE)
        cases = [
            ("bare two-command Typer app --help", [sys.executable, str(bare), "--help"], None),
            ("bare Typer app: one --help", [sys.executable, str(bare), "one", "--help"], None),
            ("llmscope --help", [*llmscope, "--help"], None),
            *[(f"llmscope {c.name} --help", [*llmscope, c.name, "--help"], None) for c in app.registered_commands],
            ("TAB: llmscope generate --", llmscope, {**os.environ, **complete}),
        ]
        # Round-robin, so that a slow spell of the machine hits every case alike.
        times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        for _ in range(rounds):
            for name, args, env in cases:
                times[name].append(timed(args, env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians[cases[0][0]]
    for name, seconds in medians.items():
        print(f"{name:40s} {seconds * 1000:7.0f} ms  {seconds / base:4.2f}x")
    worst = max(list(medians.items())[2:], key=lambda item: item[1])
    print(f"slowest llmscope: {worst[0]} at {worst[1] / base:.2f}x the bare app's --help ({rounds} rounds, medians)")


if __name__ == "__main__":
    main()
