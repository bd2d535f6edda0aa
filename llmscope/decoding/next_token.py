"""What the model would say next: the next-token distribution, the knobs that reshape it (or, for
masked LMs, what each mask token should be); the result types live in ``llmscope.decoding.distribution``.

Every probability is ``softmax(model(input_ids).logits[0, -1])`` in the model's dtype. Temperature
and top-p are transformers' own logits warpers (``llmscope.decoding.sampling``), applied in the order
``generate`` applies them, so the "sampled" column shows exactly what sampling draws from. ``top_k``
is how many candidates are shown: it never filters what is sampled. ``steps`` decodes on the KV
cache (``llmscope.decoding.stepping``) exactly as ``generate`` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmscope import loading
from llmscope.text import prompts
from llmscope.decoding.distribution import MaskPrediction, NextTokenResult, distribution, sequence_logprob
from llmscope.errors import UsageError
from llmscope.loading.model import LoadedModel

if TYPE_CHECKING:  # pragma: no cover
    pass


# --------------------------------------------------------------------------------------------
# The core function


def next_token(
    prompt: str,
    *,
    model: loading.ModelLike = None,
    top_k: int = 10,
    temperature: float = 1.0,
    top_p: float | None = None,
    show: Sequence[str] = (),
    steps: int = 0,
    strategy: str = "greedy",
    chat: bool = False,
    system: str | None = None,
    seed: int = 0,
    revision: str | None = None,
    gguf_file: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
) -> NextTokenResult:
    """The model's next-token distribution after PROMPT (or each mask's, for a masked LM).

    ``top_k`` is how many candidates are shown. With ``steps`` > 0, decode that many tokens on the
    KV cache exactly as ``generate`` would (``greedy``; or ``sample`` with the temperature, top-p and
    seed), stopping early at a stop token as ``generate`` does (with ``chat``, end-of-turn tokens too).
    """
    import torch

    from llmscope.decoding.stepping import Stepper, check_knobs, result_from

    check_knobs(top_k=top_k, temperature=temperature, top_p=top_p, steps=steps, strategy=strategy, seed=seed)
    prompts.check_prompt_options(prompt, chat=chat, system=system)
    lm = loading.load(model, revision=revision, gguf_file=gguf_file, device=device, dtype=dtype,
                      trust_remote_code=trust_remote_code)
    if lm.masked:
        if steps:
            raise UsageError("--steps needs a causal LM; a masked LM fills in its mask tokens instead")
        return _masked(lm, prompt, top_k=top_k, temperature=temperature, top_p=top_p, show=show, seed=seed,
                       strategy=strategy, chat=chat)
    encoded = prompts.encode_for(lm, prompt, chat=chat, system=system, extra=steps, extra_what="steps")
    ids = encoded.ids
    seq: dict[str, tuple[float | None, float | None]] = {}
    for s in show:
        sid = lm.tokenizer(s, add_special_tokens=False)["input_ids"]
        if len(sid) > 1:
            lp = sequence_logprob(lm, ids, list(sid))
            seq[s] = (math.exp(lp), lp)
    run = Stepper(lm, ids, top_k=top_k, temperature=temperature, top_p=top_p, strategy=strategy, seed=seed,
                  chat=chat)
    first = run.distribution
    if show:
        first = distribution(lm, run.logits, torch.tensor([ids], device=run.logits.device), position=len(ids) - 1,
                             top_k=top_k, temperature=temperature, top_p=top_p, show=show, show_logprobs=seq)
    stop = run.run(steps) if steps else None
    return result_from(run, prompt=prompt, text=encoded.text, initial=first, seed=seed, stop_reason=stop,
                       warnings=encoded.warnings)


def _masked(lm: LoadedModel, prompt: str, *, top_k: int, temperature: float, top_p: float | None,
            show: Sequence[str], seed: int, strategy: str, chat: bool) -> NextTokenResult:
    import torch

    tokenizer = lm.tokenizer
    mask = tokenizer.mask_token
    if chat:
        raise UsageError("--chat is for chat (causal) models; this is a masked LM")
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
            distribution=distribution(lm, logits[p], input_ids, position=p, top_k=top_k, temperature=temperature,
                                      top_p=top_p, show=show),
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
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        strategy=strategy,
        seed=seed,
        distribution=None,
        masks=masks,
        steps=[],
        generated_text="",
        stop_reason=None,
        warnings=list(encoded.warnings),
    )


# The name in ``llmscope``'s lazy API: ``llmscope.decoding.next_token`` is this module once it is imported.
predict_next_token = next_token
