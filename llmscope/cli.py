"""The ``llmscope`` command: registrations, --version, and ``main()``, the one error boundary.

Nothing here imports torch or transformers: ``--help`` and shell completion must stay instant.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Annotated

import typer
from typer.completion import completion_init

from llmscope import __version__
from llmscope.commands import attention as attention_cmd
from llmscope.commands import compare as compare_cmd
from llmscope.commands import contributions as contributions_cmd
from llmscope.commands import embeddings as embeddings_cmd
from llmscope.commands import experts as experts_cmd
from llmscope.commands import generate as generate_cmd
from llmscope.commands import heads as heads_cmd
from llmscope.commands import inspect as inspect_cmd
from llmscope.commands import layers as layers_cmd
from llmscope.commands import memory as memory_cmd
from llmscope.commands import next_token as next_token_cmd
from llmscope.commands import pack as pack_cmd
from llmscope.commands import patch as patch_cmd
from llmscope.commands import report as report_cmd
from llmscope.commands import score as score_cmd
from llmscope.commands import tokenize as tokenize_cmd
from llmscope.commands import why as why_cmd
from llmscope._options import flag_namer
from llmscope.errors import ExitCode, LlmscopeError
from llmscope.progress import Reporter, reporter, set_reporter

app = typer.Typer(
    name="llmscope",
    help="A command-line microscope for Hugging Face language models.",
    no_args_is_help=True,
    add_completion=False,  # declared on root() below, as plain bool flags
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
# What Typer's add_completion would have done besides adding its flags: register the bash, zsh,
# fish and PowerShell completers (a few dict entries, no imports).
completion_init()

def _help(function: object) -> str:
    """A command's docstring with each paragraph joined into one line, so Rich can wrap it."""
    import inspect

    return "\n\n".join(" ".join(p.split()) for p in (inspect.getdoc(function) or "").split("\n\n"))


# In the order a learner meets them: what the model is, what it reads, what it computes, what it writes.
for _name, _module in (
    ("inspect", inspect_cmd),
    ("memory", memory_cmd),
    ("tokenize", tokenize_cmd),
    ("next-token", next_token_cmd),
    ("layers", layers_cmd),
    ("embeddings", embeddings_cmd),
    ("generate", generate_cmd),
    ("score", score_cmd),
    ("compare", compare_cmd),
    ("attention", attention_cmd),
    ("heads", heads_cmd),
    ("why", why_cmd),
    ("contributions", contributions_cmd),
    ("patch", patch_cmd),
    ("experts", experts_cmd),
    ("pack", pack_cmd),
    ("report", report_cmd),
):
    app.command(_name, help=_help(_module.command), epilog=_module.EPILOG)(_module.command)


def _root_help(ctx: typer.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        typer.echo(ctx.get_help(), color=ctx.color)
        raise typer.Exit()


def _typer_completion(name: str) -> Callable[[typer.Context, typer.CallbackParam, bool], None]:
    """Typer's own --install-completion / --show-completion action, run only when the flag is given."""

    def callback(ctx: typer.Context, param: typer.CallbackParam, value: bool) -> None:
        if value and not ctx.resilient_parsing:
            import typer.completion

            getattr(typer.completion, name)(ctx, param, value)

    return callback


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmscope {__version__}")
        raise typer.Exit()


# The root's --help and completion flags are declared here as plain bool flags (Typer then adds
# none of its own). Typer's built-in ones default to None, and Typer coerces a None through
# pydantic (importing it) on every `llmscope COMMAND ...`, even when the flag is not given; a
# bool flag with a bool default skips that, which keeps `llmscope COMMAND --help` instant.
@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    _help_flag: Annotated[
        bool,
        typer.Option(
            "-h", "--help", callback=_root_help, is_eager=True, expose_value=False,
            help="Show this message and exit.",
        ),
    ] = False,
    _install: Annotated[
        bool,
        typer.Option(
            "--install-completion", callback=_typer_completion("install_callback"), expose_value=False,
            help="Install completion for the current shell.",
        ),
    ] = False,
    _show: Annotated[
        bool,
        typer.Option(
            "--show-completion", callback=_typer_completion("show_callback"), expose_value=False,
            help="Show completion for the current shell, to copy it or customize the installation.",
        ),
    ] = False,
) -> None:
    """A command-line microscope for Hugging Face language models.

    See a model's architecture and parameter budget, how text becomes tokens, what each layer
    computes, which next tokens it weighs, and how decoding strategies change what it writes.
    MODEL is a hub id, a local folder, a .gguf file, or nothing for the embedded Gemma 3 270M.
    """
    if debug:
        os.environ["LLMSCOPE_DEBUG"] = "1"
    _running["command"] = ctx.command.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None


