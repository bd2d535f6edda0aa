"""The docs that are checked: docs/cli.md from every command's --help, and the transcripts re-run.

    python -m llmscope._docs                 write docs/cli.md from the app's own --help texts
    python -m llmscope._docs --check         exit 1, with one line, when docs/cli.md is stale
    python -m llmscope._docs --transcripts   re-run every transcript in README.md and docs/, in place
    python -m llmscope._docs --transcripts docs/commands/why.md   ... of those pages only

A transcript is a fenced ```text block whose first line starts with ``$ ``: each ``$ `` line is a
command, run by bash in the repository root (``llmscope`` is this Python's ``-m llmscope``), and the
lines up to the next one are what it printed: its stdout, then its stderr when it failed. The
commands run in one fixed environment (:data:`ENVIRONMENT`: 100 columns, no colour, no progress, no
GPU, so the embedded model runs in float32 on the CPU), and outputs are compared through
:func:`normalise`, which ignores timings only. Other blocks (```console for trimmed or illustrative
output, ```bash for commands to copy) are never run.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI_DOC = ROOT / "docs" / "cli.md"
WIDTH = 100

# What every transcript runs under. CUDA_VISIBLE_DEVICES hides any GPU, so `--device auto` is the CPU
# and `--dtype auto` float32 there: the output is the same on every machine.
ENVIRONMENT = {
    "COLUMNS": str(WIDTH),
    "NO_COLOR": "1",
    "TERM": "dumb",
    "LLMSCOPE_NO_PROGRESS": "1",
    "CUDA_VISIBLE_DEVICES": "",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "PYTHONHASHSEED": "0",
}
# Variables that would change what Rich draws, removed from the environment.
UNSET = ("FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "TERMINAL_WIDTH", "TTY_COMPATIBLE", "LLMSCOPE_DEBUG")

# Timings are the only part of an output allowed to change. A duration (a number and `s` or `ms`)
# becomes `<time>`, the number before `tokens/s` or `x faster` becomes `#`, and the KV cache's verdict
# on two wall times (`1.7x faster with the cache`, or slower on a busy machine) becomes `<verdict>`. A timing's width moves
# table columns and line breaks, so an output holding one is compared word by word (whitespace and
# runs of the rule character `─` collapsed); an output without one is compared line by line, exactly
# but for trailing space.
DURATION = re.compile(r"\b\d[\d,]*(?:\.\d+)?\s?m?s\b")
RATE = re.compile(r"\b\d[\d,]*(?:\.\d+)?(?=\s?tokens/s\b|x faster\b)")
# generate --no-kv-cache's verdict on the wall times: faster, or slower as timing noise on a busy machine.
VERDICT = re.compile(r"\b\d[\d,]*(?:\.\d+)?x (?:faster with the cache|slower with the cache \(timing\s+noise:"
                     r"\s+the\s+machine\s+is\s+busy\))")


def normalise(text: str) -> str:
    """What two outputs must share to match: everything but their timings (see DURATION and RATE)."""
    if DURATION.search(text) or RATE.search(text) or VERDICT.search(text):
        text = RATE.sub("#", DURATION.sub("<time>", VERDICT.sub("<verdict>", text)))
        return " ".join(re.sub(r"─+", "─", text).split())
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


# --------------------------------------------------------------------------------------------
# docs/cli.md: every --help


def _plain_panel(renderable: object, *, title: str | None = None, **_: object) -> object:
    """Typer's help panels without their box: the title on a line of its own, the table below it."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    return Group(Text(f"{title}:"), Padding(renderable, (0, 0, 1, 1)))  # type: ignore[arg-type]


