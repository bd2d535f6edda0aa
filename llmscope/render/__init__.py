"""The output layer: the stdout and stderr consoles, the JSON emitter, exports and number formats.

stdout carries data (one Rich renderable, or exactly one JSON document); stderr carries talk
(progress, status, warnings, errors). Renderers for each result type live in the submodules
(``render.architecture`` ...) and depend only on the result dataclasses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType

from llmscope.errors import LlmscopeError, UsageError, literal
from llmscope.units import fmt_bytes, fmt_count, fmt_int, fmt_prob  # noqa: F401 - re-exported for the views

EXPORT_SUFFIXES = (".svg", ".html", ".txt")

def stdout_closed() -> None:
    """stdout's reader went away (``| head``): stop writing and end the program with exit 0, quietly.

    SystemExit, not BrokenPipeError: Click turns an EPIPE raised inside a command into exit 1 before
    ``cli.main`` could see it. stdout is pointed at /dev/null so the final flush cannot fail again.
    """
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    raise SystemExit(0)


class _DataConsole(Console):
    """stdout's console. Rich's own answer to a closed pipe is ``SystemExit(1)``; README promises 0."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        stdout_closed()


stdout: Console = _DataConsole(highlight=False, soft_wrap=False)
stderr = Console(stderr=True, highlight=False)


def reset_consoles() -> None:
    """Re-create the consoles (tests and notebooks swap sys.stdout / sys.stderr)."""
    global stdout, stderr
    stdout = _DataConsole(highlight=False, soft_wrap=False)
    stderr = Console(stderr=True, highlight=False)


# --------------------------------------------------------------------------------------------
# JSON


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums, paths, tuples and non-finite floats as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_json"):
            return to_jsonable(value.to_json())
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(result: Any) -> str:
    return json.dumps(to_jsonable(result), ensure_ascii=False, indent=2)


# --------------------------------------------------------------------------------------------
# Showing results


def check_export_path(path: Path | None) -> Path | None:
    """Validate an --export path before any work: a known suffix, not a folder, and a file this
    process can create or overwrite (its folder exists and is writable). A usage error otherwise."""
    if path is None:
        return None
    if path.suffix.lower() not in EXPORT_SUFFIXES:
        raise UsageError(f"`export={literal(str(path))}`: unknown format", hint="use a .svg, .html or .txt file name")
    from llmscope.text.inputs import check_writable_file

    check_writable_file(path, option="export")
    return path


# Rich's SVG links its Fira Code faces from a CDN (fetched whenever the file is opened); an export makes
# no request, so its text uses the fonts the machine has.
_FONT_FACE = re.compile(r"[ \t]*@font-face\s*\{\{.*?\}\}[ \t]*\n?", re.DOTALL)  # {{ }}: the template's braces
_RICH_FONT = "font-family: Fira Code, monospace;"
LOCAL_FONTS = "font-family: 'Fira Code', Menlo, 'DejaVu Sans Mono', Consolas, monospace;"


def svg_format() -> str:
    """Rich's own SVG template (``save_svg``'s default, read at run time so a Rich upgrade keeps its
    layout) without its @font-face rules, and with a local monospace font stack."""
    import inspect

    rich_format = inspect.signature(Console.save_svg).parameters["code_format"].default
    return _FONT_FACE.sub("", rich_format).replace(_RICH_FONT, LOCAL_FONTS)


def export(renderable: RenderableType, path: Path, *, title: str = "llmscope", result: Any = None) -> None:
    """Save ``result`` as an interactive page (``.html``, where its view has one), or the renderable
    as SVG, HTML or plain text with Rich's own console export."""
    import io

    path = path.expanduser()
    suffix = path.suffix.lower()
    try:
        if suffix == ".html" and result is not None:
            from llmscope.render import page

            if page.view_for(result) is not None:
                page.write_page(result, to_jsonable(result), path, extra=to_jsonable(page.view_extra(result)))
                stderr.print(f"[dim]Saved {path} (an interactive page: open it in a browser)[/dim]")
                return
        width = stdout.width if stdout.is_terminal else 120
        console = Console(record=True, file=io.StringIO(), width=width, force_terminal=True, color_system="truecolor")
        console.print(renderable)
        if suffix == ".svg":
            console.save_svg(str(path), title=title, code_format=svg_format())
        elif suffix == ".html":
            console.save_html(str(path))
        else:
            console.save_text(str(path))
    except OSError as exc:
        raise LlmscopeError(
            f"could not save --export {path}: {exc.strerror or exc}", hint="choose a writable file name"
        ) from None
    stderr.print(f"[dim]Saved {path}[/dim]")


