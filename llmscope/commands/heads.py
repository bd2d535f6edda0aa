"""``llmscope heads``: what each attention head does, scored for the patterns interpretability work names."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope heads                                            [dim]# the induction probe, the embedded Gemma 3 270M[/dim]
  llmscope heads "The cat sat on the mat because it was tired" --query it --key cat
  llmscope heads -m gpt2 --json
"""


def command(
    prompt: Annotated[
        Optional[str],
        typer.Argument(help="The text to score the heads on. Default: the induction probe (random tokens, twice).",
                       show_default=False),
    ] = None,
    model: opt.Model = None,
    query: Annotated[
        Optional[str],
        typer.Option("--query", help="With --key: rank every head by the weight this token gives the key token.",
                     metavar="WORD_OR_POSITION", show_default=False),
    ] = None,
    key: Annotated[
        Optional[str],
        typer.Option("--key", help="The key token --query looks at (a word of the prompt or a position).",
                     metavar="WORD_OR_POSITION", show_default=False),
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Heads listed per pattern (and in the ranking).", min=1)] = 5,
    seed: opt.Seed = 0,
    revision: opt.Revision = None,
    gguf_file: opt.GgufFile = None,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "auto",
    trust_remote_code: opt.TrustRemoteCode = False,
    json_: opt.Json = False,
    export: opt.Export = None,
) -> None:
    """Score every attention head of every layer: previous-token, first-token (sink), self, duplicate and induction.

    One forward pass with eager attention; each head's weights are reduced to five scores, each a
    mean over the query positions where the pattern is defined. Without PROMPT the input is the
    induction probe: random ordinary tokens, then the same tokens again, where an induction head
    looks at the token that followed the first occurrence. --query it --key cat ranks the heads by
    the weight "it" gives "cat", beside each head's share on the first token.
    """
    from llmscope.forward.heads import check_options

    check_options(prompt, query, key)  # before the load: one line, exit 2

    from llmscope import render
    from llmscope.forward.heads import heads
    from llmscope.render.heads import render_heads

    spec = opt.load_spec_from_options(model, revision, gguf_file, device, dtype, trust_remote_code)
    report = heads(prompt, model=spec, query=query, key=key, seed=seed)
    render.warn(report.warnings)
    render.emit(report, lambda r: render_heads(r, top=top), json_=json_, export_path=export)
