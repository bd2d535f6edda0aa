"""One prompt path: option checks before any load, the chat template, ids, context length, tokens as text.

Every command that takes a prompt goes through here, so a template that refuses the messages, an
empty ``--system``, or a prompt longer than the context behaves the same in all of them.
``apply_chat_template`` is called in this module only.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from llmscope.config.values import context_length
from llmscope.errors import ModelFormatError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

    from llmscope.loading.model import LoadedModel

TOKENIZER = "tokenizer"
CHAT_TEMPLATE = "chat template"
TEMPLATE_EXTRA_CHARS = 16 * 2**20  # what a template may write besides the messages


@dataclasses.dataclass(frozen=True)
class EncodedPrompt:
    """What the model reads: the text (the rendered template with chat), its ids, and notes."""

    text: str
    ids: list[int]
    offsets: list[tuple[int, int]] | None  # character spans into ``text`` (None: slow tokenizer)
    added: dict[int, str]  # position -> who put that special token there: "tokenizer" / "chat template"
    warnings: list[str]
    messages: list[dict[str, str]] = dataclasses.field(default_factory=list)  # what the template rendered


# --------------------------------------------------------------------------------------------
# Checks that need no model


def check_prompt_options(
    prompt: str | None, *, chat: bool, system: str | None, allow_empty: bool = False
) -> None:
    """Raise UsageError for what is wrong before any model loads: a prompt that is not a str,
    empty (unless ``allow_empty``) or not valid Unicode, and ``system`` without ``chat``.
    ``prompt=None`` checks the options only."""
    if prompt is not None:
        if not isinstance(prompt, str):
            raise UsageError(f"the prompt must be a str, not {type(prompt).__name__}")
        if prompt == "" and not allow_empty:
            raise UsageError("the prompt is empty", hint="give some text for the model to read")
        try:
            prompt.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate: what Python makes of bytes that are not UTF-8
            raise UsageError(
                f"the text is not valid Unicode: a lone surrogate at character {exc.start}"
            ) from None
    if system is not None and not chat:
        raise UsageError("`system` needs `chat=True`", hint="add `chat=True`, or drop `system`")


# --------------------------------------------------------------------------------------------
# The chat template


def chat_messages(text: str, system: str | None) -> list[dict[str, str]]:
    """The messages --chat sends: a system message when ``system`` is not None (even ""), then TEXT."""
    system_part = [{"role": "system", "content": system}] if system is not None else []
    return [*system_part, {"role": "user", "content": text}]


def render_chat(tokenizer: PreTrainedTokenizerBase, name: str, text: str, system: str | None) -> str:
    """TEXT as a user message (after ``system``) through the tokenizer's chat template, with the
    generation prompt. The one ``apply_chat_template`` call in llmscope.

    A template that refuses the messages is the user's to fix (UsageError, exit 2); one that jinja's
    sandbox stops is the model's (ModelFormatError, exit 1)."""
    if not getattr(tokenizer, "chat_template", None):
        raise UsageError(
            f"{name} has no chat template",
            hint="`chat=True` needs an instruction-tuned model whose tokenizer carries one; drop `chat=True` for "
            "plain text",
        )
    messages = chat_messages(text, system)
    from llmscope.text.template_budget import TemplateOverBudget, TemplateRaised, render_bounded

    def render() -> str:  # in jinja's sandboxed environment, by transformers
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    try:
        # under a time and memory budget: the sandbox bounds range only (template_budget.py)
        return render_bounded(render, max_chars=len(text) + len(system or "") + TEMPLATE_EXTRA_CHARS)
    except TemplateOverBudget as exc:
        raise ModelFormatError(f"{name}: its chat template {exc.what}, and was stopped",
                               hint="the template may be malicious or broken; fix or replace it") from None
    except TemplateRaised as exc:
        first = exc.message or exc.kind
        # jinja's sandbox stopped the template: a forbidden access (SecurityError) or a loop over a
        # range beyond its limit (OverflowError "Range too big")
        if exc.kind in ("SecurityError", "OverflowError"):
            raise ModelFormatError(
                f"{name}: its chat template tried something jinja's sandbox forbids, and was stopped ({first})",
                hint="the template may be malicious; nothing was run",
            ) from None
        hint = "try without `system`" if system is not None else "check the messages the template expects"
        raise UsageError(f"{name}: its chat template refused these messages ({first})", hint=hint) from None


