"""How a tokenizer cuts text: ids, vocabulary strings, decoded pieces, offsets, special tokens.

Only the tokenizer is loaded, never the weights, so this is quick even for a 70B model's id. The
ids are exactly ``tokenizer(text)["input_ids"]`` with default arguments; everything else (pieces,
offsets, which special tokens the tokenizer added and why) is read around that one call.
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from llmscope.errors import LlmscopeError, ModelFormatError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

    from llmscope.loading import LoadedModel


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


@dataclasses.dataclass(frozen=True)
class SpecialToken:
    token: str
    id: int | None
    role: str | None  # bos_token, eos_token, ... or None for extra special tokens


@dataclasses.dataclass(frozen=True)
class VocabInfo:
    """``vocab_info()``: what kind of tokenizer a model has."""

    model: str
    tokenizer_class: str
    is_fast: bool
    vocab_size: int  # tokenizer.vocab_size: the base vocabulary
    total_size: int  # len(tokenizer): with added tokens
    added_tokens: int
    model_type: str | None  # BPE, WordPiece, Unigram, WordLevel (tokenizer.json "model.type")
    byte_level: bool  # bytes mapped to printable characters (GPT-2's ByteLevel)
    byte_fallback: bool  # unknown characters become <0xNN> byte tokens (SentencePiece style)
    normalizer: str | None
    pre_tokenizer: str | None
    post_processor: str | None
    decoder: str | None
    special_tokens: tuple[SpecialToken, ...]
    adds_bos: bool  # does tokenizer("x") start with bos_token?
    adds_eos: bool
    model_max_length: int | None
    has_chat_template: bool


# --------------------------------------------------------------------------------------------
# Getting a tokenizer


def _get_tokenizer(
    model: str | LoadedModel | PreTrainedTokenizerBase | None,
    *,
    revision: str | None,
    gguf_file: str | None,
    trust_remote_code: bool,
) -> tuple[PreTrainedTokenizerBase, str]:
    """The tokenizer of MODEL (never its weights) and the name to show for it."""
    from llmscope.loading import LoadedModel, load_tokenizer
    from llmscope.resolve import resolve

    if isinstance(model, LoadedModel):
        return model.tokenizer, model.source.display_name
    if model is not None and not isinstance(model, str):
        if hasattr(model, "convert_ids_to_tokens"):  # a tokenizer object passed in directly
            return model, getattr(model, "name_or_path", "") or type(model).__name__
        raise UsageError(f"model= must be a name, a LoadedModel or a tokenizer, not {type(model).__name__}")
    source = resolve(model, revision=revision, gguf_file=gguf_file)
    return load_tokenizer(source, trust_remote_code=trust_remote_code), source.display_name


# --------------------------------------------------------------------------------------------
# Reading a tokenizer's structure


def backend_json(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any] | None:
    """The tokenizer.json structure of a fast tokenizer without its vocabulary (None for a slow one):
    ``model`` (type, byte_fallback), ``normalizer``, ``pre_tokenizer``, ``post_processor``, ``decoder``.

    Read component by component: serializing the whole tokenizer (to_str) takes about a second for a
    262k vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    doc: dict[str, Any] = {}
    for name in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        component = getattr(backend, name, None)
        try:
            doc[name] = json.loads(component.__getstate__()) if component is not None else None
        except Exception:  # noqa: BLE001 - a component that cannot serialize: named by its class only
            doc[name] = {"type": type(component).__name__}
    model = backend.model
    doc["model"] = {"type": type(model).__name__, "byte_fallback": bool(getattr(model, "byte_fallback", False))}
    return doc


def _find_types(node: Any) -> set[str]:
    """Every component ``type`` inside a tokenizer.json section."""
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            found.add(node["type"])
        for value in node.values():
            found |= _find_types(value)
    elif isinstance(node, list):
        for value in node:
            found |= _find_types(value)
    return found


def _is_byte_level(doc: dict[str, Any] | None) -> bool:
    if not doc:
        return False
    return any("ByteLevel" in _find_types(doc.get(k)) for k in ("pre_tokenizer", "decoder", "post_processor"))


def _has_byte_fallback(doc: dict[str, Any] | None) -> bool:
    return bool(doc and (doc.get("model") or {}).get("byte_fallback"))


def _short(value: Any) -> str:
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("String", "Regex"):
        kind, pattern = next(iter(value.items()))
        text = pattern if len(pattern) <= 40 else pattern[:37] + "..."
        return repr(text) if kind == "String" else f"/{text}/"
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


