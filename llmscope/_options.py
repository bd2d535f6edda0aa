"""Options shared by the commands, as ``Annotated`` aliases, and the bundle that loads a model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from llmscope.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from llmscope.loading import LoadSpec

MODEL_PANEL = "Model"
OUTPUT_PANEL = "Output"


def _device(value: str) -> str:
    from llmscope.devices import validate_device

    try:
        return validate_device(value)
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None


def _dtype(value: str) -> str:
    from llmscope.devices import validate_dtype

    try:
        return validate_dtype(value)
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None


def _export(value: Optional[Path]) -> Optional[Path]:
    if value is None:  # also every TAB: completion runs this callback, and render would bring Rich
        return None
    from llmscope.render import check_export_path

    return check_export_path(value)  # a UsageError names --export itself: one line, exit 2, before any work


def _complete_model(incomplete: str) -> list[str]:
    from llmscope.completion import complete_model

    return complete_model(incomplete)


def _completer(name: str):
    """A TAB completer that imports llmscope.completion (no torch) only when TAB is pressed."""

    def complete(incomplete: str) -> list[str]:
        from llmscope import completion

        return getattr(completion, name)(incomplete)

    return complete


complete_strategy = _completer("complete_strategy")  # generate --strategy
complete_next_token_strategy = _completer("complete_next_token_strategy")
complete_strategies = _completer("complete_strategies")  # compare --strategies a,b,c
complete_memory_for = _completer("complete_memory_for")  # memory --for


ModelArg = Annotated[
    Optional[str],
    typer.Argument(
        help="Hub id (gpt2), local folder, or .gguf file. Default: the embedded Gemma 3 270M.",
        autocompletion=_complete_model,
        show_default=False,
    ),
]
Model = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        help="Hub id (gpt2), local folder, or .gguf file. Default: the embedded Gemma 3 270M.",
        autocompletion=_complete_model,
        rich_help_panel=MODEL_PANEL,
        show_default=False,
    ),
]
Revision = Annotated[
    Optional[str],
    typer.Option(help="Hub revision: branch, tag or commit.", rich_help_panel=MODEL_PANEL, show_default=False),
]
GgufFile = Annotated[
    Optional[str],
    typer.Option(
        "--gguf-file", help="The .gguf file inside MODEL (a folder or hub repo).", rich_help_panel=MODEL_PANEL
    ),
]
Device = Annotated[
    str,
    typer.Option(
        help="auto, cpu, cuda, cuda:N or mps. auto spreads a large model over GPUs and CPU.",
        callback=_device,
        autocompletion=_completer("complete_device"),
        rich_help_panel=MODEL_PANEL,
    ),
]
Dtype = Annotated[
    str,
    typer.Option(
        help="auto, float32, bfloat16 or float16. auto: float32 on CPU, the checkpoint's dtype on GPU.",
        callback=_dtype,
        autocompletion=_completer("complete_dtype"),
        rich_help_panel=MODEL_PANEL,
    ),
]
TrustRemoteCode = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code",
        help="Allow running Python code from the model's repository. Off: such models are refused.",
        rich_help_panel=MODEL_PANEL,
    ),
]
Json = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document instead of tables.", rich_help_panel=OUTPUT_PANEL),
]
Export = Annotated[
    Optional[Path],
    typer.Option(
        help="Also save the picture as FILE.svg, FILE.html or FILE.txt.",
        callback=_export,
        rich_help_panel=OUTPUT_PANEL,
        show_default=False,
        metavar="FILE",
    ),
]
MAX_SEED = 2**64 - 1  # the largest seed torch's generators take
Seed = Annotated[
    int, typer.Option(help="Random seed: the same seed gives the same text.", min=0, max=MAX_SEED)
]



def load_spec_from_options(
    model: Optional[str],
    revision: Optional[str] = None,
    gguf_file: Optional[str] = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
) -> LoadSpec:
    """The model options of a command as the one value the core loads from."""
    from llmscope.loading import LoadSpec

    return LoadSpec(
        model=model, revision=revision, gguf_file=gguf_file, device=device, dtype=dtype,
        trust_remote_code=trust_remote_code,
    )
