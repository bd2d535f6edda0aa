"""``llmscope attention``: a layer's attention weights as a token x token heatmap."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope attention "The cat sat on the mat because it was tired"
  llmscope attention "The cat sat on the mat because it was tired" --token it
  llmscope attention "The cat sat on the mat because it was tired" --walk --token it   [dim]# one head, step by step[/dim]
  llmscope attention "Hello world" --layer 0 --head 2 --json
  llmscope attention "Hello world" -m gpt2 --export attention.svg
"""


def command(
    prompt: Annotated[str, typer.Argument(help="The text to look at.", show_default=False)],
    model: opt.Model = None,
    layer: Annotated[int, typer.Option("--layer", "-l", help="Layer index; negative counts from the end.")] = -1,
    head: Annotated[
        Optional[int],
        typer.Option("--head", help="Attention head (0-based). Default: the mean over all heads.", min=0),
    ] = None,
    token: Annotated[
        Optional[str],
        typer.Option(
            "--token",
            "-t",
            help="A word of the prompt or a token position: rank what that token attends to in every layer.",
            metavar="WORD_OR_POSITION",
            show_default=False,
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", help="With --token: tokens listed per layer.", min=1)] = 5,
    all_layers: Annotated[
        bool,
        typer.Option("--all-layers", help="Keep every head of every layer (JSON: layers). On for --export FILE.html."),
    ] = False,
    walk: Annotated[
        bool,
        typer.Option("--walk", help="One head's computation step by step for one query token (--token, default the "
                                    "last; --head, default 0): scores, scale, mask, softmax, values, its write, "
                                    "and a check against the model."),
    ] = False,
    revision: opt.Revision = None,
    gguf_file: opt.GgufFile = None,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "auto",
    trust_remote_code: opt.TrustRemoteCode = False,
    json_: opt.Json = False,
    export: opt.Export = None,
) -> None:
    """Show a layer's attention weights as a token x token heatmap.

    Rows are query tokens, columns the keys they attend to; colour is the weight. In a causal model
    the upper triangle stays empty: no token sees the future. The model is loaded with eager
    attention, the implementation that materialises the weights. --export FILE.html writes an
    interactive page holding every layer and head: pick them, hover a cell, click a query token.
    """
    from llmscope import render
    from llmscope.errors import UsageError

    spec = opt.load_spec_from_options(model, revision, gguf_file, device, dtype, trust_remote_code)
    page = export is not None and export.suffix.lower() == ".html"
    if walk:
        if all_layers:
            raise UsageError("`walk` follows one head of one layer: it does not go with `all_layers`",
                             hint="drop one of them")
        from llmscope.forward.walk import walk as walk_head
        from llmscope.forward.walk import walk_page
        from llmscope.render.walk import render_walk

        result = (walk_page if page else walk_head)(prompt, model=spec, layer=layer, head=head or 0, token=token)
        render.warn(result.warnings)
        render.emit(result, render_walk, json_=json_, export_path=export)
        return
    from llmscope.forward.attention import attention
    from llmscope.render.attention import render_attention

    result = attention(prompt, model=spec, layer=layer, head=head, token=token, top=top,
                       all_layers=all_layers or page)
    render.warn(result.warnings)
    render.emit(result, render_attention, json_=json_, export_path=export)
