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
  llmscope memory --for forward --context 2048     [dim]# every position's logits[/dim]
  llmscope memory --context 8192 --dtype float32 --measure
"""

BUDGET_PANEL = "Budget"
RUN_PANEL = "What runs"


_size = opt.checked("units", "parse_size", keep=True)
_gpus = opt.checked("memory.placement", "parse_gpus", keep=True)


def _mode(value: str) -> str:
    from llmscope.memory.transient import MODES

    if value not in MODES:
        raise typer.BadParameter(f"{value!r}: use generate or forward")
    return value


def _attn(value: Optional[str]) -> Optional[str]:
    from llmscope.memory.transient import ATTENTION_IMPLEMENTATIONS

    if value is not None and value not in ATTENTION_IMPLEMENTATIONS:
        raise typer.BadParameter(f"{value!r}: use one of {', '.join(ATTENTION_IMPLEMENTATIONS)}")
    return value


# memory's own options, declared here so that the command reads as a list
Context = Annotated[
    Optional[int],
    typer.Option(help="Tokens per sequence. Default: the model's maximum (max_position_embeddings).", min=1,
                 show_default=False),
]
WeightsDtype = Annotated[
    str,
    typer.Option(help="Weights dtype: float32, bfloat16, float16, or auto (the checkpoint's).", callback=opt._dtype,
                 autocompletion=opt.complete_dtype),
]
KvDtype = Annotated[
    Optional[str],
    typer.Option("--kv-dtype", help="KV cache dtype. Default: --dtype.", callback=opt._dtype, show_default=False,
                 autocompletion=opt.complete_dtype),
]
Memory = Annotated[
    Optional[str],
    typer.Option(help="One device's memory: 24GiB, 16GB, 512MiB.", callback=_size, rich_help_panel=BUDGET_PANEL,
                 show_default=False, metavar="SIZE"),
]
Gpus = Annotated[
    Optional[str],
    typer.Option(help="Several GPUs: 2x80GiB, or 24GiB,48GiB. Shows where each layer goes.", callback=_gpus,
                 rich_help_panel=BUDGET_PANEL, show_default=False, metavar="NxSIZE"),
]
Cpu = Annotated[
    Optional[str],
    typer.Option(help="CPU RAM that layers may spill into.", callback=_size, rich_help_panel=BUDGET_PANEL,
                 show_default=False, metavar="SIZE"),
]
For = Annotated[
    str,
    typer.Option("--for", help="generate: prefill, then one token (last-position logits); forward: one pass "
                 "returning every position's logits, as scoring does.", callback=_mode,
                 autocompletion=opt.complete_memory_for, rich_help_panel=RUN_PANEL, metavar="generate|forward"),
]
AttnImplementation = Annotated[
    Optional[str],
    typer.Option("--attn-implementation", help="sdpa, eager, flash_attention_2... Default: transformers' choice.",
                 callback=_attn, rich_help_panel=RUN_PANEL, show_default=False),
]
Measure = Annotated[
    bool,
    typer.Option("--measure", help="Load the model, run exactly this (a random prompt of --context tokens at "
                 "--batch) and show the measured peak beside the prediction.", rich_help_panel=RUN_PANEL),
]
Runs = Annotated[
    int, typer.Option(help="With --measure: how many runs (one fresh process, one load); the median.", min=1,
                      rich_help_panel=RUN_PANEL)
]


def command(
    model: opt.ModelArg = None,
    context: Context = None,
    batch: Annotated[int, typer.Option(help="Sequences at once.", min=1)] = 1,
    dtype: WeightsDtype = "bfloat16",
    kv_dtype: KvDtype = None,
    memory: Memory = None,
    gpus: Gpus = None,
    cpu: Cpu = None,
    allow_longer: Annotated[
        bool, typer.Option("--allow-longer", help="Allow a --context beyond the model's maximum.")
    ] = False,
    mode: For = "generate",  # the core's name: its errors say `mode`, shown as --for
    attn_implementation: AttnImplementation = None,
    measure: Measure = False,
    runs: Runs = 1,
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

    The transient memory is what transformers allocates at the prefill's peak for this attention
    implementation (masks, scores, the MLP's intermediates, the logits), each tensor named.
    --measure runs it in a fresh process: on CUDA max_memory_allocated, on the CPU the peak RSS
    over the RSS before the weights load (coarser).
    """
    if memory is not None and gpus is not None:
        raise UsageError("`memory` and `gpus` both given", hint="use `memory` for one device, `gpus` for several")
    from llmscope import render
    from llmscope.memory.report import memory_report
    from llmscope.render.memory import render_memory

    # --dtype is the weights' dtype to size (memory loads nothing): memory_report's own dtype, not the spec's
    spec = opt.load_spec_from_options(model, revision, gguf_file, trust_remote_code=trust_remote_code)
    report = memory_report(
        spec, context=context, batch=batch, dtype=dtype, kv_dtype=kv_dtype, memory=memory, gpus=gpus, cpu=cpu,
        allow_longer=allow_longer, mode=mode, attn_implementation=attn_implementation, measure=measure, runs=runs,
    )
    render.emit(report, render_memory, json_=json_, export_path=export)