# --------------------------------------------------------------------------------------------
# Encoding


def special_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Ids of the tokenizer's special tokens, added special tokens included."""
    ids = {int(i) for i in tokenizer.all_special_ids if i is not None}
    for index, added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        if getattr(added, "special", False):
            ids.add(int(index))
    return ids


def _ids_and_offsets(
    tokenizer: PreTrainedTokenizerBase, text: str, add_special_tokens: bool
) -> tuple[list[int], list[tuple[int, int]] | None]:
    """ids exactly as ``tokenizer(text)`` gives them, and offsets where the tokenizer is fast."""
    if getattr(tokenizer, "is_fast", False):
        encoding = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        return list(encoding["input_ids"]), [(int(s), int(e)) for s, e in encoding["offset_mapping"]]
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]), None


def added_positions(ids: list[int], plain: list[int], special: set[int]) -> set[int]:
    """Positions in ``ids`` that are not part of ``plain`` (the ids without added special tokens)."""
    if len(plain) > len(ids):
        return set()
    # Usual case: plain is one contiguous run with specials only before and after it.
    for start in range(len(ids) - len(plain) + 1):
        if ids[start : start + len(plain)] == plain:
            outside = set(range(start)) | set(range(start + len(plain), len(ids)))
            if all(ids[i] in special for i in outside):
                return outside
    # Otherwise: align greedily, what does not match is added.
    added: set[int] = set()
    j = 0
    for i, token_id in enumerate(ids):
        if j < len(plain) and plain[j] == token_id:
            j += 1
        else:
            added.add(i)
    return added


def message_spans(rendered: str, messages: list[dict[str, str]]) -> list[tuple[int, int]]:
    """Where each message's own text sits in the rendered template (a message not found is left out)."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for message in messages:
        content = message["content"]
        found = rendered.find(content, cursor) if content else -1
        if found >= 0:
            spans.append((found, found + len(content)))
            cursor = found + len(content)
    return spans


def _template_positions(
    ids: list[int], offsets: list[tuple[int, int]] | None, rendered: str, messages: list[dict[str, str]],
    special: set[int],
) -> set[int]:
    """Special tokens the template wrote: those outside every message's own text (all of them when
    the tokenizer gives no offsets)."""
    spans = message_spans(rendered, messages)
    out = set()
    for i, token_id in enumerate(ids):
        if token_id not in special:
            continue
        if offsets is None or not any(s <= offsets[i][0] and offsets[i][1] <= e for s, e in spans):
            out.add(i)
    return out


def _double_bos(tokenizer: PreTrainedTokenizerBase, ids: list[int], added: dict[int, str], text: str) -> list[str]:
    """A warning when the ids begin with the BOS token twice (the model was trained with one)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None or len(ids) < 2 or ids[0] != bos or ids[1] != bos:
        return []
    token = str(tokenizer.bos_token)
    who = sorted({added[i] for i in (0, 1) if i in added})
    if text.lstrip().startswith(token) and TOKENIZER in who:
        why = f"the text already starts with {token} and the tokenizer adds another"
        fix = f"drop {token} from the text, or use --no-add-special-tokens"
    elif who:
        why = f"added by the {' and the '.join(who)}"
        fix = "check the text and the template"
    else:
        why = f"the text itself starts with {token} twice"
        fix = f"drop one {token}"
    return [f"the prompt starts with two {token} tokens ({why}); the model was trained with one: {fix}"]


