"""``llmscope compare``: several decoding strategies on one prompt, side by side."""

from __future__ import annotations

from typing import Annotated

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope compare "Once upon a time"                  [dim]# greedy, sample, top-k, top-p, beam[/dim]
  llmscope compare "Once upon a time" --strategies greedy,top-p=0.5,top-p=0.95,min-p --seed 3
  llmscope compare "The meaning of life is" --temperature 0.7 --max-new-tokens 60 --json
  llmscope compare "Write a limerick" --chat -m HuggingFaceTB/SmolLM2-135M-Instruct
"""


def command(
    prompt: Annotated[str, typer.Argument(help="The text the model continues.", show_default=False)],
    model: opt.Model = None,
    strategies: Annotated[
        str,
        typer.Option(
            "--strategies", "-S",
            help="Comma-separated: greedy, sample, top-k, top-p, min-p, typical, beam. NAME=VALUE sets that row's "
                 "own value (sample=T, top-k=K, top-p=P, min-p=P, typical=P, beam=BEAMS).",
            rich_help_panel=opt.DECODING_PANEL, autocompletion=opt.complete_strategies,
        ),
    ] = "greedy,sample,top-k,top-p,beam",
    temperature: opt.Temperature = None,
    top_k: opt.TopK = None,
    top_p: opt.TopP = None,
    min_p: opt.MinP = None,
    typical_p: opt.TypicalP = None,
    num_beams: opt.NumBeams = None,
    max_new_tokens: opt.MaxNewTokens = 40,
    repetition_penalty: opt.RepetitionPenalty = 1.0,
    seed: opt.Seed = 0,
    chat: opt.Chat = False,
    system: opt.System = None,
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
    share of repeated 4-grams, the length and the time. Each option sets its own strategy's value
    (--top-p the top-p row, --temperature every sampling row, --num-beams the beam row). Greedy and
    sampling rows run as one batch, one forward pass per step, each row with its own logits
    processors and seeded random generator, so every row is what `llmscope generate` writes with
    the same settings and seed.
    """
    from llmscope.decoding.sampling import parse_strategy_list
    from llmscope.text.prompts import check_prompt_options

    specs = parse_strategy_list(
        strategies, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p,
        num_beams=num_beams, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty, seed=seed,
    )
    check_prompt_options(prompt, chat=chat, system=system, allow_empty=True)  # both before the load

    from llmscope import render
    from llmscope.decoding.generation import compare
    from llmscope.render.decoding import render_comparison

    spec = opt.load_spec_from_options(model, revision, gguf_file, device, dtype, trust_remote_code)
    with render.status(f"Generating with {len(specs)} strategies"):  # the load inside shows its own status
        result = compare(prompt, model=spec, strategies=specs, chat=chat, system=system)
    render.warn(result.warnings)
    render.emit(result, render_comparison, json_=json_, export_path=export)