_SKIP_KEYS = {"type", "special_tokens", "single", "pair", "vocab", "merges", "precompiled_charsmap"}


def summarize_component(node: Any) -> str | None:
    """A one-line description of a tokenizer.json component: ``Replace(' ' → '▁') → NFC``."""
    if node is None:
        return None
    if isinstance(node, list):
        parts = [s for s in (summarize_component(n) for n in node) if s]
        return " → ".join(parts) if parts else None
    if not isinstance(node, dict):
        return str(node)
    kind = node.get("type", "?")
    for key in ("normalizers", "pretokenizers", "processors", "decoders"):
        if key in node and isinstance(node[key], list):
            return summarize_component(node[key]) or kind
    if kind == "Replace":
        return f"Replace({_short(node.get('pattern'))} → {_short(node.get('content'))})"
    if kind == "TemplateProcessing":
        pieces = []
        for item in node.get("single", []):
            if "SpecialToken" in item:
                pieces.append(item["SpecialToken"]["id"])
            elif "Sequence" in item:
                pieces.append("$" + item["Sequence"]["id"])
        return f"TemplateProcessing({' '.join(pieces)})"
    args = []
    for key, value in node.items():
        if key in _SKIP_KEYS or value is None or isinstance(value, (list, dict)) and key not in ("pattern",):
            continue
        args.append(f"{key}={_short(value)}" if not isinstance(value, bool) else f"{key}={value}")
    return f"{kind}({', '.join(args)})" if args else kind


def _special_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    ids = {int(i) for i in tokenizer.all_special_ids if i is not None}
    for index, added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        if getattr(added, "special", False):
            ids.add(int(index))
    return ids


def _roles(tokenizer: PreTrainedTokenizerBase) -> dict[int, str]:
    """Special token id -> its attribute name (bos_token, eos_token...), first name wins."""
    roles: dict[int, str] = {}
    for attr in tokenizer.SPECIAL_TOKENS_ATTRIBUTES:
        token = getattr(tokenizer, attr, None)
        if token is None:
            continue
        token_id = tokenizer.convert_tokens_to_ids(str(token))
        if isinstance(token_id, int) and token_id not in roles:
            roles[token_id] = attr
    return roles


# --------------------------------------------------------------------------------------------
# Pieces: the text each token stands for


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's bytes_to_unicode: printable stand-in character -> byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _token_bytes(token: str, *, byte_level: bool, byte_fallback: bool) -> bytes | None:
    """The raw bytes a vocabulary string stands for, where the tokenizer is byte-based."""
    if byte_fallback:
        match = _BYTE_TOKEN.match(token)
        if match:
            return bytes([int(match.group(1), 16)])
    if byte_level:
        table = _byte_decoder()
        if all(c in table for c in token):
            return bytes(table[c] for c in token)
    return None


def _pieces(
    tokenizer: PreTrainedTokenizerBase, ids: list[int], tokens: list[str], special: set[int], doc: dict | None
) -> list[tuple[str, bool]]:
    """(piece, partial) per token: byte tokens from their bytes, the rest via tokenizer.decode([id])."""
    byte_level, byte_fallback = _is_byte_level(doc), _has_byte_fallback(doc)
    out: list[tuple[str, bool]] = []
    for token_id, token in zip(ids, tokens):
        if token_id in special:
            out.append((token, False))
            continue
        raw = _token_bytes(token, byte_level=byte_level, byte_fallback=byte_fallback)
        if raw is not None:
            try:
                out.append((raw.decode("utf-8"), False))
            except UnicodeDecodeError:  # whole characters as text, the loose bytes as \xNN
                out.append((raw.decode("utf-8", errors="backslashreplace"), True))
            continue
        piece = tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if "\ufffd" in piece and "\ufffd" not in token:
            out.append((piece, True))
        else:
            out.append((piece, False))
    return out


# --------------------------------------------------------------------------------------------
# Which special tokens the tokenizer added, and why


def _added_positions(ids: list[int], plain: list[int], special: set[int]) -> set[int]:
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


def _encode(tokenizer: PreTrainedTokenizerBase, text: str, add_special_tokens: bool) -> tuple[list[int], list | None]:
    """ids exactly as ``tokenizer(text)`` gives them, and offsets where the tokenizer is fast."""
    if getattr(tokenizer, "is_fast", False):
        encoding = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        return list(encoding["input_ids"]), [tuple(o) for o in encoding["offset_mapping"]]
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]), None


