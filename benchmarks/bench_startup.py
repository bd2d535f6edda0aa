"""Start-up: `llmscope --help` and `llmscope COMMAND --help` against a bare two-command Typer app.

    python benchmarks/bench_startup.py

Prints the median wall time of each (fresh processes) and the ratio to the bare app's --help
(target: about 1.5x at most).
"""

from __future__ import annotations

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


def median_time(args: list[str], runs: int = 15) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        bare = Path(folder) / "bare.py"
        bare.write_text(BARE)
        base = median_time([sys.executable, str(bare), "--help"])
        base_command = median_time([sys.executable, str(bare), "one", "--help"])
    rows = [("bare two-command Typer app --help", base), ("bare Typer app: one --help", base_command)]
    rows.append(("llmscope --help", median_time([sys.executable, "-m", "llmscope", "--help"])))
    rows.append(("llmscope inspect --help", median_time([sys.executable, "-m", "llmscope", "inspect", "--help"])))
    for name, seconds in rows:
        print(f"{name:40s} {seconds * 1000:7.0f} ms  {seconds / base:4.2f}x")


if __name__ == "__main__":
    main()
