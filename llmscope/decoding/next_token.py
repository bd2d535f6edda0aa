"""What the model would say next: the next-token distribution, the knobs that reshape it (or, for
masked LMs, what each mask token should be); the result types live in ``llmscope.decoding.distribution``.

Every probability is ``softmax(model(input_ids).logits[0, -1])`` in the model's dtype. The temperature
and the filters (top-k, top-p, min-p, typical) are transformers' own logits warpers
(``llmscope.decoding.sampling``), applied in the order ``generate`` applies them, so the "sampled" column
shows exactly what sampling draws from. ``rows`` is how many candidates are shown: it never filters.
``steps`` decodes on the KV cache (``llmscope.decoding.stepping``) exactly as ``generate`` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmscope import loading
from llmscope.text import prompts
from llmscope.decoding.distribution import DEFAULT_ROWS, MaskPrediction, NextTokenResult, distribution, sequence_logprob
from llmscope.errors import UsageError
from llmscope.loading.model import LoadedModel

if TYPE_CHECKING:  # pragma: no cover
    from llmscope.decoding.sampling import DecodingSettings


# --------------------------------------------------------------------------------------------
# The core function


def next_token(
    prompt: str,
    *,
    model: loading.ModelLike = None,
    rows: int = DEFAULT_ROWS,
    settings: DecodingSettings | str | None = None,
    show: Sequence[str] = (),
    steps: int = 0,
    chat: bool = False,
    system: str | None = None,
) -> NextTokenResult:
    """The model's next-token distribution after PROMPT (or each mask's, for a masked LM).

    ``rows`` is how many candidates are shown. ``settings`` (a ``DecodingSettings`` from
    ``settings_for``, a strategy name, or None for greedy) reshape the distribution shown (the
    temperature, each filter's verdict, what sampling draws with) and choose the tokens of ``steps``:
    that many decoded on the KV cache exactly as ``generate`` would with the same settings, stopping
    early at a stop token as ``generate`` does (with ``chat``, end-of-turn tokens too).
    """
    import torch

    from llmscope.decoding.stepping import Stepper, check_knobs, result_from, step_settings

    check_knobs(rows=rows, steps=steps)
    settings = step_settings(settings)
    prompts.check_prompt_options(prompt, chat=chat, system=system)
    lm = loading.load(model)
    if lm.masked:
        if steps:
            raise UsageError("`steps` needs a causal LM; a masked LM fills in its mask tokens instead")
        return _masked(lm, prompt, rows=rows, settings=settings, show=show, chat=chat)
    encoded = prompts.encode_for(lm, prompt, chat=chat, system=system, extra=steps, extra_what="steps")
    ids = encoded.ids
    seq: dict[str, tuple[float | None, float | None]] = {}
    for s in show:
        sid = lm.tokenizer(s, add_special_tokens=False)["input_ids"]
        if len(sid) > 1:
            lp = sequence_logprob(lm, ids, list(sid))
            seq[s] = (math.exp(lp), lp)
    run = Stepper(lm, ids, rows=rows, settings=settings, chat=chat)
    first = run.distribution
    if show:
        first = distribution(lm, run.logits, torch.tensor([ids], device=run.logits.device), position=len(ids) - 1,
                             rows=rows, settings=settings, show=show, show_logprobs=seq)
    stop = run.run(steps) if steps else None
    return result_from(run, prompt=prompt, text=encoded.text, initial=first, stop_reason=stop,
                       warnings=list(encoded.warnings) + list(settings.notes))


def _masked(lm: LoadedModel, prompt: str, *, rows: int, settings: DecodingSettings, show: Sequence[str],
            chat: bool) -> NextTokenResult:
    import torch

    tokenizer = lm.tokenizer
    mask = tokenizer.mask_token
    if chat:
        raise UsageError("`chat=True` is for chat (causal) models; this is a masked LM")
    if mask is None or tokenizer.mask_token_id is None:
        raise UsageError(f"{lm.source.display_name}: a masked LM whose tokenizer has no mask token")
    encoded = prompts.encode_for(lm, prompt)
    ids = encoded.ids
    positions = [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id]
    if not positions:
        raise UsageError(
            f"the prompt has no {mask} token: this is a masked LM, which predicts mask tokens",
            hint=f"put {mask} where a word should be predicted, e.g. 'The capital of France is {mask}.'",
        )
    input_ids = torch.tensor([ids], device=lm.device)  # (1, tokens)
    with torch.inference_mode():
        logits = lm.model(input_ids=input_ids).logits[0]  # (tokens, vocab)
    masks = [
        MaskPrediction(
            position=p,
            distribution=distribution(lm, logits[p], input_ids, position=p, rows=rows, settings=settings, show=show),
        )
        for p in positions
    ]
    return NextTokenResult(
        model=lm.source.display_name,
        kind="masked",
        prompt=prompt,
        text=encoded.text,
        input_ids=ids,
        input_tokens=[prompts.token_text(tokenizer, t) for t in ids],
        dtype=lm.dtype,
        settings=settings,
        rows=rows,
        distribution=None,
        masks=masks,
        steps=[],
        generated_text="",
        stop_reason=None,
        warnings=list(encoded.warnings) + list(settings.notes),
    )


# The name in ``llmscope``'s lazy API: ``llmscope.decoding.next_token`` is this module once it is imported.
predict_next_token = next_token