# The click command being run (set by root() before it runs): its options name the core's parameters.
_running: dict[str, object] = {"command": None}




# --------------------------------------------------------------------------------------------
# The error boundary

_TOKEN_PATTERNS = (
    re.compile(r"hf_[A-Za-z0-9]{8,}"),
    re.compile(r"(?<=://)[^/\s:@]+(:[^/\s@]*)?@"),  # user:password@ in URLs
)


def scrub(text: str) -> str:
    """Remove Hugging Face tokens and URL credentials from text shown to the user."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN"):
        secret = os.environ.get(name)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _TOKEN_PATTERNS[0].sub("hf_***", text)
    return _TOKEN_PATTERNS[1].sub("***@", text)


def _fail(message: str, code: int) -> None:
    from llmscope import render

    line = scrub(" ".join(message.split()))  # always exactly one line
    try:
        render.stderr.print(f"[bold red]Error:[/bold red] {line}", markup=True, highlight=False, soft_wrap=True)
    except Exception:  # noqa: BLE001 - stderr itself may be gone
        pass
    sys.exit(code)


def _quiet_broken_pipe() -> None:
    """stdout's reader went away (``| head``): stop writing, and exit without a word."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    sys.exit(ExitCode.OK)


def _not_utf8(args: list[str]) -> str | None:
    """The first argument that was not valid UTF-8 (Python keeps such bytes as lone surrogates), unless
    it names an existing file: paths may be any bytes, text may not."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError as exc:
            if not os.path.lexists(arg):
                raw = arg.encode("utf-8", "surrogateescape")
                return f"argument {raw!r} is not valid UTF-8 (byte 0x{ord(arg[exc.start]) & 0xFF:02x})"
    return None


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: every error a user can cause ends here as one line on stderr and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    problem = _not_utf8(args)
    if problem:
        _fail(f"{problem} (convert it first, e.g. with iconv -f latin1 -t utf-8)", ExitCode.USAGE)
    debug = "--debug" in args or bool(os.environ.get("LLMSCOPE_DEBUG"))
    previous = _install_reporter()
    try:
        _run(args, debug)
    finally:
        set_reporter(previous)
        _forget_interrupted_string_eval()


def _forget_interrupted_string_eval() -> None:
    """Keep the exit code we chose when a Ctrl-C was handled (130), also under ``python -m llmscope``.

    CPython marks a KeyboardInterrupt "unhandled" when it ends a string ``exec``/``eval`` (dataclasses
    and namedtuples make their methods that way, so Ctrl-C during an import can land there), even if
    a caller then catches it; under ``-m`` the interpreter then kills itself with SIGINT on the way
    out, whatever ``sys.exit`` said. Every string eval first clears that mark: run an empty one.
    """
    exec("None")  # noqa: S102 - a constant, only to reset the interpreter's flag


def _install_reporter() -> Reporter:
    """The core's notices and progress, drawn by Rich on stderr; none while completing (keep TAB instant)."""
    if os.environ.get("_LLMSCOPE_COMPLETE"):
        return reporter()
    from llmscope.render.progress import RichReporter

    return set_reporter(RichReporter())


def _run(args: list[str], debug: bool) -> None:
    """The app, with every way it can end turned into an exit code (and at most one line of error)."""
    try:
        result = app(args=args, prog_name="llmscope", standalone_mode=False)
        if isinstance(result, int) and result:
            sys.exit(result)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        try:
            sys.stderr.write("\n")
        except Exception:  # noqa: BLE001
            pass
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        _quiet_broken_pipe()
    except LlmscopeError as exc:
        if debug:
            raise
        _fail(exc.render(flag_namer(_running["command"])), int(exc.exit_code))
    except typer.TyperException as exc:  # Typer's usage errors: bad option, missing argument
        if debug:
            raise
        command = getattr(getattr(exc, "ctx", None), "command_path", "llmscope")
        if not exc.format_message().strip():  # no arguments: the help was shown, nothing more to say
            sys.exit(int(getattr(exc, "exit_code", 2)))
        _fail(f"{exc.format_message()} (see '{command} --help')", int(getattr(exc, "exit_code", 2)))
    except MemoryError:
        _fail("out of memory (try a smaller --dtype, a shorter prompt, or --device auto)", ExitCode.ERROR)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback
        if debug:
            raise
        _fail(
            f"unexpected {type(exc).__name__}: {exc} (this is a bug in llmscope; re-run with --debug "
            "for the traceback and report it)",
            ExitCode.ERROR,
        )
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()
