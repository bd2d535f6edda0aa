"""``llmscope inspect``: what a model is, from its config alone."""

from __future__ import annotations

from typing import Annotated

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope inspect                       [dim]# the embedded Gemma 3 270M[/dim]
  llmscope inspect gpt2 --json
  llmscope inspect microsoft/Phi-3-mini-4k-instruct --modules   [dim]# print(model), with shapes[/dim]
  llmscope inspect ./model.gguf
"""


def command(
    model: opt.ModelArg = None,
    modules: Annotated[
        bool, typer.Option("--modules", help="Show the module tree, repeated blocks folded, with each module's input "
                                              "and output shape.")
    ] = False,
    tokens: Annotated[
        int, typer.Option("--tokens", help="With --modules: the prompt length the shapes are for.", min=1)
    ] = 6,
    revision: opt.Revision = None,
    gguf_file: opt.GgufFile = None,
    trust_remote_code: opt.TrustRemoteCode = False,
    json_: opt.Json = False,
    export: opt.Export = None,
) -> None:
    """Show a model's architecture, parameters and memory, from its config alone.

    The model is built on the meta device: a hub id downloads only config.json, and nothing is
    loaded into memory, so even a 70B model takes seconds.
    """
    from llmscope import render
    from llmscope.config.architecture import inspect_model
    from llmscope.render.architecture import render_architecture

    spec = opt.load_spec_from_options(model, revision, gguf_file, trust_remote_code=trust_remote_code)
    report = inspect_model(spec, modules=modules, tokens=tokens)
    render.emit(report, render_architecture, json_=json_, export_path=export)
