"""What kind of tokenizer a model has: its pipeline, special tokens and roles, byte pieces.

Read from the tokenizer alone (never the weights): the tokenizer.json components of a fast tokenizer,
which special token plays which role, and the text a byte-level or byte-fallback vocabulary string
stands for. ``tokens.py`` builds tokenize/decode on these readers.
"""

from __future__ import annotations

import dataclasses
import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

    from llmscope.loading.model import ModelLike


# --------------------------------------------------------------------------------------------
# Result types


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


def get_tokenizer(
    model: ModelLike | PreTrainedTokenizerBase, *, fast: bool = False
) -> tuple[PreTrainedTokenizerBase, str]:
    """The tokenizer of MODEL (never its weights) and the name to show for it; MODEL is any form
    ``load`` takes (a ``LoadSpec`` carries the revision, the GGUF file and ``trust_remote_code``), or a
    tokenizer object.

    ``fast=True``: where it is provably the same tokenizer, one read by the ``tokenizers`` library
    alone (``fast_tokens.py``: no torch, no transformers; no chat template either)."""
    from llmscope.loading.model import LoadedModel, load_spec, load_tokenizer, source_of

    if isinstance(model, LoadedModel):
        return model.tokenizer, model.source.display_name
    if hasattr(model, "convert_ids_to_tokens"):  # a tokenizer object passed in directly
        return model, getattr(model, "name_or_path", "") or type(model).__name__
    spec = load_spec(model)
    source = source_of(spec)
    if fast and not spec.trust_remote_code:
        from llmscope.loading.fast_tokenizer import tokenizer_for
        from llmscope.loading.model import check_gguf_header

        check_gguf_header(source)  # before the tokenizer's conversion walks the whole header

        return tokenizer_for(source), source.display_name
    return load_tokenizer(source, trust_remote_code=spec.trust_remote_code), source.display_name


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


def is_byte_level(doc: dict[str, Any] | None) -> bool:
    if not doc:
        return False
    return any("ByteLevel" in _find_types(doc.get(k)) for k in ("pre_tokenizer", "decoder", "post_processor"))


def has_byte_fallback(doc: dict[str, Any] | None) -> bool:
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


def special_roles(tokenizer: PreTrainedTokenizerBase) -> dict[int, str]:
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


def vocab_pieces(
    tokenizer: PreTrainedTokenizerBase, ids: list[int], tokens: list[str], special: set[int], doc: dict | None
) -> list[tuple[str, bool]]:
    """(piece, partial) per token: byte tokens from their bytes, the rest via tokenizer.decode([id])."""
    byte_level, byte_fallback = is_byte_level(doc), has_byte_fallback(doc)
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
# The vocabulary view


def vocab_info(model: ModelLike | PreTrainedTokenizerBase = None) -> VocabInfo:
    """Vocabulary size, special tokens with ids, tokenizer type and pipeline of MODEL's tokenizer.

    MODEL is any form ``load`` takes (``LoadSpec(model=..., revision=..., gguf_file=...,
    trust_remote_code=...)`` for the options), or a tokenizer object."""
    tokenizer, name = get_tokenizer(model)
    doc = backend_json(tokenizer)
    roles = special_roles(tokenizer)
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
        byte_level=is_byte_level(doc),
        byte_fallback=has_byte_fallback(doc),
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
