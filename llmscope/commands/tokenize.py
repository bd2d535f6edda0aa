"""``llmscope tokenize``: how a model's tokenizer cuts text (only the tokenizer is loaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from llmscope import _options as opt
from llmscope.errors import UsageError

EPILOG = """[bold]Examples[/bold]

  llmscope tokenize "Hello, world!"                 [dim]# the embedded Gemma 3 270M[/dim]
  llmscope tokenize "def f(x): return x" -m gpt2 --json
  echo "naïve café 東京 😀" | llmscope tokenize -    [dim]# standard input (newline included)[/dim]
  llmscope tokenize --file notes.txt --compare gpt2,bert-base-uncased
  llmscope tokenize "Hi there" -m ./my-chat-model --chat --system "Be brief."
  llmscope tokenize --ids 2,9259,1902
  llmscope tokenize --vocab -m gpt2
"""

VIEW_PANEL = "Views"


def read_text(text: Optional[str], file: Optional[Path]) -> str:
    """TEXT, TEXT '-' (standard input, strict UTF-8) or --file PATH, through the one bounded reader."""
    from llmscope.text import inputs

    return inputs.read_text(text, file, missing="no text to tokenize")


def _compare_models(values: Optional[list[str]]) -> list[str]:
    models: list[str] = []
    for value in values or []:
        parts = [p.strip() for p in value.split(",")]
        if any(not p for p in parts):
            raise UsageError(f"--compare {value!r}: empty model name", hint="e.g. --compare gpt2,bert-base-uncased")
        models.extend(parts)
    return models


# The views other than the tokenization itself
Ids = Annotated[
    Optional[str],
    typer.Option("--ids", help="The reverse: token ids (504,3575,...) to tokens and text.",
                 rich_help_panel=VIEW_PANEL, show_default=False, metavar="IDS"),
]
CompareModels = Annotated[
    Optional[list[str]],
    typer.Option("--compare", "-c", help="Also tokenize with these models, side by side (repeat, or a,b,c).",
                 rich_help_panel=VIEW_PANEL, show_default=False, metavar="MODEL"),
]
Vocab = Annotated[
    bool,
    typer.Option("--vocab", help="Show the vocabulary: size, special tokens, tokenizer type and pipeline.",
                 rich_help_panel=VIEW_PANEL),
]


def _check_view(
    *, vocab: bool, ids: Optional[str], text_given: bool, chat_options: bool, compare_models: list[str]
) -> None:
    """--vocab and --ids are views of their own: refuse the options that belong to another."""
    if vocab and (text_given or ids is not None or chat_options or compare_models):
        raise UsageError("--vocab shows the tokenizer itself: it takes no TEXT, --file, --ids, --chat, --system "
                         "or --compare")
    if ids is not None and (text_given or chat_options or compare_models):
        raise UsageError("--ids decodes token ids: it takes no TEXT, --file, --chat, --system or --compare")


def command(
    text: Annotated[
        Optional[str],
        typer.Argument(help="The text to tokenize; - reads standard input (as UTF-8).", show_default=False),
    ] = None,
    model: opt.Model = None,
    file: opt.TextFile = None,
    chat: Annotated[
        bool,
        typer.Option("--chat", help="Send the text as a user message through the model's chat template.",
                     rich_help_panel=opt.INPUT_PANEL),
    ] = False,
    system: Annotated[
        Optional[str],
        typer.Option("--system", help="A system message before the user message (with --chat).",
                     rich_help_panel=opt.INPUT_PANEL, show_default=False),
    ] = None,
    add_special_tokens: Annotated[
        bool,
        typer.Option("--add-special-tokens/--no-add-special-tokens",
                     help="Let the tokenizer add its special tokens (BOS, [CLS]...), as it does by default.",
                     rich_help_panel=opt.INPUT_PANEL),
    ] = True,
    ids: Ids = None,
    compare: CompareModels = None,
    vocab: Vocab = False,
    revision: opt.Revision = None,
    gguf_file: opt.GgufFile = None,
    trust_remote_code: opt.TrustRemoteCode = False,
    json_: opt.Json = False,
    export: opt.Export = None,
) -> None:
    """Show exactly how a model's tokenizer cuts text into tokens.

    Token boundaries in colour, a table of ids, vocabulary strings, pieces and character offsets,
    and which special tokens the tokenizer added and why. Only the tokenizer is loaded, never the
    weights, so this is quick even for a 70B model.
    """
    from llmscope import render
    from llmscope.render import tokens as views
    from llmscope.text.inputs import check_not_input

    check_not_input(export, [file])  # saving must not overwrite the text it read
    compare_models = _compare_models(compare)
    _check_view(vocab=vocab, ids=ids, text_given=text is not None or file is not None,
                chat_options=chat or system is not None, compare_models=compare_models)  # before anything loads
    spec = opt.load_spec_from_options(model, revision, gguf_file, trust_remote_code=trust_remote_code)
    how = dict(chat=chat, system=system, add_special_tokens=add_special_tokens)
    if vocab:
        from llmscope.text.vocab import vocab_info

        result, renderer = vocab_info(spec), views.render_vocab
    elif ids is not None:
        from llmscope.text.tokens import decode_ids, parse_ids

        result, renderer = decode_ids(parse_ids(ids), model=spec), views.render_decode
    elif compare_models:
        from llmscope.loading.model import LoadSpec
        from llmscope.text.tokens import compare_tokenizers

        # --revision and --gguf-file are the first model's; --trust-remote-code is every model's
        others = [LoadSpec(model=m, trust_remote_code=trust_remote_code) for m in compare_models]
        result = compare_tokenizers(read_text(text, file), [spec, *others], **how)
        renderer = views.render_comparison
        for one in result.results:
            render.warn([f"{one.model}: {w}" for w in one.warnings])
    else:
        from llmscope.text.tokens import tokenize

        result = tokenize(read_text(text, file), model=spec, **how)
        renderer = views.render_tokenization
        render.warn(result.warnings)
    render.emit(result, renderer, json_=json_, export_path=export)
