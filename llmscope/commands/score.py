"""``llmscope score``: how likely a model finds a text, token by token, and its perplexity."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope score "The capital of France is Paris."      [dim]# the embedded Gemma 3 270M[/dim]
  llmscope score --file essay.txt --window 1024 --stride 512
  cat notes.txt | llmscope score - --top 20
  llmscope score "Hello there" -m gpt2 --compare-model ./my-finetune --json
"""

WINDOW_PANEL = "Long texts"


def command(
    text: Annotated[
        Optional[str],
        typer.Argument(help="The text to score; - reads standard input (as UTF-8).", show_default=False),
    ] = None,
    model: opt.Model = None,
    file: opt.TextFile = None,
    window: Annotated[
        Optional[int],
        typer.Option("--window", help="Tokens per forward pass. Default: the model's context length.",
                     rich_help_panel=WINDOW_PANEL, show_default=False, metavar="N"),
    ] = None,
    stride: Annotated[
        Optional[int],
        typer.Option("--stride", help="Start a window every S tokens (at most window - 1; default: the window). "
                     "Each window scores only the tokens the one before did not.",
                     rich_help_panel=WINDOW_PANEL, show_default=False, metavar="S"),
    ] = None,
    top: Annotated[
        int,
        typer.Option("--top", help="Rows of the most-surprising table (and of the disagreements); 0 hides it.",
                     min=0),
    ] = 10,
    compare_model: Annotated[
        Optional[list[str]],
        typer.Option("--compare-model", help="Also score the text with this model, side by side (repeatable).",
                     show_default=False, metavar="MODEL"),
    ] = None,
    revision: opt.Revision = None,
    gguf_file: opt.GgufFile = None,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "auto",
    trust_remote_code: opt.TrustRemoteCode = False,
    json_: opt.Json = False,
    export: opt.Export = None,
) -> None:
    """Score a text: how likely the model finds each token, and the text's perplexity.

    Every token after the first gets its probability given the tokens before it, its rank among
    all tokens, and the model's own top choice there. The text is drawn with each token coloured by
    its probability, so surprises stand out; then the most surprising tokens, and the totals: mean
    negative log-likelihood, perplexity, and bits per byte (comparable across tokenizers). Long
    texts are scored in windows (--window, --stride), as in the Hugging Face perplexity guide.
    """
    from llmscope.text import inputs
    from llmscope.forward import scoring

    inputs.check_not_input(export, [file])  # the same file, or a link to it
    scoring.check_window(window, stride)
    content = inputs.read_text(text, file, missing="no text to score")
    scoring.check_text(content)

    from llmscope import render
    from llmscope.render import score as view

    spec = opt.load_spec_from_options(model, revision, gguf_file, device, dtype, trust_remote_code)
    if compare_model:  # --revision and --gguf-file name files of the first model's repository: not the others'
        others = [opt.load_spec_from_options(m, None, None, device, dtype, trust_remote_code) for m in compare_model]
        comparison = scoring.compare_scores(content, [spec, *others], window=window, stride=stride,
                                            spans=max(top, 10))
        render.emit(comparison, lambda c: view.render_comparison(c, top), json_=json_, export_path=export)
        return
    result = scoring.score_text(content, spec, window=window, stride=stride)
    render.emit(result, lambda r: view.render_score(r, top), json_=json_, export_path=export)
