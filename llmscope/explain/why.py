"""``llmscope why``: which parts of the prompt made the model say this.

What is explained, f, is ``log p(target | prompt)`` in nats, summed over the target's tokens read
teacher-forced; the target defaults to the model's top next token, and with ``versus`` f is
``log p(target) - log p(versus)`` ("why Paris rather than London"). Each unit of the prompt (a token,
a word or a sentence; ``text/spans.py``) gets a share of f by one of three methods
(``explain/attribution.py`` has the arithmetic, Captum's):

- ``grad-x-input``: sum over the unit's tokens of (df/de) . e, e the token's input embedding;
- ``integrated-gradients``: the same along the straight path from a baseline to the input, ``steps``
  points; the shares add up to f(x) - f(baseline) when the integral converged, and the gap
  (Captum's convergence delta) is reported with every result: over 5% of |f(x) - f(baseline)| it did
  not converge, and the numbers are no decomposition;
- ``occlusion``: f(x) - f(x with the whole unit replaced by baseline tokens), recomputed per unit.

The baseline is the pad token's embedding where the tokenizer has one, else zero. Special tokens (BOS,
template tokens) are held fixed, shown apart and flagged, with no attribution of their own. With
``generate=N`` the model writes N tokens and each is explained by the prompt and the tokens before it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from llmscope import loading
from llmscope.errors import UsageError
from llmscope.explain.attribution import METHODS
from llmscope.explain.rows import CONVERGED_SHARE, WhyUnit
from llmscope.progress import reporter
from llmscope.text.spans import BY

if TYPE_CHECKING:  # pragma: no cover
    from llmscope.decoding.sampling import DecodingSettings
    from llmscope.loading.model import LoadedModel

DEFAULT_STEPS = 32
MAX_GENERATE = 256
MAX_STEPS = 4096  # Captum's Gauss-Legendre rule is exact for smooth paths long before this


@dataclasses.dataclass(frozen=True)
class WhyStep:
    """One generated token explained by the prompt and the tokens generated before it."""

    token: str
    token_id: int
    f: float
    f_baseline: float | None
    gap: float | None
    converged: bool | None
    units: list[WhyUnit]
    check: float = dataclasses.field(default=0.0, repr=False)


@dataclasses.dataclass(frozen=True)
class WhyResult:
    model: str
    prompt: str
    text: str  # what the model read (the rendered template with chat)
    method: str
    by: str
    target: str
    target_ids: list[int]
    versus: str | None
    versus_ids: list[int] | None
    f: float  # nats
    f_baseline: float | None  # None for grad x input
    gap: float | None  # IG: sum of attributions - (f - f_baseline); None where it does not apply
    converged: bool | None
    n_steps: int | None  # IG's path points
    baseline: str | None  # "zero" or the token whose embedding is the baseline; None for grad x input
    baseline_id: int | None
    units: list[WhyUnit]
    check: float  # |f through inputs_embeds - f through input_ids|
    dtype: str
    steps: list[WhyStep] | None = None  # with generate: one row per generated token
    warnings: list[str] = dataclasses.field(default_factory=list)
    by_unit: dict[str, list[WhyUnit]] = dataclasses.field(default_factory=dict, repr=False)  # gradient methods

    @property
    def total(self) -> float:
        return sum(u.attribution for u in self.units if u.attribution is not None)


# --------------------------------------------------------------------------------------------
# Checks that need no model


def check_options(prompt: str, *, target: str | None = None, versus: str | None = None,
                  method: str = "integrated-gradients", by: str = "word", steps: int | None = None,
                  baseline: str | None = None, generate: int = 0, chat: bool = False,
                  system: str | None = None) -> None:
    """Every check that needs no model, one clear line each (exit 2)."""
    from llmscope.text.prompts import check_prompt_options

    check_prompt_options(prompt, chat=chat, system=system)
    if method not in METHODS:
        raise UsageError(f"`method={method!r}`: unknown method", hint=f"use one of: {', '.join(METHODS)}")
    if by not in BY:
        raise UsageError(f"`by={by!r}`: unknown unit", hint=f"use one of: {', '.join(BY)}")
    if target is not None and target == "":
        raise UsageError("`target=''`: the target is empty", hint="give the text to explain, e.g. ' Paris'")
    if versus is not None and versus == "":
        raise UsageError("`versus=''`: the text to compare with is empty")
    if versus is not None and versus == target:
        raise UsageError(f"`versus={versus!r}` is the target itself", hint="give another continuation to compare with")
    if steps is not None:
        if method != "integrated-gradients":
            raise UsageError(f"`steps={steps}` applies to integrated-gradients only, not to {method}")
        if steps < 1 or steps > MAX_STEPS:
            raise UsageError(f"`steps={steps}`: must be between 1 and {MAX_STEPS:,}",
                             hint="integrated gradients needs path points; 32 to 256 is usual")
    if baseline is not None:
        if method == "grad-x-input":
            raise UsageError(f"`baseline={baseline!r}`: grad-x-input has no baseline",
                             hint="use it with integrated-gradients or occlusion")
        if baseline == "":
            raise UsageError("`baseline=''` is empty", hint="give a token, or zero")
    if generate < 0 or generate > MAX_GENERATE:
        raise UsageError(f"`generate={generate}`: must be between 0 and {MAX_GENERATE}")
    if generate and (target is not None or versus is not None):
        flag = "target" if target is not None else "versus"
        raise UsageError(f"`{flag}` and `generate` do not go together: generate explains each token it writes")
    if versus is not None and target is None:
        raise UsageError("`versus` needs `target`", hint="name both continuations, e.g. ' Paris' and ' London'")


# --------------------------------------------------------------------------------------------
# Resolving the target and the baseline


def continuation_ids(lm: LoadedModel, text: str, option: str) -> list[int]:
    """TEXT as the token ids that continue a prompt (no special tokens added)."""
    ids = [int(i) for i in lm.tokenizer(text, add_special_tokens=False)["input_ids"]]
    if not ids:
        raise UsageError(f"`{option}={text!r}` has no tokens")
    return ids


def baseline_id(lm: LoadedModel, baseline: str | None, method: str) -> tuple[str | None, int | None]:
    """(what the baseline is called, its token id; None for zero): the pad token by default."""
    if method == "grad-x-input":
        return None, None
    tok = lm.tokenizer
    if baseline is None:
        pad = tok.pad_token_id
        return (str(tok.pad_token), int(pad)) if pad is not None else ("zero", None)
    if baseline == "zero":
        return "zero", None
    vocab = tok.get_vocab()
    if baseline in vocab:
        return baseline, int(vocab[baseline])
    ids = tok(baseline, add_special_tokens=False)["input_ids"]
    if len(ids) == 1:
        return baseline, int(ids[0])
    raise UsageError(f"`baseline={baseline!r}` is not a token of this model's vocabulary"
                     + (f" (it reads as {len(ids)} tokens)" if ids else ""),
                     hint="give one token (llmscope tokenize shows them), or zero")


def fixed_positions(lm: LoadedModel, encoded: Any) -> set[int]:
    """Tokens no method moves: special tokens, and with a chat template every token outside the messages."""
    from llmscope.text.prompts import message_spans, special_ids

    special = special_ids(lm.tokenizer)
    fixed = set(encoded.added) | {i for i, t in enumerate(encoded.ids) if t in special}
    if encoded.messages and encoded.offsets is not None:
        inside = message_spans(encoded.text, encoded.messages)
        for i, (s, e) in enumerate(encoded.offsets):
            if not any(a <= s and e <= b for a, b in inside) or e <= s:
                fixed.add(i)
    return fixed


# --------------------------------------------------------------------------------------------
# The work


def generated_tokens(lm: LoadedModel, prompt: str, n: int, settings: DecodingSettings | str | None, *,
                     chat: bool, system: str | None) -> tuple[list[int], list[str]]:
    """The N tokens the model writes after PROMPT with SETTINGS (greedy by default), and notes on them."""
    from llmscope.decoding.generation import generate
    from llmscope.decoding.sampling import as_settings

    chosen = dataclasses.replace(as_settings(settings), max_new_tokens=n)
    result = generate(prompt, model=lm, settings=chosen, chat=chat, system=system)
    notes = list(result.warnings)
    if not result.token_ids:
        from llmscope.errors import UsageError

        raise UsageError("the model generated no tokens to explain (it ended the text at once)",
                         hint="explain a --target instead")
    if result.stop_reason != "length":
        notes.append(f"the model stopped after {len(result.token_ids)} of {n} tokens ({result.stop_reason})")
    return list(result.token_ids), notes



def load_float32(model: loading.ModelLike, task: str = "predict a next token to explain"
                 ) -> tuple[LoadedModel, list[str]]:
    """MODEL loaded in float32 unless a dtype was asked for; a warning when the computation is not float32."""
    spec = loading.load_spec(model) if not isinstance(model, loading.LoadedModel) else None
    if spec is not None and spec.dtype == "auto":
        spec = dataclasses.replace(spec, dtype="float32")
    lm = loading.load(spec if spec is not None else model)
    lm.require_causal(task, hint="use a causal LM (GPT-2, Llama, Gemma)")
    warnings = []
    if lm.dtype != "float32":
        warnings.append(f"computed in {lm.dtype}, not float32: half precision can give NaN or "
                        "coarse attributions")
    return lm, warnings


def why(
    prompt: str,
    *,
    model: loading.ModelLike = None,
    target: str | None = None,
    versus: str | None = None,
    method: str = "integrated-gradients",
    by: str = "word",
    steps: int | None = None,
    baseline: str | None = None,
    generate: int = 0,
    settings: DecodingSettings | str | None = None,
    chat: bool = False,
    system: str | None = None,
) -> WhyResult:
    """Attribute f (log p(target | prompt), or target against versus) to the units of PROMPT.

    ``method`` is grad-x-input, integrated-gradients (``steps`` points, default 32) or occlusion; ``by``
    token, word or sentence; ``baseline`` a token or ``zero`` (default: the pad token, else zero).
    ``generate=N`` explains each of N generated tokens (``settings``: the strategy; default greedy).
    """
    from llmscope.explain.rows import columns, explain, top_next_token
    from llmscope.text.prompts import check_context, encode_for, token_text

    check_options(prompt, target=target, versus=versus, method=method, by=by, steps=steps, baseline=baseline,
                  generate=generate, chat=chat, system=system)
    n_steps = (steps or DEFAULT_STEPS) if method == "integrated-gradients" else None
    lm, warnings = load_float32(model)
    encoded = encode_for(lm, prompt, chat=chat, system=system)
    warnings = [*encoded.warnings, *warnings]
    fixed = fixed_positions(lm, encoded)
    base_name, base_id = baseline_id(lm, baseline, method)
    texts = [token_text(lm.tokenizer, t) for t in encoded.ids]
    common: dict[str, Any] = {"method": method, "by": by, "n_steps": n_steps, "baseline_id": base_id}
    if generate:
        tokens, notes = generated_tokens(lm, prompt, generate, settings, chat=chat, system=system)
        warnings += [n for n in notes if n not in warnings]
        rows = []
        with reporter().progress(f"Explaining {len(tokens)} generated tokens ({method})", total=len(tokens)) as bar:
            for k, token_id in enumerate(tokens):
                row = explain(lm, encoded, texts, fixed, [token_id], None, before=tokens[:k], **common)
                rows.append(WhyStep(token_text(lm.tokenizer, token_id), token_id, row.f, row.f_baseline, row.gap,
                                    row.converged, row.units, row.check))
                bar.advance()
        head = columns(lm, encoded, texts, fixed, by, tokens[:-1])
        gaps = [abs(r.gap) for r in rows if r.gap is not None]
        return WhyResult(
            model=lm.source.display_name, prompt=prompt, text=encoded.text, method=method, by=by,
            target="".join(r.token for r in rows), target_ids=list(tokens), versus=None, versus_ids=None,
            f=sum(r.f for r in rows), f_baseline=None, gap=max(gaps) if gaps else None,
            converged=None if not gaps else all(r.converged for r in rows), n_steps=n_steps, baseline=base_name,
            baseline_id=base_id, units=head, check=max(r.check for r in rows), dtype=lm.dtype, steps=rows,
            warnings=warnings)
    target_ids = continuation_ids(lm, target, "target") if target is not None else [top_next_token(lm, encoded.ids)]
    versus_ids = continuation_ids(lm, versus, "versus") if versus is not None else None
    if versus_ids == target_ids:
        raise UsageError(f"`versus={versus!r}` reads as the same tokens as the target")
    from llmscope.text.prompts import context_length

    longest = max(len(target_ids), len(versus_ids or []))
    check_context(len(encoded.ids), context_length(lm.config), extra=longest - 1, extra_what="target tokens")
    with reporter().status(f"Attributing with {method}" + (f" ({n_steps} steps)" if n_steps else "")):
        row = explain(lm, encoded, texts, fixed, target_ids, versus_ids, before=[], **common)
    return WhyResult(
        model=lm.source.display_name, prompt=prompt, text=encoded.text, method=method, by=by,
        target=lm.tokenizer.decode(target_ids) if target is None else target, target_ids=target_ids,
        versus=versus, versus_ids=versus_ids, f=row.f, f_baseline=row.f_baseline, gap=row.gap,
        converged=row.converged, n_steps=n_steps, baseline=base_name, baseline_id=base_id, units=row.units,
        check=row.check, dtype=lm.dtype, warnings=warnings, by_unit=row.by_unit)


__all__ = ["CONVERGED_SHARE", "WhyResult", "WhyStep", "WhyUnit", "check_options", "why"]
