"""``llmscope layers``: per layer hidden states, the logit lens, and the KV cache of one forward pass."""

from __future__ import annotations

from typing import Annotated

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope layers "The capital of France is"              [dim]# the embedded Gemma 3 270M[/dim]
  llmscope layers "The capital of France is" --all-tokens [dim]# lens grid: layers x positions[/dim]
  llmscope layers "Hello" -m gpt2 --json
"""


def command(
    prompt: Annotated[str, typer.Argument(help="The text the model reads.", show_default=False)],
    model: opt.Model = None,
    all_tokens: Annotated[
        bool, typer.Option("--all-tokens", help="Show the logit lens for every position: a layers x tokens grid.")
    ] = False,
    top: Annotated[int, typer.Option("--top", help="Lens predictions kept per layer (JSON; the table shows 1).", min=1)] = 3,
    chat: opt.Chat = False,
    system: opt.System = None,
    revision: opt.Revision = None,
    gguf_file: opt.GgufFile = None,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "auto",
    trust_remote_code: opt.TrustRemoteCode = False,
    json_: opt.Json = False,
    export: opt.Export = None,
) -> None:
    """Show what each layer computes: shapes, norms, the logit lens, and the KV cache.

    One forward pass keeps every hidden state. For each layer: its output shape, the norm of the
    last token's hidden state and how much the layer changed it, and the logit lens: the token
    the model would predict if it stopped there (its final norm and LM head applied early). The
    last layer's prediction is the model's own next token. Then the KV cache: key and value
    shapes per layer and the bytes they hold for this prompt.
    """
    from llmscope import render
    from llmscope.forward.layers import layers
    from llmscope.render.layers import render_layers

    page = export is not None and export.suffix.lower() == ".html"  # the page draws the whole grid
    spec = opt.load_spec_from_options(model, revision, gguf_file, device, dtype, trust_remote_code)
    report = layers(prompt, model=spec, all_tokens=all_tokens or page, chat=chat, system=system, top=top)
    render.warn(report.warnings)
    render.emit(report, render_layers, json_=json_, export_path=export)
