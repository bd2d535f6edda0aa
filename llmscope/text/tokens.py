"""How a tokenizer cuts text: ids, vocabulary strings, decoded pieces, offsets, special tokens.

Only the tokenizer is loaded, never the weights, so this is quick even for a 70B model's id. The
ids are exactly ``tokenizer(text)["input_ids"]`` with default arguments; everything else (pieces,
offsets, which special tokens the tokenizer added and why) is read around that one call.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from typing import TYPE_CHECKING, Any

from llmscope.text import prompts
from llmscope.errors import UsageError
from llmscope.text.vocab import backend_json, get_tokenizer, special_roles, summarize_component, vocab_pieces

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

    from llmscope.loading.model import ModelLike


# --------------------------------------------------------------------------------------------
# Result types


@dataclasses.dataclass(frozen=True)
class TokenInfo:
    """One token of a sequence."""

    position: int
    id: int
    token: str  # as the vocabulary stores it: 'Ġthe', '▁the', '##ing', '<0xE6>'
    piece: str  # the text it stands for; an incomplete UTF-8 byte sequence shown as \\xNN escapes
    start: int | None  # character offsets into the text (None: slow tokenizer, no offsets)
    end: int | None
    special: bool  # one of the tokenizer's special tokens (<bos>, [CLS], ...)
    added: bool  # put there by the tokenizer (add_special_tokens), not cut from the text
    partial: bool = False  # a byte piece that is not whole UTF-8 characters on its own


@dataclasses.dataclass(frozen=True)
class AddedSpecialToken:
    """A special token the tokenizer added around the text, and why."""

    position: int
    id: int
    token: str
    role: str | None  # bos_token, eos_token, cls_token, sep_token... (Hugging Face attribute names)
    reason: str


@dataclasses.dataclass(frozen=True)
class TokenizationResult:
    """``tokenize()``: the text, its tokens and the totals."""

    model: str
    text: str
    tokens: tuple[TokenInfo, ...]
    added_special_tokens: tuple[AddedSpecialToken, ...]
    add_special_tokens: bool
    has_offsets: bool
    chat: bool = False
    messages: tuple[dict[str, str], ...] = ()  # the chat messages the template rendered (--chat)
    warnings: list[str] = dataclasses.field(default_factory=list)  # e.g. two BOS tokens at the start

    @property
    def ids(self) -> list[int]:
        return [t.id for t in self.tokens]

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    @property
    def num_characters(self) -> int:
        return len(self.text)

    @property
    def characters_per_token(self) -> float | None:
        """Characters of text per token cut from it (added special tokens not counted)."""
        cut = sum(1 for t in self.tokens if not t.added)
        return self.num_characters / cut if cut else None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "text": self.text,
            "ids": self.ids,
            "tokens": [t.token for t in self.tokens],
            "pieces": [t.piece for t in self.tokens],
            "offsets": [[t.start, t.end] for t in self.tokens] if self.has_offsets else None,
            "special_tokens_mask": [int(t.special) for t in self.tokens],
            "added_special_tokens": [dataclasses.asdict(a) for a in self.added_special_tokens],
            "num_tokens": self.num_tokens,
            "num_characters": self.num_characters,
            "characters_per_token": self.characters_per_token,
            "add_special_tokens": self.add_special_tokens,
            "chat": self.chat,
            "messages": list(self.messages) if self.chat else None,
            "warnings": list(self.warnings),
        }


@dataclasses.dataclass(frozen=True)
class DecodeResult:
    """``decode_ids()``: ids back to vocabulary strings, pieces and text."""

    model: str
    ids: tuple[int, ...]
    tokens: tuple[TokenInfo, ...]  # start/end are None: there is no source text
    text: str  # tokenizer.decode(ids) with default arguments

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ids": list(self.ids),
            "tokens": [t.token for t in self.tokens],
            "pieces": [t.piece for t in self.tokens],
            "special_tokens_mask": [int(t.special) for t in self.tokens],
            "text": self.text,
        }


@dataclasses.dataclass(frozen=True)
class TokenizerComparison:
    """``compare_tokenizers()``: one text through several tokenizers."""

    text: str
    results: tuple[TokenizationResult, ...]  # the first is the baseline the others are compared to
    categories: tuple[str, ...]  # kinds of characters present, in CATEGORY order
    tokens_by_category: tuple[dict[str, int], ...]  # per result: tokens spent on each kind

    def to_json(self) -> dict[str, Any]:
        base = self.results[0].num_tokens if self.results else 0
        return {
            "model": self.results[0].model if self.results else None,  # the baseline, first in "models"
            "text": self.text,
            "num_characters": len(self.text),
            "models": [
                {
                    "model": r.model,
                    "num_tokens": r.num_tokens,
                    "characters_per_token": r.characters_per_token,
                    "relative_to_first": (r.num_tokens / base) if base else None,
                    "tokens_by_category": by_cat,
                    "ids": r.ids,
                    "tokens": [t.token for t in r.tokens],
                    "offsets": [[t.start, t.end] for t in r.tokens] if r.has_offsets else None,
                }
                for r, by_cat in zip(self.results, self.tokens_by_category)
            ],
        }


# --------------------------------------------------------------------------------------------
# Which special tokens the tokenizer added, and why


def _post_processor_text(doc: dict | None) -> str:
    if doc and doc.get("post_processor"):
        return f"the tokenizer's post-processor, {summarize_component(doc['post_processor'])}"
    return "the tokenizer's build_inputs_with_special_tokens"


_ROLE_WHY = {
    "bos_token": "beginning of sequence: the model was trained with every sequence starting with it",
    "eos_token": "end of sequence",
    "cls_token": "classification token: its final hidden state summarizes the sequence",
    "sep_token": "separator: marks the end of a segment",
    "pad_token": "padding",
    "unk_token": "unknown",
    "mask_token": "mask",
}


def _reason(role: str | None, at_start: bool, tokenizer: PreTrainedTokenizerBase, doc: dict | None) -> str:
    where = "at the start" if at_start else "at the end"
    flag = {"bos_token": "add_bos_token", "eos_token": "add_eos_token"}.get(role or "")
    setting = f" ({flag}=True)" if flag and getattr(tokenizer, flag, None) else ""
    why = _ROLE_WHY.get(role or "", "a special token")
    return f"{why}; added {where} by {_post_processor_text(doc)}{setting}"


# --------------------------------------------------------------------------------------------
# The core functions



def tokenize(
    text: str,
    *,
    model: ModelLike | PreTrainedTokenizerBase = None,
    chat: bool = False,
    system: str | None = None,
    add_special_tokens: bool = True,
) -> TokenizationResult:
    """Cut TEXT into tokens with MODEL's tokenizer (only the tokenizer is loaded).

    The ids are exactly ``tokenizer(text)["input_ids"]``. With ``chat=True`` the text is sent as a
    user message (after ``system``, if given) through the model's chat template, and the templated
    string is tokenized as ``apply_chat_template(..., tokenize=True)`` does it: without adding
    special tokens, since the template writes them itself.

    MODEL is any form ``load`` takes (a ``LoadSpec`` carries the revision, the GGUF file and
    ``trust_remote_code``), or a tokenizer object.
    """
    prompts.check_prompt_options(text, chat=chat, system=system, allow_empty=True)
    tokenizer, name = get_tokenizer(model, fast=not chat)
    encoded = prompts.encode(
        tokenizer, text, name=name, chat=chat, system=system, add_special_tokens=add_special_tokens and not chat
    )
    return _build(tokenizer, name, encoded, add_special_tokens=add_special_tokens and not chat, chat=chat)


def _build(
    tokenizer: PreTrainedTokenizerBase, name: str, encoded: prompts.EncodedPrompt, *, add_special_tokens: bool,
    chat: bool,
) -> TokenizationResult:
    ids, offsets = encoded.ids, encoded.offsets
    # The tokens the tokenizer put around the text; with --chat the template writes its own.
    added = {i for i, who in encoded.added.items() if who == prompts.TOKENIZER}
    doc = backend_json(tokenizer)
    special = prompts.special_ids(tokenizer)
    vocab_strings = [str(t) for t in tokenizer.convert_ids_to_tokens(ids)]
    pieces = vocab_pieces(tokenizer, ids, vocab_strings, special, doc)
    roles = special_roles(tokenizer)
    tokens = []
    for i, (token_id, token, (piece, partial)) in enumerate(zip(ids, vocab_strings, pieces)):
        start, end = (int(offsets[i][0]), int(offsets[i][1])) if offsets is not None else (None, None)
        tokens.append(
            TokenInfo(
                position=i, id=int(token_id), token=token, piece=piece, start=start, end=end,
                special=token_id in special, added=i in added, partial=partial,
            )
        )
    first_text = min((i for i in range(len(ids)) if i not in added), default=len(ids))
    added_info = tuple(
        AddedSpecialToken(
            position=i,
            id=int(ids[i]),
            token=vocab_strings[i],
            role=roles.get(int(ids[i])),
            reason=_reason(roles.get(int(ids[i])), i < first_text, tokenizer, doc),
        )
        for i in sorted(added)
    )
    return TokenizationResult(
        model=name,
        text=encoded.text,
        tokens=tuple(tokens),
        added_special_tokens=added_info,
        add_special_tokens=add_special_tokens,
        has_offsets=offsets is not None,
        chat=chat,
        messages=tuple(encoded.messages),
        warnings=list(encoded.warnings),
    )


def parse_ids(value: str) -> list[int]:
    """'504,3575 12' -> [504, 3575, 12]; commas and/or spaces, brackets allowed (a pasted JSON list)."""
    cleaned = value.strip().strip("[]()")
    parts = [p for p in re.split(r"[,\s]+", cleaned) if p]
    if not parts:
        raise UsageError("`ids`: no token ids given", hint="e.g. `ids=504,3575,12`")
    ids = []
    for part in parts:
        if not re.fullmatch(r"\d+", part):
            raise UsageError(f"`ids`: {part!r} is not a token id", hint="token ids are whole numbers >= 0")
        ids.append(int(part))
    return ids


def decode_ids(
    ids: list[int] | str,
    *,
    model: ModelLike | PreTrainedTokenizerBase = None,
) -> DecodeResult:
    """The reverse of tokenize: ids to vocabulary strings, pieces, and ``tokenizer.decode(ids)``."""
    if isinstance(ids, str):
        ids = parse_ids(ids)
    ids = [int(i) for i in ids]
    if any(i < 0 for i in ids):
        raise UsageError("`ids`: token ids are >= 0")
    tokenizer, name = get_tokenizer(model, fast=True)
    size = len(tokenizer)
    bad = [i for i in ids if i >= size]
    if bad:
        raise UsageError(
            f"`ids`: {bad[0]} is not in the vocabulary of {name}", hint=f"ids run from 0 to {size - 1:,}"
        )
    doc = backend_json(tokenizer)
    special = prompts.special_ids(tokenizer)
    vocab_strings = [str(t) for t in tokenizer.convert_ids_to_tokens(ids)]
    pieces = vocab_pieces(tokenizer, ids, vocab_strings, special, doc)
    tokens = tuple(
        TokenInfo(position=i, id=t, token=s, piece=p, start=None, end=None, special=t in special, added=False,
                  partial=partial)
        for i, (t, s, (p, partial)) in enumerate(zip(ids, vocab_strings, pieces))
    )
    return DecodeResult(model=name, ids=tuple(ids), tokens=tokens, text=tokenizer.decode(ids))


# Kinds of characters, to see where one tokenizer spends more tokens than another.
CATEGORIES = ("letters", "digits", "whitespace", "punctuation", "CJK", "emoji", "other")


def char_category(ch: str) -> str:
    code = ord(ch)
    if ch.isspace():
        return "whitespace"
    if (
        0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x3040 <= code <= 0x30FF
        or 0xAC00 <= code <= 0xD7AF or 0x3000 <= code <= 0x303F or 0xFF00 <= code <= 0xFFEF
        or 0x20000 <= code <= 0x2FFFF
    ):
        return "CJK"
    if 0x1F000 <= code <= 0x1FAFF or 0x2600 <= code <= 0x27BF or code in (0x200D, 0xFE0F):
        return "emoji"
    kind = unicodedata.category(ch)
    if kind.startswith("L") or kind.startswith("M"):
        return "letters"
    if kind.startswith("N"):
        return "digits"
    if kind.startswith("P") or kind.startswith("S"):
        return "punctuation"
    return "other"


def _tokens_by_category(result: TokenizationResult) -> dict[str, int]:
    """Tokens spent per kind of character: each token counts for the kind of the first character
    it covers (added special tokens and tokens without offsets count as 'other')."""
    counts: dict[str, int] = {}
    for t in result.tokens:
        if t.added or t.start is None or t.end is None or t.end <= t.start:
            kind = "special" if t.special else "other"
        else:
            span = result.text[t.start : t.end]
            kind = next((char_category(c) for c in span if not c.isspace()), "whitespace")
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def compare_tokenizers(
    text: str,
    models: list[ModelLike | PreTrainedTokenizerBase],
    *,
    chat: bool = False,
    system: str | None = None,
    add_special_tokens: bool = True,
) -> TokenizerComparison:
    """TEXT through each tokenizer of MODELS (the first is the baseline). Each model is any form
    ``tokenize`` takes: a ``LoadSpec`` carries its own revision, GGUF file and ``trust_remote_code``."""
    if not models:
        raise UsageError("compare needs at least one model")
    results = [
        tokenize(text, model=model, chat=chat, system=system, add_special_tokens=add_special_tokens)
        for model in models
    ]
    by_category = [_tokens_by_category(r) for r in results]
    present = {k for counts in by_category for k in counts}
    order = (*CATEGORIES, "special")
    return TokenizerComparison(
        text=text,
        results=tuple(results),
        categories=tuple(k for k in order if k in present),
        tokens_by_category=tuple(by_category),
    )


