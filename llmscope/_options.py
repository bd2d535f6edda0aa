"""Options shared by the commands, as ``Annotated`` aliases, and the bundle that loads a model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from llmscope.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from llmscope.loading.model import LoadSpec

MODEL_PANEL = "Model"
OUTPUT_PANEL = "Output"
DECODING_PANEL = "Decoding"
INPUT_PANEL = "Input"


def flag_namer(command: object) -> Callable[[str, str | None], str | None]:
    """How COMMAND's options write a core parameter: ``top=0`` as ``--top 0``, ``chat=True`` as ``--chat``,
    ``model`` as ``MODEL``; a name the command has no option for stays in the API's words (None)."""
    params = {p.name: p for p in getattr(command, "params", ())}

    def name_of(name: str, value: str | None) -> str | None:
        param = params.get(name)
        if param is None:
            return None
        if param.param_type_name == "argument":  # Typer's own click: not a click.Argument
            return (param.metavar or name.upper()) if value is None else value
        flag = max((o for o in param.opts if o.startswith("--")), key=len, default=param.opts[0])
        if getattr(param, "is_flag", False) and value in (None, "True", "False"):
            if value == "False":
                return param.secondary_opts[0] if param.secondary_opts else f"no {flag}"
            return flag
        return flag if value is None else f"{flag} {value}"

    return name_of


def checked(module: str, name: str, *, keep: bool = False):
    """An option callback that runs the core's check ``llmscope.<module>.<name>(value)`` (imported only
    when the option is given) and turns its UsageError into typer's BadParameter (one line, exit 2). It
    returns what the check returns, or the value itself with ``keep``; a None value (not given) passes."""

    def callback(ctx: typer.Context, value: Any) -> Any:
        if value is None:
            return None
        import importlib

        try:
            result = getattr(importlib.import_module(f"llmscope.{module}"), name)(value)
        except UsageError as exc:
            raise typer.BadParameter(exc.render(flag_namer(ctx.command))) from None
        return value if keep else result

    return callback


_device = checked("loading.devices", "validate_device")
_dtype = checked("loading.devices", "validate_dtype")


def _export(ctx: typer.Context, param: typer.CallbackParam, value: Optional[Path]) -> Optional[Path]:
    if value is not None and not ctx.resilient_parsing:  # every TAB runs this callback too: no Rich then
        from llmscope.render import check_export_path

        value = check_export_path(value)  # a UsageError names --export itself: one line, exit 2, before any work
    return _model_files(ctx, param, value)


_MODEL_FILES = ("model", "gguf_file", "export")


def _model_files(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
    """The callback of MODEL, --gguf-file and --export: once a command's three are all parsed (in the
    order they were typed, so the last one checks), refuse an --export that is a file the model is
    read from (the .gguf itself, a file in the model folder): one line, exit 2, before any load."""
    seen = ctx.meta.setdefault("llmscope.model_files", {})
    seen[param.name] = value
    wanted = {p.name for p in ctx.command.params} & set(_MODEL_FILES)
    if "export" in wanted and wanted <= seen.keys() and seen["export"] is not None and not ctx.resilient_parsing:
        from llmscope.text.inputs import check_not_model_file

        check_not_model_file(seen["export"], seen.get("model"), seen.get("gguf_file"))
    return value


def _complete_model(incomplete: str) -> list[str]:
    from llmscope._completion import complete_model

    return complete_model(incomplete)


def _completer(name: str):
    """A TAB completer that imports llmscope._completion (no torch) only when TAB is pressed."""

    def complete(incomplete: str) -> list[str]:
        from llmscope import _completion

        return getattr(_completion, name)(incomplete)

    return complete


complete_strategy = _completer("complete_strategy")  # generate --strategy
complete_next_token_strategy = _completer("complete_next_token_strategy")
complete_strategies = _completer("complete_strategies")  # compare --strategies a,b,c
complete_memory_for = _completer("complete_memory_for")  # memory --for
complete_why_method = _completer("complete_why_method")  # why --method
complete_why_unit = _completer("complete_why_unit")  # why --by
complete_dtype = _completer("complete_dtype")  # every --dtype, and memory's --kv-dtype


ModelArg = Annotated[
    Optional[str],
    typer.Argument(
        help="Hub id (gpt2), local folder, or .gguf file. Default: the embedded Gemma 3 270M.",
        autocompletion=_complete_model,
        callback=_model_files,
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
        callback=_model_files,
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
        "--gguf-file", help="The .gguf file inside MODEL (a folder or hub repo).", callback=_model_files,
        rich_help_panel=MODEL_PANEL,
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
        autocompletion=complete_dtype,
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
Chat = Annotated[bool, typer.Option("--chat", help="Wrap the prompt in the model's chat template.")]
System = Annotated[Optional[str], typer.Option(help="A system message for --chat.", show_default=False)]
TextFile = Annotated[
    Optional[Path],
    typer.Option("--file", "-f", help="Read the text from a UTF-8 file.", rich_help_panel=INPUT_PANEL,
                 show_default=False, metavar="PATH"),
]

# The decoding knobs of generate and compare: None means "not given" (the strategy's own default then
# applies); the core checks the values, so both commands refuse the same ones with the same words.
Temperature = Annotated[
    Optional[float],
    typer.Option("--temperature", "-t", help="Divide the logits by T before sampling (0: always the top token). "
                 "Default 1.", show_default=False, rich_help_panel=DECODING_PANEL),
]
TopK = Annotated[
    Optional[int],
    typer.Option("--top-k", "-k", help="Sample among the K most likely tokens. Default for top-k: 50.",
                 show_default=False, rich_help_panel=DECODING_PANEL),
]
TopP = Annotated[
    Optional[float],
    typer.Option("--top-p", "-p", help="Sample from the smallest set of tokens holding P of the probability. "
                 "Default for top-p: 0.9.", show_default=False, rich_help_panel=DECODING_PANEL),
]
MinP = Annotated[
    Optional[float],
    typer.Option("--min-p", help="Keep tokens at least P times as likely as the top one. Default for min-p: 0.05.",
                 show_default=False, rich_help_panel=DECODING_PANEL),
]
TypicalP = Annotated[
    Optional[float],
    typer.Option("--typical-p", help="Typical sampling's mass. Default for typical: 0.9.", show_default=False,
                 rich_help_panel=DECODING_PANEL),
]
NumBeams = Annotated[
    Optional[int],
    typer.Option("--num-beams", "-b", help="Beams for beam search. Default for beam: 4.", show_default=False,
                 rich_help_panel=DECODING_PANEL),
]
MaxNewTokens = Annotated[
    int, typer.Option("--max-new-tokens", "-n", help="Stop after N new tokens.", rich_help_panel=DECODING_PANEL)
]
RepetitionPenalty = Annotated[
    float,
    typer.Option("--repetition-penalty", help="Make tokens already in the text less likely (1: off).",
                 rich_help_panel=DECODING_PANEL),
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
    from llmscope.loading.model import LoadSpec

    return LoadSpec(
        model=model, revision=revision, gguf_file=gguf_file, device=device, dtype=dtype,
        trust_remote_code=trust_remote_code,
    )
