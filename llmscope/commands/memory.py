"""``llmscope memory``: will a model fit, how far its context goes, and where each layer goes."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmscope import _options as opt
from llmscope.errors import UsageError

EPILOG = """[bold]Examples[/bold]

  llmscope memory                                  [dim]# the embedded Gemma 3 270M, this machine[/dim]
  llmscope memory gpt2 --context 1024 --batch 8 --memory 4GiB
  llmscope memory microsoft/Phi-3-mini-4k-instruct --memory 8GB --kv-dtype float16
  llmscope memory mistralai/Mixtral-8x7B-v0.1 --gpus 2x80GiB --cpu 64GiB --json
"""

BUDGET_PANEL = "Budget"


def _size(value: Optional[str]) -> Optional[str]:
    from llmscope.memory import parse_size

    if value is not None:
        try:
            parse_size(value)
        except UsageError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


def _gpus(value: Optional[str]) -> Optional[str]:
    from llmscope.memory import parse_gpus

    if value is not None:
        try:
            parse_gpus(value)
        except UsageError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


def _dtype(value: Optional[str]) -> Optional[str]:
    from llmscope.devices import validate_dtype

    if value is None:
        return None
    try:
        return validate_dtype(value)
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None


def command(
    model: opt.ModelArg = None,
    context: Annotated[
        Optional[int],
        typer.Option(help="Tokens per sequence. Default: the model's maximum (max_position_embeddings).", min=1,
                     show_default=False),
    ] = None,
    batch: Annotated[int, typer.Option(help="Sequences at once.", min=1)] = 1,
    dtype: Annotated[
        str,
        typer.Option(help="Weights dtype: float32, bfloat16, float16, or auto (the checkpoint's).", callback=_dtype),
    ] = "bfloat16",
    kv_dtype: Annotated[
        Optional[str],
        typer.Option("--kv-dtype", help="KV cache dtype. Default: --dtype.", callback=_dtype, show_default=False),
    ] = None,
    memory: Annotated[
        Optional[str],
        typer.Option(help="One device's memory: 24GiB, 16GB, 512MiB.", callback=_size, rich_help_panel=BUDGET_PANEL,
                     show_default=False, metavar="SIZE"),
    ] = None,
    gpus: Annotated[
        Optional[str],
        typer.Option(help="Several GPUs: 2x80GiB, or 24GiB,48GiB. Shows where each layer goes.", callback=_gpus,
                     rich_help_panel=BUDGET_PANEL, show_default=False, metavar="NxSIZE"),
    ] = None,
    cpu: Annotated[
        Optional[str],
        typer.Option(help="CPU RAM that layers may spill into.", callback=_size, rich_help_panel=BUDGET_PANEL,
                     show_default=False, metavar="SIZE"),
    ] = None,
    allow_longer: Annotated[
        bool, typer.Option("--allow-longer", help="Allow a --context beyond the model's maximum.")
    ] = False,
    revision: opt.Revision = None,
    gguf_file: opt.GgufFile = None,
    trust_remote_code: opt.TrustRemoteCode = False,
    json_: opt.Json = False,
    export: opt.Export = None,
) -> None:
    """Will a model fit: weights, KV cache and transient memory, against a budget.

    Works from the config alone (meta device, no weights). The KV cache is what transformers itself
    holds: grouped-query heads, sliding-window layers keeping only their window, none for encoders.
    A mixture-of-experts model is sized with all its experts. Without --memory or --gpus, the
    budget is this machine: its GPUs, else its available RAM.
    """
    if memory is not None and gpus is not None:
        raise UsageError("--memory and --gpus both given", hint="use --memory for one device, --gpus for several")
    from llmscope import render
    from llmscope.memory import memory_report
    from llmscope.render.memory import render_memory

    report = memory_report(
        model,
        context=context,
        batch=batch,
        dtype=dtype,
        kv_dtype=kv_dtype,
        memory=memory,
        gpus=gpus,
        cpu=cpu,
        allow_longer=allow_longer,
        revision=revision,
        gguf_file=gguf_file,
        trust_remote_code=trust_remote_code,
    )
    render.emit(report, render_memory, json_=json_, export_path=export)
