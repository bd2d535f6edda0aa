"""``llmscope why``: which parts of the prompt made the model say this (gradient, IG and occlusion attribution)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmscope import _options as opt

EPILOG = """[bold]Examples[/bold]

  llmscope why "The capital of France is" --target " Paris"    [dim]# the embedded Gemma 3 270M[/dim]
  llmscope why "The capital of France is" --target " Paris" --versus " London"
  llmscope why "The cat sat on the mat because it was" --method occlusion --by token
  llmscope why "Once upon a time" --generate 8 --method grad-x-input
  llmscope why "The capital of France is" --target " Paris" --steps 128 --export why.html
"""
PANEL = "Attribution"


def command(
    prompt: Annotated[str, typer.Argument(help="The text the model reads.", show_default=False)],
    model: opt.Model = None,
    target: Annotated[
        Optional[str],
        typer.Option("--target", "-t", help="The continuation to explain (its log-probability, teacher-forced). "
                     "Default: the model's top next token.", show_default=False, rich_help_panel=PANEL),
    ] = None,
    versus: Annotated[
        Optional[str],
        typer.Option("--versus", help="Explain log p(target) - log p(VERSUS): why the target rather than this.",
                     show_default=False, rich_help_panel=PANEL),
    ] = None,
    method: Annotated[
        str,
        typer.Option("--method", help="grad-x-input, integrated-gradients or occlusion.", rich_help_panel=PANEL,
                     autocompletion=opt.complete_why_method),
    ] = "integrated-gradients",
    by: Annotated[
        str,
        typer.Option("--by", help="The units: token, word or sentence (word and sentence sum their tokens; "
                     "occlusion replaces the whole unit).", rich_help_panel=PANEL,
                     autocompletion=opt.complete_why_unit),
    ] = "word",
    steps: Annotated[
        Optional[int],
        typer.Option("--steps", help="Integrated gradients' path points. Default: 32.", show_default=False,
                     rich_help_panel=PANEL),
    ] = None,
    baseline: Annotated[
        Optional[str],
        typer.Option("--baseline", help="A token whose embedding is the baseline, or zero. Default: the pad "
                     "token where the tokenizer has one, else zero.", metavar="TOKEN|zero", show_default=False,
                     rich_help_panel=PANEL),
    ] = None,
    generate: Annotated[
        int,
        typer.Option("--generate", help="Generate N tokens and explain each by the prompt and the tokens before it "
                     "(--strategy and its options choose them; default greedy).", metavar="N",
                     rich_help_panel=PANEL),
    ] = 0,
    strategy: Annotated[
        Optional[str],
        typer.Option("--strategy", "-s", help="With --generate: greedy, sample, top-k, top-p, min-p, typical or "
                     "beam.", show_default=False, rich_help_panel=opt.DECODING_PANEL,
                     autocompletion=opt.complete_strategy),
    ] = None,
    temperature: opt.Temperature = None,
    top_k: opt.TopK = None,
    top_p: opt.TopP = None,
    seed: opt.Seed = 0,
    top: Annotated[int, typer.Option("--top", help="Units listed in the table.", min=1)] = 10,
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
    """Explain a prediction: each word (token, sentence) of the prompt's share of the target's log-probability.

    f is log p(target | prompt) in nats (the target defaults to the model's top next token; with --versus,
    log p(target) - log p(versus)). integrated-gradients attributes f(x) - f(baseline) along the straight
    path from the baseline (the pad token's embedding, or zero) and prints its completeness gap: over 5%
    of the difference it did not converge, and says so. occlusion replaces each unit by the baseline and
    recomputes f; grad-x-input is the gradient times the input embedding. Special tokens (BOS, chat
    template tokens) stay fixed and are shown apart. Computed in float32 unless --dtype says otherwise.
    """
    from llmscope.decoding.sampling import settings_for
    from llmscope.explain.why import check_options

    check_options(prompt, target=target, versus=versus, method=method, by=by, steps=steps, baseline=baseline,
                  generate=generate, chat=chat, system=system)  # before the load: one line, exit 2
    settings = None
    if generate:
        settings = settings_for(strategy, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                                max_new_tokens=generate)

    from llmscope import render
    from llmscope.explain.why import why
    from llmscope.render.why import render_why

    spec = opt.load_spec_from_options(model, revision, gguf_file, device, dtype, trust_remote_code)
    result = why(prompt, model=spec, target=target, versus=versus, method=method, by=by, steps=steps,
                 baseline=baseline, generate=generate, settings=settings, chat=chat, system=system)
    render.warn(result.warnings)
    render.emit(result, lambda r: render_why(r, top=top), json_=json_, export_path=export)