def encode(
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    *,
    name: str,
    chat: bool = False,
    system: str | None = None,
    add_special_tokens: bool = True,
) -> EncodedPrompt:
    """TEXT as the model reads it. Plain: ids exactly as ``tokenizer(text)["input_ids"]``. With
    ``chat``: the rendered template, tokenized without adding special tokens (the template writes
    its own), as ``apply_chat_template(..., tokenize=True)`` does."""
    check_prompt_options(text, chat=chat, system=system, allow_empty=True)
    special = special_ids(tokenizer)
    messages: list[dict[str, str]] = []
    if chat:
        messages = chat_messages(text, system)
        text = render_chat(tokenizer, name, text, system)
        ids, offsets = _ids_and_offsets(tokenizer, text, False)
        added = {i: CHAT_TEMPLATE for i in _template_positions(ids, offsets, text, messages, special)}
    else:
        ids, offsets = _ids_and_offsets(tokenizer, text, add_special_tokens)
        added = {}
        if add_special_tokens:
            plain, _ = _ids_and_offsets(tokenizer, text, False)
            if plain != ids:
                added = {i: TOKENIZER for i in added_positions(ids, plain, special)}
    ids = [int(i) for i in ids]
    warnings = _double_bos(tokenizer, ids, added, text)
    return EncodedPrompt(text=text, ids=ids, offsets=offsets, added=added, warnings=warnings, messages=messages)


# --------------------------------------------------------------------------------------------
# Context length and tokens as text


def encode_for(
    lm: LoadedModel,
    text: str,
    *,
    chat: bool = False,
    system: str | None = None,
    extra: int = 0,
    extra_what: str | None = None,
    empty: str = "refuse",
) -> EncodedPrompt:
    """TEXT as LM reads it (``encode``), checked: refused when it has no tokens (``empty="bos"``: start
    from the beginning-of-text token instead, as generate does), or when it does not fit the model's
    context with ``extra`` tokens still to come. Its ``warnings`` belong in the result that took it."""
    encoded = encode(lm.tokenizer, text, name=lm.source.display_name, chat=chat, system=system)
    if not encoded.ids:
        tok = lm.tokenizer
        bos = tok.bos_token_id if tok.bos_token_id is not None else getattr(lm.config, "bos_token_id", None)
        if empty != "bos":
            raise UsageError("the prompt has no tokens", hint="give some text for the model to read")
        if bos is None:
            raise UsageError("the prompt is empty and the model has no beginning-of-text token to start from")
        encoded = dataclasses.replace(encoded, ids=[int(bos)], offsets=None if encoded.offsets is None else [(0, 0)])
    check_context(len(encoded.ids), context_length(lm.config), extra=extra, extra_what=extra_what)
    return encoded


def check_context(n_tokens: int, limit: int | None, *, extra: int = 0, extra_what: str | None = None) -> None:
    """Refuse a prompt (plus ``extra`` tokens still to come, e.g. steps) longer than the context:
    positions past it are out of range or untrained."""
    if limit is None or n_tokens + extra <= limit:
        return
    what = extra_what or "more tokens"
    more = f" plus {extra:,} {what[:-1] if extra == 1 and what.endswith('s') else what}" if extra else ""
    fewer = f" or ask for fewer {extra_what}" if extra and extra_what else ""
    raise UsageError(
        f"the prompt is {n_tokens:,} tokens{more}, longer than the model's context of {limit:,} tokens",
        hint="shorten the prompt" + fewer,
    )


def token_text(tokenizer: Any, token_id: int) -> str:
    """A token as text: decoded; the raw vocabulary piece when decoding gives nothing or U+FFFD."""
    text = tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if text == "" or "\ufffd" in text:
        piece = tokenizer.convert_ids_to_tokens(token_id)
        return piece if isinstance(piece, str) and piece else text
    return text