@contextlib.contextmanager
def _plain_rich_help():
    """Typer's Rich help at WIDTH columns, without colour or boxes (its module settings, restored after)."""
    from typer import rich_utils

    saved = {name: getattr(rich_utils, name) for name in ("MAX_WIDTH", "FORCE_TERMINAL", "COLOR_SYSTEM", "Panel")}
    rich_utils.MAX_WIDTH, rich_utils.FORCE_TERMINAL, rich_utils.COLOR_SYSTEM = WIDTH, False, None
    rich_utils.Panel = _plain_panel
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(rich_utils, name, value)


def _root() -> tuple[object, object]:
    """The app as Click sees it, and the context `llmscope` runs it in."""
    import typer.main

    from llmscope.cli import app

    group = typer.main.get_command(app)
    return group, group.context_class(group, info_name="llmscope", **group.context_settings)


def command_names() -> list[str]:
    """The app's commands, in its own order (the order of `llmscope --help`)."""
    group, root = _root()
    return list(group.list_commands(root))  # type: ignore[attr-defined]


def help_texts() -> dict[str, str]:
    """`llmscope --help` and every `llmscope COMMAND --help`, keyed by command path, in the app's order."""
    group, root = _root()
    contexts = {"llmscope": (group, root)}
    for name in group.list_commands(root):  # type: ignore[attr-defined]
        command = group.get_command(root, name)  # type: ignore[attr-defined]
        contexts[f"llmscope {name}"] = (command, command.context_class(command, info_name=name, parent=root))
    texts = {}
    with _plain_rich_help():
        for path, (command, ctx) in contexts.items():
            out = io.StringIO()
            with contextlib.redirect_stdout(out):  # Typer's Rich help prints; Click's returns the text
                rest = command.get_help(ctx)  # type: ignore[attr-defined]
            lines = (out.getvalue() + (rest or "")).splitlines()
            text = "\n".join(line.rstrip() for line in lines).strip("\n")
            texts[path] = re.sub(r"\n{3,}", "\n\n", text)
    return texts


def cli_markdown() -> str:
    """docs/cli.md: one section and one fenced block per command."""
    texts = help_texts()
    commands = [path.split(" ", 1)[1] for path in texts if " " in path]
    out = [
        "# Command-line reference",
        "",
        "Every command's `--help`, as it prints at 100 columns (the panels' boxes left out). Generated by",
        "`python -m llmscope._docs` from the app itself; do not edit by hand: `tests/test_docs.py` fails",
        "when this page is stale. What each view shows and how to read it: [the command pages](README.md#commands).",
        "",
        "Commands: " + ", ".join(f"[{name}](#llmscope-{name})" for name in commands) + ".",
    ]
    for path, text in texts.items():
        out += ["", f"## {path}", "", "```text", text, "```"]
    return "\n".join(out) + "\n"


def write_cli(check: bool) -> int:
    fresh = cli_markdown()
    current = CLI_DOC.read_text(encoding="utf-8") if CLI_DOC.exists() else None
    if check:
        if current != fresh:
            print(f"{CLI_DOC.relative_to(ROOT)} is stale: regenerate it with python -m llmscope._docs", file=sys.stderr)
            return 1
        return 0
    if current != fresh:
        CLI_DOC.parent.mkdir(parents=True, exist_ok=True)
        CLI_DOC.write_text(fresh, encoding="utf-8")
        print(f"wrote {CLI_DOC.relative_to(ROOT)}")
    return 0


# --------------------------------------------------------------------------------------------
# Transcripts

