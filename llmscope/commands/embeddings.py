"""``llmscope embeddings``: words as the model's vectors, alone and in context."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope embeddings king queen man woman      [dim]# cosines and neighbours[/dim]
  llmscope embeddings --analogy "king - man + woman"
  llmscope embeddings cat dog car truck --plot  [dim]# a PCA scatter[/dim]
  llmscope embeddings --word bank --context "We sat by the river bank." \\
      --context "I opened a bank account."     [dim]# cosine at every layer[/dim]
  llmscope embeddings king queen -m gpt2 --json
"""


def command(
    words: Annotated[
        Optional[list[str]],
        typer.Argument(help="Words to look up, each as it stands in running text (one space before it).",
                       show_default=False),
    ] = None,
    model: opt.Model = None,
    neighbors: Annotated[
        int, typer.Option("--neighbors", "-k", help="Nearest vocabulary rows shown per word; 0: none.", min=0)
    ] = 5,
    analogy: Annotated[
        Optional[str],
        typer.Option(help="Terms joined by + and -, e.g. 'king - man + woman' (3CosAdd).", show_default=False),
    ] = None,
    contexts: Annotated[  # the core's name, so its errors name --context
        Optional[list[str]],
        typer.Option("--context", help="A sentence holding --word; give two or more.", show_default=False),
    ] = None,
    word: Annotated[
        Optional[str],
        typer.Option("--word", help="The word to follow through the --context sentences (first whole-word match).",
                     show_default=False),
    ] = None,
    layer: Annotated[
        Optional[str],
        typer.Option(help="Use the output of layer N (from 0, as layers and attention number them; embed: the "
                     "embedding output) of each word run alone, not the input embeddings.", show_default=False,
                     metavar="embed|N"),
    ] = None,
    plot: Annotated[bool, typer.Option("--plot", help="Draw the words in two dimensions (PCA).")] = False,
    as_typed: Annotated[
        bool, typer.Option("--as-typed", help="Look words up exactly as typed (no space before them).")
    ] = False,
    revision: opt.Revision = None,
    gguf_file: opt.GgufFile = None,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "auto",
    trust_remote_code: opt.TrustRemoteCode = False,
    json_: opt.Json = False,
    export: opt.Export = None,
) -> None:
    """Show what the model's vectors say about words: similarity, neighbours, analogies, context.

    A word's vector is the mean of its tokens' rows of the input-embedding matrix. The command shows
    each word's tokens, the cosine of every pair as a heatmap, and each word's nearest vocabulary
    tokens. --analogy adds and subtracts unit vectors (king - man + woman) and shows the nearest
    tokens. --context and --word follow one word through several sentences and compare its hidden
    state between them after every layer. --plot draws the words in two dimensions.
    """
    from llmscope.forward.word_options import check_options

    words = list(words or [])
    contexts = list(contexts or [])
    check_options(words, neighbors=neighbors, analogy=analogy, contexts=contexts, word=word, layer=layer,
                  plot=plot)  # before any load: one clear line, exit 2

    from llmscope import render
    from llmscope.forward.embeddings import embeddings
    from llmscope.render.embeddings import render_embeddings

    report = embeddings(
        words, model=opt.load_spec_from_options(model, revision, gguf_file, device, dtype, trust_remote_code),
        neighbors=neighbors, analogy=analogy, contexts=contexts, word=word, layer=layer, plot=plot, as_typed=as_typed,
    )
    render.warn(report.warnings)
    render.emit(report, render_embeddings, json_=json_, export_path=export)
