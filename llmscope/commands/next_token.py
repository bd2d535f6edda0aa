"""``llmscope next-token``: the next-token distribution, the sampling knobs, and decoding step by step."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope next-token "The capital of France is"          [dim]# the embedded Gemma 3 270M[/dim]
  llmscope next-token "The capital of France is" --show " Paris" --show " Lyon"
  llmscope next-token "Once upon a time" --temperature 0.7 --top-p 0.9   [dim]# what each knob keeps[/dim]
  llmscope next-token "Once upon a time" --steps 8 --top-p 0.9 --seed 1
  llmscope next-token "Once upon a time" --steps 8 --json
  llmscope next-token "Once upon a time" --interactive     [dim]# pick each token by hand[/dim]
  llmscope next-token "Paris is the [MASK] of France." -m bert-base-uncased
"""

PROMPT_HELP = (
    "Pick a rank, or type text to append ('\"' first to type a number); Enter or q to stop"
)


def command(
    prompt: Annotated[str, typer.Argument(help="The text the model reads.", show_default=False)],
    model: opt.Model = None,
    rows: Annotated[
        int, typer.Option("--rows", "-r", help="Show the N most likely tokens (a display choice: it filters nothing).")
    ] = 10,
    strategy: Annotated[
        Optional[str],
        typer.Option(
            "--strategy",
            help="How the distribution is reshaped and --steps picks: greedy, sample, top-k, top-p, min-p or typical, "
                 "as in generate. Default: from the options given, else greedy.",
            show_default=False, rich_help_panel=opt.DECODING_PANEL, autocompletion=opt.complete_next_token_strategy,
        ),
    ] = None,
    temperature: opt.Temperature = None,
    top_k: opt.TopK = None,
    top_p: opt.TopP = None,
    min_p: opt.MinP = None,
    typical_p: opt.TypicalP = None,
    repetition_penalty: opt.RepetitionPenalty = 1.0,
    seed: opt.Seed = 0,
    show: Annotated[
        Optional[list[str]],
        typer.Option("--show", "-s", help="Also show the probability of this text coming next (repeatable).",
                     show_default=False),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", "-n", help="Decode N tokens on the KV cache, one row per step.")] = 0,
    interactive: Annotated[
        bool, typer.Option("--interactive", "-i", help="Pick each next token yourself, or type your own text.")
    ] = False,
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
    """Show the tokens the model weighs next, and how temperature, top-k and top-p reshape them.

    One forward pass gives the probability of every token in the vocabulary; the table shows the
    top N with their log-probabilities and running total, and the entropy of the whole
    distribution. The decoding options mean what they mean in generate: with --temperature,
    --top-k or --top-p the table shows the tempered probabilities, which tokens each filter keeps
    or cuts, and what sampling draws with. With --steps the model decodes on its KV cache (the
    prompt is computed once) with those settings; with --interactive you choose each token. For a
    masked LM (BERT), each mask token in the prompt is predicted instead.
    """
    from llmscope.decoding.sampling import settings_for
    from llmscope.decoding.stepping import check_knobs, step_settings
    from llmscope.errors import UsageError

    check_knobs(rows=rows, steps=steps)
    settings = step_settings(settings_for(strategy, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                                          typical_p=typical_p, repetition_penalty=repetition_penalty, seed=seed))
    if interactive and steps:
        raise UsageError("`interactive` and `steps` do not go together", hint="choose one")

    from llmscope import render
    from llmscope.render.next_token import render_next_token

    spec = opt.load_spec_from_options(model, revision, gguf_file, device, dtype, trust_remote_code)
    knobs = dict(model=spec, rows=rows, settings=settings, chat=chat, system=system)
    if interactive:
        result = run_interactive(prompt, json_=json_, **knobs)
    else:
        from llmscope.decoding.next_token import next_token

        result = next_token(prompt, show=tuple(show or ()), steps=steps, **knobs)
        render.warn(result.warnings)
    render.emit(result, render_next_token, json_=json_, export_path=export)


def run_interactive(prompt: str, *, json_: bool = False, **kwargs: object):
    """The interactive loop: show the candidates, read a choice, continue from it on the cache."""
    from llmscope import render
    from llmscope.errors import UsageError
    from llmscope.decoding.stepping import result_from, stepper
    from llmscope.render.next_token import render_step_choices

    run = stepper(prompt, **kwargs)  # type: ignore[arg-type]
    render.warn(run.warnings)
    initial = run.distribution
    console = render.stderr if json_ else render.stdout
    tokenizer = run.lm.tokenizer
    stop = "stopped"
    while True:
        console.print(render_step_choices(run))
        if run.room is not None and run.room <= 0:
            stop = "context"
            break
        try:
            answer = typer.prompt(PROMPT_HELP, default="", show_default=False, err=True)
        except (typer.Abort, EOFError):
            break
        except UnicodeDecodeError:
            render.stderr.print("[yellow]The answer is not valid UTF-8: stopping here.[/yellow]")
            break
        if answer.strip().lower() in ("", "q", "quit"):
            break
        stripped = answer.strip()
        try:
            if stripped.isdigit():
                rank = int(stripped)
                if not 1 <= rank <= len(run.candidates):
                    render.stderr.print(f"[yellow]No rank {rank}: pick 1 to {len(run.candidates)}[/yellow]")
                    continue
                run.advance([run.candidates[rank - 1].id])
            else:
                text = answer[1:] if answer.startswith('"') else answer
                ids = tokenizer(text, add_special_tokens=False)["input_ids"]
                run.advance(list(ids), typed=True, text=text)
        except UsageError as exc:
            render.stderr.print(f"[yellow]{exc}[/yellow]")
            if run.room is not None and run.room <= 0:
                stop = "context"
                break
    return result_from(run, prompt=prompt, text=run.text, initial=initial, stop_reason=stop)