BLOCK = re.compile(r"^```text\n(\$ .*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Step:
    """One `$ command` of a transcript and the output written below it."""

    command: str
    output: str


@dataclass(frozen=True)
class Transcript:
    path: Path
    line: int  # of the opening fence, 1-based
    start: int  # character offsets of the block's body (between the fences)
    end: int
    steps: tuple[Step, ...]

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    """README.md and every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def parse_steps(body: str) -> tuple[Step, ...]:
    steps: list[list] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append([line[2:], []])
        else:
            steps[-1][1].append(line)
    return tuple(Step(command, "\n".join(lines).rstrip("\n")) for command, lines in steps)


def transcripts(paths: list[Path] | None = None) -> list[Transcript]:
    found = []
    for path in paths or doc_files():
        text = path.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Transcript(path, line, match.start(1), match.end(1), parse_steps(match.group(1))))
    return found


def _tidy(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def _run(command: str, timeout: float) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in UNSET}
    env.update(ENVIRONMENT, LLMSCOPE_PYTHON=sys.executable)
    # `llmscope` and `python` are the interpreter llmscope runs under (a transcript may run a docs script)
    prelude = 'llmscope() { "$LLMSCOPE_PYTHON" -m llmscope "$@"; }\npython() { "$LLMSCOPE_PYTHON" "$@"; }\n'
    return subprocess.run(["bash", "-c", prelude + command], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, check=False)


def run_command(command: str, timeout: float = 600) -> str:
    """What `command` prints in ENVIRONMENT: stdout, then stderr if it failed; trailing space dropped."""
    done = _run(command, timeout)
    return _tidy(done.stdout + (done.stderr if done.returncode else ""))


CUT = re.compile(r"^(?P<base>.+?) \| (?P<end>head|tail) -n (?P<lines>\d+)$")


class Runner:
    """Runs each command once. `COMMAND | head -n N` (or `tail -n N`) where COMMAND is shown too is cut
    from COMMAND's own stdout instead of running the model again: the same lines, seconds sooner."""

    def __init__(self, commands: list[str]) -> None:
        self.commands = set(commands)
        self.done: dict[str, subprocess.CompletedProcess] = {}

    def _done(self, command: str) -> subprocess.CompletedProcess:
        if command not in self.done:
            self.done[command] = _run(command, 600)
        return self.done[command]

    def __call__(self, command: str) -> str:
        cut = CUT.match(command)
        if cut and cut["base"] in self.commands and self._done(cut["base"]).returncode == 0:
            lines, n = self._done(cut["base"]).stdout.splitlines(), int(cut["lines"])
            return _tidy("\n".join(lines[:n] if cut["end"] == "head" else lines[-n:]))
        done = self._done(command)
        return _tidy(done.stdout + (done.stderr if done.returncode else ""))


def all_commands() -> list[str]:
    """Every distinct command of every transcript, in the order the pages show them."""
    return list(dict.fromkeys(step.command for t in transcripts() for step in t.steps))


def rewrite_transcripts(paths: list[Path] | None = None) -> int:
    """Re-run every transcript (of PATHS, default every doc); write the outputs that changed (timings aside)
    back in place."""
    changed, run = 0, Runner(all_commands())  # a command shown in several places runs once
    for path in paths or doc_files():
        found = transcripts([path])
        if not found:
            continue
        text = original = path.read_text(encoding="utf-8")
        for transcript in reversed(found):  # from the end, so earlier offsets stay valid
            body = []
            for step in transcript.steps:
                output = run(step.command)
                if normalise(output) != normalise(step.output):
                    changed += 1
                    print(f"{transcript.where}: $ {step.command}", flush=True)
                else:
                    output = step.output  # the same but for timings: keep the text as it stands
                body += [f"$ {step.command}", *([output] if output else [])]
            new = "\n".join(body) + "\n"
            text = text[: transcript.start] + new + text[transcript.end :]
        if text != original:
            path.write_text(text, encoding="utf-8")
    print(f"{changed} transcript output(s) rewritten")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = [Path(a).resolve() for a in args if a.endswith(".md")] if "--transcripts" in args else []
    unknown = [a for a in args if a not in ("--check", "--transcripts") and Path(a).resolve() not in paths]
    if unknown:
        print(__doc__.strip().split("\n\n")[0], file=sys.stderr)
        return 2
    if "--transcripts" in args:
        return rewrite_transcripts(paths or None)
    return write_cli(check="--check" in args)


if __name__ == "__main__":
    sys.exit(main())
