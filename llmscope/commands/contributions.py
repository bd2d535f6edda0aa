"""``llmscope contributions``: which layers and heads wrote the answer (direct logit attribution)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope contributions "The Eiffel Tower is in"                  [dim]# the embedded Gemma 3 270M[/dim]
  llmscope contributions "The Eiffel Tower is in" --target " Paris" --versus " London" --by head
  llmscope contributions "The cat sat on the" -m gpt2 --json
"""


def command(
    prompt: Annotated[str, typer.Argument(help="The text the model reads.", show_default=False)],
    model: opt.Model = None,
    target: Annotated[
        Optional[str],
        typer.Option("--target", "-t", help="The token whose logit to split (one token). Default: the model's top "
                     "next token.", show_default=False),
    ] = None,
    versus: Annotated[
        Optional[str],
        typer.Option("--versus", help="Split the logit difference target - VERSUS instead.", show_default=False),
    ] = None,
    by: Annotated[
        str, typer.Option("--by", help="layer (attention and MLP per layer) or head (each head's share as well).")
    ] = "layer",
    top: Annotated[int, typer.Option("--top", help="Heads listed with --by head.", min=1)] = 10,
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
    """Split the target's logit into what the embedding and each layer's attention (each head) and MLP wrote.

    Direct logit attribution at the last position: the final residual stream is the sum of what the
    embedding and every attention output and MLP output wrote; each part is projected onto the target's
    unembedding row (minus the --versus row) through the final norm with its scale frozen at the value the
    real forward pass computed (and Gemma's post-norms the same way), so the parts add up to the model's
    own logit. The difference is printed with every result. Computed in float32 unless --dtype says otherwise.
    """
    from llmscope.explain.contributions import check_options

    check_options(prompt, target=target, versus=versus, by=by, chat=chat, system=system)  # before the load

    from llmscope import render
    from llmscope.explain.contributions import contributions
    from llmscope.render.contributions import render_contributions

    spec = opt.load_spec_from_options(model, revision, gguf_file, device, dtype, trust_remote_code)
    result = contributions(prompt, model=spec, target=target, versus=versus, by=by, chat=chat, system=system)
    render.warn(result.warnings)
    render.emit(result, lambda r: render_contributions(r, top=top), json_=json_, export_path=export)