def emit(
    result: Any,
    renderer: Callable[[Any], RenderableType],
    *,
    json_: bool = False,
    export_path: Path | None = None,
) -> None:
    """Print a result: as one JSON document with ``json_``, else as its Rich rendering."""
    if json_:
        try:
            sys.stdout.write(json_text(result) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            stdout_closed()
    else:
        renderable = renderer(result)
        stdout.print(renderable)
    if export_path is not None:
        export(renderer(result), export_path, result=result)


def status(message: str) -> contextlib.AbstractContextManager[None]:
    """A spinner on stderr for work without a natural progress count (plain line when not a tty)."""
    from llmscope.render.progress import RichReporter

    return RichReporter().status(message)


def warn(lines: list[str] | tuple[str, ...]) -> None:
    """Each line of a result's ``warnings`` as one ``Warning: ...`` line on stderr."""
    from rich.markup import escape

    for line in lines:
        stderr.print(f"[yellow]Warning:[/yellow] {escape(line)}")


# --------------------------------------------------------------------------------------------
# Token pieces (numbers and sizes: llmscope.units)


def visible(text: str) -> str:
    """Whitespace made visible for a token piece: space ·, newline ↵, tab →."""
    return text.replace(" ", "·").replace("\n", "↵").replace("\t", "→").replace("\r", "␍")


# --------------------------------------------------------------------------------------------
# Notebooks: show any result with its renderer (Rich draws HTML in Jupyter by itself)

_RENDERERS = {  # result class name -> "module:function" inside llmscope.render
    "ArchitectureReport": "architecture:render_architecture",
    "MemoryReport": "memory:render_memory",
    "TokenizationResult": "tokens:render_tokenization",
    "DecodeResult": "tokens:render_decode",
    "TokenizerComparison": "tokens:render_comparison",
    "VocabInfo": "tokens:render_vocab",
    "NextTokenResult": "next_token:render_next_token",
    "LayerReport": "layers:render_layers",
    "EmbeddingReport": "embeddings:render_embeddings",
    "GenerationResult": "decoding:render_generation",
    "ComparisonResult": "decoding:render_comparison",
    "AttentionResult": "attention:render_attention",
    "AttentionWalk": "walk:render_walk",
    "HeadsReport": "heads:render_heads",
    "WhyResult": "why:render_why",
    "ContributionsResult": "contributions:render_contributions",
    "PatchResult": "patch:render_patch",
    "ExpertRoutingResult": "experts:render_experts",
    "PackingResult": "packing:render_packing",
    "ScoreResult": "score:render_score",
    "PromptReport": "report:render_report",
    "ScoreComparison": "score:render_comparison",
}


def kv_shape(group: Any) -> str:
    """What one cache layer of a group keeps per token: KV heads x head size, or MLA's latent and
    RoPE key; a sparse-attention layer's indexer keys beside them."""
    if group.kv_lora_rank:
        text = f"latent {group.kv_lora_rank} + RoPE key {group.qk_rope_head_dim}"
    else:
        n = group.num_key_value_heads
        text = f"{n} KV head{'' if n == 1 else 's'} x {group.head_dim}"
    if group.compress_rate:  # DeepSeek V4
        text += f" (keys = values), an entry per {group.compress_rate} tokens"
    return text + (f", indexer keys {group.indexer_key_dim}" if group.indexer_key_dim else "")


def renderable(result: Any) -> RenderableType:
    """The Rich renderable the CLI draws for a result of the Python API."""
    import importlib

    target = _RENDERERS.get(type(result).__name__)
    if target is None:
        raise TypeError(f"no renderer for {type(result).__name__}")
    module, function = target.split(":")
    return getattr(importlib.import_module(f"llmscope.render.{module}"), function)(result)


def show(result: Any) -> None:
    """Draw a result as the CLI would: ``llmscope.show(llmscope.inspect_model("gpt2"))``."""
    Console().print(renderable(result))