def _render_chat(tokenizer: PreTrainedTokenizerBase, name: str, text: str, system: str | None) -> tuple[str, list]:
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": text}
    ]
    if not getattr(tokenizer, "chat_template", None):
        raise UsageError(
            f"{name} has no chat template",
            hint="--chat needs an instruction-tuned model whose tokenizer carries one; drop --chat for plain text",
        )
    try:
        # Rendered by transformers in jinja's sandboxed environment.
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except LlmscopeError:
        raise
    except Exception as exc:  # noqa: BLE001 - template errors are the model's, shown as one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if type(exc).__name__ == "SecurityError":  # jinja's sandbox stopped the template
            raise ModelFormatError(
                f"{name}: its chat template tried something jinja's sandbox forbids, and was stopped ({first})",
                hint="the template may be malicious; nothing was run",
            ) from exc
        raise UsageError(f"{name}: its chat template failed to render these messages ({first})") from exc
    return rendered, messages


def tokenize(
    text: str,
    *,
    model: str | LoadedModel | PreTrainedTokenizerBase | None = None,
    revision: str | None = None,
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
    chat: bool = False,
    system: str | None = None,
    add_special_tokens: bool = True,
) -> TokenizationResult:
    """Cut TEXT into tokens with MODEL's tokenizer (only the tokenizer is loaded).

    The ids are exactly ``tokenizer(text)["input_ids"]``. With ``chat=True`` the text is sent as a
    user message (after ``system``, if given) through the model's chat template, and the templated
    string is tokenized as ``apply_chat_template(..., tokenize=True)`` does it: without adding
    special tokens, since the template writes them itself.
    """
    if not isinstance(text, str):
        raise UsageError(f"text must be a str, not {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: what Python makes of bytes that are not UTF-8
        raise UsageError(f"the text is not valid Unicode: a lone surrogate at character {exc.start}") from None
    if system is not None and not chat:
        raise UsageError("--system only makes sense with --chat")
    tokenizer, name = _get_tokenizer(model, revision=revision, gguf_file=gguf_file, trust_remote_code=trust_remote_code)
    messages: list = []
    if chat:
        text, messages = _render_chat(tokenizer, name, text, system)
        add_special_tokens = False
    return _tokenize_with(tokenizer, name, text, add_special_tokens=add_special_tokens, chat=chat, messages=messages)


def _tokenize_with(
    tokenizer: PreTrainedTokenizerBase,
    name: str,
    text: str,
    *,
    add_special_tokens: bool,
    chat: bool = False,
    messages: list | None = None,
) -> TokenizationResult:
    ids, offsets = _encode(tokenizer, text, add_special_tokens)
    added: set[int] = set()
    if add_special_tokens:
        plain, _ = _encode(tokenizer, text, False)
        if plain != ids:
            added = _added_positions(ids, plain, _special_ids(tokenizer))
    return _build(tokenizer, name, text, ids, offsets, added, add_special_tokens, chat, messages or [])


def _build(
    tokenizer: PreTrainedTokenizerBase,
    name: str,
    text: str,
    ids: list[int],
    offsets: list | None,
    added: set[int],
    add_special_tokens: bool,
    chat: bool,
    messages: list,
) -> TokenizationResult:
    doc = backend_json(tokenizer)
    special = _special_ids(tokenizer)
    vocab_strings = [str(t) for t in tokenizer.convert_ids_to_tokens(ids)]
    pieces = _pieces(tokenizer, ids, vocab_strings, special, doc)
    roles = _roles(tokenizer)
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
        text=text,
        tokens=tuple(tokens),
        added_special_tokens=added_info,
        add_special_tokens=add_special_tokens,
        has_offsets=offsets is not None,
        chat=chat,
        messages=tuple(messages),
    )


def parse_ids(value: str) -> list[int]:
    """'504,3575 12' -> [504, 3575, 12]; commas and/or spaces, brackets allowed (a pasted JSON list)."""
    cleaned = value.strip().strip("[]()")
    parts = [p for p in re.split(r"[,\s]+", cleaned) if p]
    if not parts:
        raise UsageError("--ids: no token ids given", hint="e.g. --ids 504,3575,12")
    ids = []
    for part in parts:
        if not re.fullmatch(r"\d+", part):
            raise UsageError(f"--ids: {part!r} is not a token id", hint="token ids are whole numbers >= 0")
        ids.append(int(part))
    return ids


