"""``llmscope generate``: write text with one decoding strategy, streamed, with its speed and confidence."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope generate "The capital of France is"               [dim]# greedy, the embedded Gemma 3 270M[/dim]
  llmscope generate "Once upon a time" --strategy top-p --top-p 0.9 --temperature 0.8 --seed 1
  llmscope generate "Once upon a time" --strategy beam --num-beams 4
  llmscope generate "Write a haiku about the sea" --chat --show-probs
  llmscope generate "Once upon a time" --no-kv-cache         [dim]# see what the KV cache buys[/dim]
  llmscope generate "Hello" -m gpt2 --strategy min-p --json
"""


def command(
    prompt: Annotated[str, typer.Argument(help="The text the model continues.", show_default=False)],
    model: opt.Model = None,
    strategy: Annotated[
        Optional[str],
        typer.Option(
            "--strategy", "-s",
            help="greedy, sample, top-k, top-p, min-p, typical or beam. Default: from the options given, "
                 "else greedy.",
            show_default=False, rich_help_panel=opt.DECODING_PANEL, autocompletion=opt.complete_strategy,
        ),
    ] = None,
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
    show_probs: Annotated[
        bool, typer.Option("--show-probs", help="Colour each token by the probability the model gave it.")
    ] = False,
    kv_cache: Annotated[
        bool,
        typer.Option("--kv-cache/--no-kv-cache",
                     help="--no-kv-cache recomputes the whole text every step, then runs again with the cache and "
                          "reports the speed-up."),
    ] = True,
    revision: opt.Revision = None,
    gguf_file: opt.GgufFile = None,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "auto",
    trust_remote_code: opt.TrustRemoteCode = False,
    json_: opt.Json = False,
    export: opt.Export = None,
) -> None:
    """Generate text with one decoding strategy, streamed as it is written.

    Afterwards: tokens generated, time to first token, tokens per second, the mean log-probability
    and perplexity of the generated tokens under the model, and why it stopped (EOS or length).
    Sampling is seeded: the same seed always gives the same text.
    """
    from llmscope.decoding.sampling import settings_for
    from llmscope.text.prompts import check_prompt_options

    knobs = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p,
                 num_beams=num_beams, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty, seed=seed)
    settings = settings_for(strategy, **knobs)  # the strategy decides the view
    check_prompt_options(prompt, chat=chat, system=system, allow_empty=True)  # both before the load

    from llmscope import render
    from llmscope.decoding.generation import generate
    from llmscope.render.decoding import TokenStream, announce_generation, render_generation

    stream = None if json_ or settings.strategy == "beam" else TokenStream(prompt, chat=chat, show_probs=show_probs)
    if not json_:
        announce_generation(settings, kv_cache=kv_cache)
    spec = opt.load_spec_from_options(model, revision, gguf_file, device, dtype, trust_remote_code)
    try:
        result = generate(prompt, model=spec, settings=settings, chat=chat, system=system, kv_cache=kv_cache,
                          on_token=stream)
    except Exception:  # e.g. the model's probabilities stopped being finite after a few tokens
        if stream is not None:
            stream.cut()
        raise
    if stream is not None:
        stream.end()
    render.warn(result.warnings)
    render.emit(result, lambda r: render_generation(r, show_text=stream is None, show_probs=show_probs), json_=json_)
    if export is not None:
        render.export(render_generation(result, show_probs=show_probs), export, result=result)
