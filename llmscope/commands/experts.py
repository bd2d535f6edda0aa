"""``llmscope experts``: which experts a mixture-of-experts model routes each token to."""

from __future__ import annotations

from typing import Annotated

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope experts "The cat sat on the mat" -m allenai/OLMoE-1B-7B-0924
  llmscope experts "def add(a, b):" -m Qwen/Qwen1.5-MoE-A2.7B --json
"""


def command(
    prompt: Annotated[str, typer.Argument(help="The text to route.", show_default=False)],
    model: opt.Model = None,
    revision: opt.Revision = None,
    gguf_file: opt.GgufFile = None,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "auto",
    trust_remote_code: opt.TrustRemoteCode = False,
    json_: opt.Json = False,
    export: opt.Export = None,
) -> None:
    """Show which experts a mixture-of-experts model routes each token to, layer by layer.

    For Mixtral, Qwen-MoE, OLMoE and other MoE models: the experts each layer's router chose for
    every token and their weights, how the load spreads over the experts, and how many parameters
    one token and this whole prompt actually use. A dense model is refused with a clear message.
    """
    from llmscope import render
    from llmscope.forward.experts import experts
    from llmscope.render.experts import render_experts

    result = experts(
        prompt, model=opt.load_spec_from_options(model, revision, gguf_file, device, dtype, trust_remote_code)
    )
    render.warn(result.warnings)
    render.emit(result, render_experts, json_=json_, export_path=export)