def decode_ids(
    ids: list[int] | str,
    *,
    model: str | LoadedModel | PreTrainedTokenizerBase | None = None,
    revision: str | None = None,
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
) -> DecodeResult:
    """The reverse of tokenize: ids to vocabulary strings, pieces, and ``tokenizer.decode(ids)``."""
    if isinstance(ids, str):
        ids = parse_ids(ids)
    ids = [int(i) for i in ids]
    if any(i < 0 for i in ids):
        raise UsageError("--ids: token ids are >= 0")
    tokenizer, name = _get_tokenizer(model, revision=revision, gguf_file=gguf_file, trust_remote_code=trust_remote_code)
    size = len(tokenizer)
    bad = [i for i in ids if i >= size]
    if bad:
        raise UsageError(
            f"--ids: {bad[0]} is not in the vocabulary of {name}", hint=f"ids run from 0 to {size - 1:,}"
        )
    doc = backend_json(tokenizer)
    special = _special_ids(tokenizer)
    vocab_strings = [str(t) for t in tokenizer.convert_ids_to_tokens(ids)]
    pieces = _pieces(tokenizer, ids, vocab_strings, special, doc)
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
    models: list[str | LoadedModel | PreTrainedTokenizerBase | None],
    *,
    revision: str | None = None,
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
    chat: bool = False,
    system: str | None = None,
    add_special_tokens: bool = True,
) -> TokenizerComparison:
    """TEXT through each tokenizer of MODELS (the first is the baseline); ``revision`` and
    ``gguf_file`` apply to the first model only."""
    if not models:
        raise UsageError("compare needs at least one model")
    results = []
    for index, model in enumerate(models):
        results.append(
            tokenize(
                text,
                model=model,
                revision=revision if index == 0 else None,
                gguf_file=gguf_file if index == 0 else None,
                trust_remote_code=trust_remote_code,
                chat=chat,
                system=system,
                add_special_tokens=add_special_tokens,
            )
        )
    by_category = [_tokens_by_category(r) for r in results]
    present = {k for counts in by_category for k in counts}
    order = (*CATEGORIES, "special")
    return TokenizerComparison(
        text=text,
        results=tuple(results),
        categories=tuple(k for k in order if k in present),
        tokens_by_category=tuple(by_category),
    )


def vocab_info(
    model: str | LoadedModel | PreTrainedTokenizerBase | None = None,
    *,
    revision: str | None = None,
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
) -> VocabInfo:
    """Vocabulary size, special tokens with ids, tokenizer type and pipeline of MODEL's tokenizer."""
    tokenizer, name = _get_tokenizer(model, revision=revision, gguf_file=gguf_file, trust_remote_code=trust_remote_code)
    doc = backend_json(tokenizer)
    roles = _roles(tokenizer)
    specials = []
    seen: set[str] = set()
    for token in tokenizer.all_special_tokens:
        token_id = tokenizer.convert_tokens_to_ids(token)
        token_id = int(token_id) if isinstance(token_id, int) else None
        role = roles.get(token_id) if token_id is not None else None
        specials.append(SpecialToken(token=token, id=token_id, role=role))
        seen.add(token)
    for index, added in sorted((getattr(tokenizer, "added_tokens_decoder", None) or {}).items()):
        if getattr(added, "special", False) and str(added) not in seen:
            specials.append(SpecialToken(token=str(added), id=int(index), role=None))
            seen.add(str(added))
    probe = tokenizer("x")["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    adds_bos = bool(probe) and bos is not None and probe[0] == bos
    adds_eos = bool(probe) and eos is not None and probe[-1] == eos and len(probe) > 1
    max_len = getattr(tokenizer, "model_max_length", None)
    if max_len is not None and max_len > 10**12:  # transformers' "no limit" sentinel
        max_len = None
    return VocabInfo(
        model=name,
        tokenizer_class=type(tokenizer).__name__,
        is_fast=bool(getattr(tokenizer, "is_fast", False)),
        vocab_size=int(tokenizer.vocab_size),
        total_size=len(tokenizer),
        added_tokens=len(getattr(tokenizer, "added_tokens_decoder", None) or {}),
        model_type=((doc or {}).get("model") or {}).get("type"),
        byte_level=_is_byte_level(doc),
        byte_fallback=_has_byte_fallback(doc),
        normalizer=summarize_component((doc or {}).get("normalizer")),
        pre_tokenizer=summarize_component((doc or {}).get("pre_tokenizer")),
        post_processor=summarize_component((doc or {}).get("post_processor")),
        decoder=summarize_component((doc or {}).get("decoder")),
        special_tokens=tuple(specials),
        adds_bos=adds_bos,
        adds_eos=adds_eos,
        model_max_length=int(max_len) if max_len is not None else None,
        has_chat_template=bool(getattr(tokenizer, "chat_template", None)),
    )
