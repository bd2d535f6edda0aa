"""``llmscope compare``: several decoding strategies on one prompt, side by side."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope compare "Once upon a time"                  [dim]# greedy, sample, top-k, top-p, beam[/dim]
  llmscope compare "Once upon a time" --strategies greedy,top-p=0.5,top-p=0.95,min-p --seed 3
  llmscope compare "The meaning of life is" --temperature 0.7 --max-new-tokens 60 --json
  llmscope compare "Write a limerick" --chat -m HuggingFaceTB/SmolLM2-135M-Instruct
"""

DECODING_PANEL = "Decoding"


def command(
    prompt: Annotated[str, typer.Argument(help="The text the model continues.", show_default=False)],
    model: opt.Model = None,
    strategies: Annotated[
        str,
        typer.Option(
            "--strategies", "-S",
            help="Comma-separated: greedy, sample, top-k, top-p, min-p, typical, beam. NAME=VALUE sets that row's "
                 "own value (sample=T, top-k=K, top-p=P, min-p=P, typical=P, beam=BEAMS).",
            rich_help_panel=DECODING_PANEL, autocompletion=opt.complete_strategies,
        ),
    ] = "greedy,sample,top-k,top-p,beam",
    temperature: Annotated[
        Optional[float],
        typer.Option("--temperature", "-t", help="Temperature of every sampling row. Default 1.", show_default=False,
                     rich_help_panel=DECODING_PANEL),
    ] = None,
    top_k: Annotated[
        Optional[int],
        typer.Option("--top-k", "-k", help="K of the top-k row. Default 50.", show_default=False,
                     rich_help_panel=DECODING_PANEL),
    ] = None,
    top_p: Annotated[
        Optional[float],
        typer.Option("--top-p", "-p", help="P of the top-p row. Default 0.9.", show_default=False,
                     rich_help_panel=DECODING_PANEL),
    ] = None,
    min_p: Annotated[
        Optional[float],
        typer.Option("--min-p", help="P of the min-p row. Default 0.05.", show_default=False,
                     rich_help_panel=DECODING_PANEL),
    ] = None,
    typical_p: Annotated[
        Optional[float],
        typer.Option("--typical-p", help="Mass of the typical row. Default 0.9.", show_default=False,
                     rich_help_panel=DECODING_PANEL),
    ] = None,
    num_beams: Annotated[
        Optional[int],
        typer.Option("--num-beams", "-b", help="Beams of the beam row. Default 4.", show_default=False,
                     rich_help_panel=DECODING_PANEL),
    ] = None,
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", "-n", help="Stop each row after N new tokens.",
                          rich_help_panel=DECODING_PANEL)
    ] = 40,
    repetition_penalty: Annotated[
        float,
        typer.Option("--repetition-penalty", help="For every row: make tokens already in the text less likely (1: off).",
                     rich_help_panel=DECODING_PANEL),
    ] = 1.0,
    seed: opt.Seed = 0,
    chat: Annotated[bool, typer.Option("--chat", help="Wrap the prompt in the model's chat template.")] = False,
    system: Annotated[Optional[str], typer.Option(help="A system message for --chat.", show_default=False)] = None,
    revision: opt.Revision = None,
    gguf_file: opt.GgufFile = None,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "auto",
    trust_remote_code: opt.TrustRemoteCode = False,
    json_: opt.Json = False,
    export: opt.Export = None,
) -> None:
    """Run several decoding strategies on one prompt and show them side by side.

    For each: the text, the model's mean log-probability per token, distinct-1/2 (diversity), the
    share of repeated 4-grams, the length and the time. Greedy and sampling rows run as one batch,
    one forward pass per step, each row with its own logits processors and seeded random
    generator, so every row is what `llmscope generate` writes with the same settings and seed.
    """
    from llmscope.text.prompts import check_prompt_options
    from llmscope.decoding.sampling import parse_strategy_list

    specs = parse_strategy_list(
        strategies, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p,
        num_beams=num_beams, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty, seed=seed,
    )
    check_prompt_options(prompt, chat=chat, system=system, allow_empty=True)  # before the load

    from llmscope import loading, render
    from llmscope.decoding.generation import compare
    from llmscope.render.decoding import render_comparison

    with render.status("Loading the model"):
        lm = loading.load(
            model, revision=revision, gguf_file=gguf_file, device=device, dtype=dtype,
            trust_remote_code=trust_remote_code,
        )
    with render.status(f"Generating with {len(specs)} strategies"):
        result = compare(prompt, model=lm, strategies=specs, chat=chat, system=system, max_new_tokens=max_new_tokens,
                         seed=seed)
    render.emit(result, render_comparison, json_=json_, export_path=export)
