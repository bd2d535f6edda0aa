"""``llmscope pack``: the cost of padding documents to a sequence length versus packing them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope pack docs/*.txt --seq-len 512
  llmscope pack corpus.txt --by-line --seq-len 2048 -m gpt2 --json
  cat notes.md | llmscope pack - --seq-len 256 --separator "<eos>"
"""


def command(
    files: Annotated[
        list[str],
        typer.Argument(help="Text files, one document each (or one per line with --by-line); - is stdin.",
                       show_default=False, metavar="FILES"),
    ],
    seq_len: Annotated[int, typer.Option("--seq-len", "-n", help="Tokens per training sequence.", min=1)],
    model: opt.Model = None,
    separator: Annotated[
        Optional[str],
        typer.Option(help="Text of the separator put after each packed document. Default: the EOS token.",
                     show_default=False),
    ] = None,
    by_line: Annotated[bool, typer.Option("--by-line", help="Each line of a file is one document.")] = False,
    revision: opt.Revision = None,
    gguf_file: opt.GgufFile = None,
    trust_remote_code: opt.TrustRemoteCode = False,
    json_: opt.Json = False,
    export: opt.Export = None,
) -> None:
    """Compare padding each document to --seq-len with packing documents back-to-back.

    Tokenizes the documents with the model's tokenizer (no weights are loaded) and counts the
    sequences, padding tokens and utilisation of both ways to batch them, with a picture of how
    the documents fill the first sequences. Documents longer than --seq-len are split into
    chunks when padding (nothing is truncated).
    """
    if files.count("-") > 1:
        raise typer.BadParameter("- (standard input) can be given only once", param_hint="FILES...")
    from llmscope.text import inputs

    limit = inputs.max_input_bytes()
    for name in files:  # regular files within the input limit (/dev/zero, a FIFO, a folder: refused)
        if name != "-":
            inputs.check_regular_file(name, f"file {name}", limit)
    inputs.check_not_input(export, files)

    from llmscope import render
    from llmscope.text.packing import pack
    from llmscope.render.packing import render_packing

    result = pack(
        [name if name == "-" else Path(name) for name in files],
        model=opt.load_spec_from_options(model, revision, gguf_file, trust_remote_code=trust_remote_code),
        seq_len=seq_len,
        separator=separator,
        by_line=by_line,
    )
    render.emit(result, render_packing, json_=json_, export_path=export)
