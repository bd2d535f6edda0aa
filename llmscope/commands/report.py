"""``llmscope report``: one prompt through every view, as one page (--export FILE.html) or in turn."""

from __future__ import annotations

from typing import Annotated

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope report "The cat sat on the mat because it was tired" --export cat.html
  llmscope report "The capital of France is" -m gpt2          [dim]# the views one after another[/dim]
"""


def command(
    prompt: Annotated[str, typer.Argument(help="The text the model reads.", show_default=False)],
    model: opt.Model = None,
    rows: Annotated[int, typer.Option("--rows", "-r", help="Next-token candidates shown.", min=1)] = 10,
    revision: opt.Revision = None,
    gguf_file: opt.GgufFile = None,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "auto",
    trust_remote_code: opt.TrustRemoteCode = False,
    json_: opt.Json = False,
    export: opt.Export = None,
) -> None:
    """Look at one prompt from every side, with one model load.

    The architecture, the tokens, the next-token candidates, the logit lens for every position and
    the attention of every layer and head. With --export FILE.html it is one interactive page with
    a section for each; without it the terminal views follow one another.
    """
    from llmscope import render
    from llmscope.render.report import render_report
    from llmscope.views import prompt_report

    spec = opt.load_spec_from_options(model, revision, gguf_file, device, dtype, trust_remote_code)
    report = prompt_report(prompt, model=spec, rows=rows)
    render.warn(report.warnings)
    render.emit(report, render_report, json_=json_, export_path=export)
