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

DECODING_PANEL = "Decoding"


def command(
    prompt: Annotated[str, typer.Argument(help="The text the model continues.", show_default=False)],
    model: opt.Model = None,
    strategy: Annotated[
        Optional[str],
        typer.Option(
            "--strategy", "-s",
            help="greedy, sample, top-k, top-p, min-p, typical or beam. Default: from the options given, "
                 "else greedy.",
            show_default=False, rich_help_panel=DECODING_PANEL, autocompletion=opt.complete_strategy,
        ),
    ] = None,
    temperature: Annotated[
        Optional[float],
        typer.Option("--temperature", "-t", help="Divide the logits by T before sampling (0: always the top token). "
                     "Default 1.", show_default=False, rich_help_panel=DECODING_PANEL),
    ] = None,
    top_k: Annotated[
        Optional[int],
        typer.Option("--top-k", "-k", help="Sample among the K most likely tokens. Default for top-k: 50.",
                     show_default=False, rich_help_panel=DECODING_PANEL),
    ] = None,
    top_p: Annotated[
        Optional[float],
        typer.Option("--top-p", "-p", help="Sample from the smallest set of tokens holding P of the probability. "
                     "Default for top-p: 0.9.", show_default=False, rich_help_panel=DECODING_PANEL),
    ] = None,
    min_p: Annotated[
        Optional[float],
        typer.Option("--min-p", help="Keep tokens at least P times as likely as the top one. Default for min-p: 0.05.",
                     show_default=False, rich_help_panel=DECODING_PANEL),
    ] = None,
    typical_p: Annotated[
        Optional[float],
        typer.Option("--typical-p", help="Typical sampling's mass. Default for typical: 0.9.", show_default=False,
                     rich_help_panel=DECODING_PANEL),
    ] = None,
    num_beams: Annotated[
        Optional[int],
        typer.Option("--num-beams", "-b", help="Beams for beam search. Default for beam: 4.", show_default=False,
                     rich_help_panel=DECODING_PANEL),
    ] = None,
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", "-n", help="Stop after N new tokens.", rich_help_panel=DECODING_PANEL)
    ] = 40,
    repetition_penalty: Annotated[
        float,
        typer.Option("--repetition-penalty", help="Make tokens already in the text less likely (1: off).",
                     rich_help_panel=DECODING_PANEL),
    ] = 1.0,
    seed: opt.Seed = 0,
    chat: Annotated[bool, typer.Option("--chat", help="Wrap the prompt in the model's chat template.")] = False,
    system: Annotated[Optional[str], typer.Option(help="A system message for --chat.", show_default=False)] = None,
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
    from llmscope.text.prompts import check_prompt_options
    from llmscope.decoding.sampling import settings_for

    settings = settings_for(
        strategy, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p,
        num_beams=num_beams, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty, seed=seed,
    )
    check_prompt_options(prompt, chat=chat, system=system, allow_empty=True)  # before the load

    from rich.text import Text

    from llmscope import loading, render
    from llmscope.decoding.generation import GeneratedToken, generate
    from llmscope.render.decoding import prob_style, render_generation

    with render.status("Loading the model"):
        lm = loading.load(
            model, revision=revision, gguf_file=gguf_file, device=device, dtype=dtype,
            trust_remote_code=trust_remote_code,
        )
    stream = not json_ and settings.strategy != "beam"
    out = render.stdout

    def on_token(token: GeneratedToken) -> None:
        if token.index == 0 and not chat:  # the prompt first, once the model has accepted it
            out.print(Text(prompt, style="dim"), end="", soft_wrap=True)
        if token.text:
            out.print(Text(token.text, style=prob_style(token.prob) if show_probs else ""), end="", soft_wrap=True)
            out.file.flush()

    if settings.strategy == "beam" and not json_:
        render.stderr.print(f"[dim]Beam search with {settings.num_beams} beams: the text comes when it is done.[/dim]")
    if not kv_cache and not json_:
        render.stderr.print("[dim]Generating without the KV cache, then again with it to compare.[/dim]")
    result = generate(
        prompt, model=lm, strategy=settings.strategy, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
        typical_p=typical_p, num_beams=num_beams, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty,
        seed=seed, chat=chat, system=system, kv_cache=kv_cache, on_token=on_token if stream else None,
    )
    if stream:
        out.print()
        out.print()
    render.warn(result.warnings)

    def stats(r: object) -> object:
        return render_generation(r, show_text=not stream, show_probs=show_probs)  # type: ignore[arg-type]

    render.emit(result, stats, json_=json_)
    if export is not None:
        render.export(render_generation(result, show_probs=show_probs), export, result=result)
