"""``llmscope patch``: which activations the answer depends on (activation patching, causal tracing)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope patch "The Eiffel Tower is in" --corrupt "The Colosseum is in" --target " Paris" --versus " Rome"
  llmscope patch "The Eiffel Tower is in" --corrupt "The Colosseum is in" --site heads
  llmscope patch "The Eiffel Tower is in" --noise "Eiffel Tower" --target " Paris"   [dim]# causal tracing[/dim]
"""


def command(
    clean: Annotated[str, typer.Argument(help="The prompt whose activations are patched in.", show_default=False)],
    corrupt: Annotated[
        Optional[str],
        typer.Option("--corrupt", help="The prompt run with one clean activation put back at a time (as many tokens "
                     "as CLEAN).", show_default=False),
    ] = None,
    noise: Annotated[
        Optional[str],
        typer.Option("--noise", help="Instead of --corrupt: CLEAN with Gaussian noise (3 x the embedding matrix's "
                     "standard deviation, seeded) on this word's token embeddings.", metavar="WORD",
                     show_default=False),
    ] = None,
    site: Annotated[str, typer.Option("--site", help="resid (the residual stream entering each layer), attn, mlp "
                                      "(each layer's output) or heads (each head, at every position).")] = "resid",
    target: Annotated[
        Optional[str],
        typer.Option("--target", "-t", help="One token. Default: the clean prompt's top next token.",
                     show_default=False),
    ] = None,
    versus: Annotated[
        Optional[str],
        typer.Option("--versus", help="One token. Default: the corrupt prompt's top next token (where it is the "
                     "target too, the metric is the target's log-probability).", show_default=False),
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Strongest cells listed.", min=1)] = 8,
    seed: opt.Seed = 0,
    model: opt.Model = None,
    revision: opt.Revision = None,
    gguf_file: opt.GgufFile = None,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "auto",
    trust_remote_code: opt.TrustRemoteCode = False,
    json_: opt.Json = False,
    export: opt.Export = None,
) -> None:
    """Put back one clean activation at a time into the corrupt run, and see which restore the answer.

    The metric is the logit difference target - versus at the last position, normalised so that 0 is the
    corrupt run and 1 the clean one. Each cell is one patched forward pass (batched, under the memory
    estimate): a layer and position for --site resid, attn or mlp, a layer and head for --site heads.
    Two identity checks are printed with every result: every position of a layer's residual input
    patched gives the clean metric, nothing patched the corrupt one.
    """
    from llmscope.explain.patch import check_options

    check_options(clean, corrupt=corrupt, noise=noise, site=site, target=target, versus=versus)  # before the load

    from llmscope import render
    from llmscope.explain.patch import patch
    from llmscope.render.patch import render_patch

    spec = opt.load_spec_from_options(model, revision, gguf_file, device, dtype, trust_remote_code)
    result = patch(clean, model=spec, corrupt=corrupt, noise=noise, site=site, target=target, versus=versus,
                   seed=seed)
    render.warn(result.warnings)
    render.emit(result, lambda r: render_patch(r, top=top), json_=json_, export_path=export)
