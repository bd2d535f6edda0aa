"""Tokenize without importing transformers: the tokenizer AutoTokenizer built, kept for the
``tokenizers`` library, where it is the same tokenizer.

A transformers fast tokenizer is a Python wrapper around a ``tokenizers.Tokenizer``: ``tokenizer(text)``
is the backend's ``encode_batch`` with truncation and padding off, ``convert_ids_to_tokens`` is
``id_to_token``, ``decode`` is the backend's decode plus an optional space clean-up. What the wrapper
adds when it loads (added tokens from tokenizer_config.json, add_bos_token/add_eos_token rewriting
the post-processor, special-token attributes) is all in the backend it built and in a few values.

So the first time a folder's tokenizer is loaded, AutoTokenizer loads it; if its class uses the
wrapper's own encode/decode methods unchanged and a set of probe texts gives the same ids, offsets,
tokens and text both ways, its backend (``to_str()``) and those values are cached, keyed by the
content of the folder's files and both libraries' versions, written whole or not at all, its record
listing each file's size and sha256 (``cache_files``). Later loads check that entry and read it with
``tokenizers`` alone (no torch, no transformers); an entry that fails the check (a tokenizer.json
replaced or cut short, a link) is removed with a notice and built again from transformers. Anything else (a class with
its own encode or decode, remote code, a Hub id, a probe that differs) keeps using transformers.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmscope.loading.cache_files import (
    DamagedEntry, cache_root, file_sha256, in_cache, publish_folder, read_folder, set_aside,
)
from llmscope.progress import reporter

if TYPE_CHECKING:  # pragma: no cover
    from llmscope.loading.resolve import ModelSource

CACHE_FORMAT = 2  # 2: the record lists each file's size and sha256 (cache_files)
RECORD = "llmscope-tokenizer.json"
_SAID = {"what": "tokenizer cache entry", "redo": "loading the tokenizer with transformers"}
# What FastTokenizer reads from a record, and the type each value must have.
_SHAPE = {"class": str, "name_or_path": str, "special_attributes": list, "all_special_tokens": list,
          "split_special_tokens": bool, "clean_up_tokenization_spaces": bool, "clean_up_bpe": bool, "values": dict}
_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack", ".ckpt", ".onnx", ".lock")
# The wrapper methods the fast path stands in for: a class overriding any of them is not taken.
_METHODS = (
    "__call__", "_encode_plus", "set_truncation_and_padding", "_convert_encoding", "convert_ids_to_tokens",
    "convert_tokens_to_ids", "_convert_token_to_id_with_added_voc", "decode", "_decode", "clean_up_tokenization",
    "all_special_ids", "all_special_tokens", "added_tokens_decoder", "__len__", "vocab_size",
)
PROBES = (
    "", " ", "Hello, world!", "  two  spaces\tand a tab\n\nnewlines ", "naïve café déjà vu", "東京 タワー 서울",
    "emoji 😀👍🏽 and ZWJ 👨‍👩‍👧", "def f(x):\n    return x ** 2  # code", "Don't stop: it's 3.14 or 1,000!",
    "UPPER lower MiXeD", "<0x41> ##ing Ġthe ▁the", "\u00a0\u200b\ufeff odd spaces",
)


# --------------------------------------------------------------------------------------------
# The tokenizer, on tokenizers alone


class FastTokenizer:
    """The part of a transformers fast tokenizer that tokenize and decode read, backed by the same
    ``tokenizers.Tokenizer`` (no chat template: --chat goes through transformers)."""

    is_fast = True

    def __init__(self, backend: Any, record: dict[str, Any]):
        self._tokenizer = backend
        self._record = record
        backend.no_truncation()  # as transformers' set_truncation_and_padding leaves it for a plain call
        backend.no_padding()
        backend.encode_special_tokens = bool(record["split_special_tokens"])
        self.SPECIAL_TOKENS_ATTRIBUTES = list(record["special_attributes"])
        self.name_or_path = record["name_or_path"]
        self.tokenizer_class = record["class"]

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_record", {}).get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    @property
    def backend_tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def all_special_tokens(self) -> list[str]:
        return list(self._record["all_special_tokens"])

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    @property
    def added_tokens_decoder(self) -> dict[int, Any]:
        return self._tokenizer.get_added_tokens_decoder()

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def __call__(self, text: str, *, add_special_tokens: bool = True, return_offsets_mapping: bool = False) -> dict:
        if not isinstance(text, str):
            raise TypeError("FastTokenizer encodes one str at a time")
        encoding = self._tokenizer.encode_batch([text], add_special_tokens=add_special_tokens)[0]
        out: dict[str, Any] = {"input_ids": encoding.ids}
        if return_offsets_mapping:
            out["offset_mapping"] = encoding.offsets
        return out

    def convert_ids_to_tokens(self, ids: int | list[int]) -> str | list[str]:
        if isinstance(ids, int):
            return self._tokenizer.id_to_token(ids)
        return [self._tokenizer.id_to_token(int(i)) for i in ids]

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | list[int]:
        if isinstance(tokens, str):
            index = self._tokenizer.token_to_id(tokens)
            return self._record["values"].get("unk_token_id") if index is None else index
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def decode(
        self, ids: int | list[int], skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None
    ) -> str:
        ids = [ids] if isinstance(ids, int) else [int(i) for i in ids]
        text = self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
        clean = self._record["clean_up_tokenization_spaces"] if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        if not clean:
            return text
        if type(self._tokenizer.model).__name__ == "BPE" and not self._record["clean_up_bpe"]:
            return text  # transformers skips (and warns about) the clean-up for BPE
        for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                     (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
            text = text.replace(a, b)
        return text


# --------------------------------------------------------------------------------------------
# Loading through the cache


def tokenizer_for(source: ModelSource) -> Any:
    """SOURCE's tokenizer: a FastTokenizer when the cache holds one for these files, else
    AutoTokenizer's (and the cache is filled for next time). For sources without remote code."""
    from llmscope.loading.model import load_tokenizer

    folder = _local_folder(source)
    if folder is None:
        return load_tokenizer(source)
    name = f"{cache_key(folder)[:32]}-v{CACHE_FORMAT}"
    entry = in_cache(cache_root() / "tokenizers" / name, kind="folder", **_SAID)
    record = _read_record(entry)
    if record is not None and record["fast"]:
        from tokenizers import Tokenizer

        return FastTokenizer(Tokenizer.from_file(str(entry / "tokenizer.json")), record)
    tokenizer = load_tokenizer(source)
    if record is None:  # decided once per files and library versions: a drift shows itself the day it comes
        try:
            fast, reason = _write_entry(entry, tokenizer)
        except OSError as exc:
            reporter().notice(f"tokenizer cache not written ({exc.strerror or exc}): the next load uses transformers too")
        else:
            if not fast:
                reporter().notice(f"tokenizer: transformers' own from now on, not the fast path ({reason})")
    return tokenizer


def _local_folder(source: ModelSource) -> Path | None:
    """The folder AutoTokenizer reads for SOURCE (a GGUF's converted tokenizer); None for the Hub."""
    if source.kind == "folder":
        return Path(source.location)
    if source.kind in ("gguf", "embedded"):
        from llmscope.loading.gguf_cache import ensure_gguf_stage, gguf_file_for

        return ensure_gguf_stage(gguf_file_for(source), "tokenizer", source)
    return None


def cache_key(folder: Path) -> str:
    """sha256 of every non-weight file in FOLDER (by content), the format and both libraries' versions."""
    from importlib.metadata import version

    files = {
        p.name: file_sha256(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.endswith(_WEIGHTS) and p.name != "llmscope-cache.json"
    }
    parts = {
        "format": CACHE_FORMAT, "transformers": version("transformers"), "tokenizers": version("tokenizers"),
        "files": files,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _read_record(entry: Path) -> dict[str, Any] | None:
    """The record of the cache entry ENTRY once the entry is as written (None when there is none yet);
    an entry that is not is removed, with a notice, and built again by the caller."""
    try:
        record = read_folder(entry, RECORD)
        if record.get("format") != CACHE_FORMAT or not isinstance(record.get("fast"), bool):
            raise DamagedEntry(f"has a {RECORD} of another shape")
        if record["fast"] and ("tokenizer.json" not in record["files"] or
                               not all(isinstance(record.get(k), t) for k, t in _SHAPE.items())):
            raise DamagedEntry(f"has a {RECORD} of another shape")
    except FileNotFoundError:
        return None
    except DamagedEntry as exc:
        set_aside(entry, str(exc), **_SAID)
        return None
    except OSError as exc:
        reporter().notice(f"tokenizer cache not read ({exc.strerror or exc}): loading the tokenizer with transformers")
        return None
    return record


def _write_entry(entry: Path, tokenizer: Any) -> tuple[bool, str]:
    """Decide and write the cache entry: into a temporary folder, renamed into place whole. Returns
    the decision: whether the fast path serves this tokenizer, and why."""
    fast, reason = provably_same(tokenizer)
    record: dict[str, Any] = {"format": CACHE_FORMAT, "fast": fast, "reason": reason}
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}.tmp-"))
    try:
        if fast:
            record.update(describe(tokenizer))
            (tmp / "tokenizer.json").write_text(tokenizer.backend_tokenizer.to_str(), encoding="utf-8")
        try:
            publish_folder(tmp, entry, record, RECORD)
        except FileExistsError:  # another process wrote it first: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return fast, reason


def describe(tokenizer: Any) -> dict[str, Any]:
    """The values of a transformers fast tokenizer that FastTokenizer answers with."""
    attributes = list(tokenizer.SPECIAL_TOKENS_ATTRIBUTES)
    values: dict[str, Any] = {}
    for attr in attributes:
        token = getattr(tokenizer, attr, None)
        values[attr] = None if token is None else str(token)
        values[f"{attr}_id"] = getattr(tokenizer, f"{attr}_id", None)
    for name in ("add_bos_token", "add_eos_token", "model_max_length"):
        values[name] = getattr(tokenizer, name, None)
    values["unk_token_id"] = getattr(tokenizer, "unk_token_id", None)
    return {
        "class": type(tokenizer).__name__,
        "name_or_path": str(getattr(tokenizer, "name_or_path", "")),
        "special_attributes": attributes,
        "all_special_tokens": list(tokenizer.all_special_tokens),
        "split_special_tokens": bool(getattr(tokenizer, "split_special_tokens", False)),
        "clean_up_tokenization_spaces": bool(getattr(tokenizer, "clean_up_tokenization_spaces", False)),
        "clean_up_bpe": bool(
            getattr(tokenizer, "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output", False)
        ),
        "values": values,
    }


def provably_same(tokenizer: Any) -> tuple[bool, str]:
    """Whether FastTokenizer gives exactly what TOKENIZER gives: the class uses the wrapper's own
    encode/decode methods, and every probe text agrees (ids, offsets, tokens, decoded text)."""
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    if not isinstance(tokenizer, TokenizersBackend):
        return False, f"{type(tokenizer).__name__} is not a tokenizers-backed tokenizer"
    for name in _METHODS:
        if getattr(type(tokenizer), name, None) is not getattr(TokenizersBackend, name, None):
            return False, f"{type(tokenizer).__name__} has its own {name}"
    if hasattr(tokenizer, "_switch_to_input_mode"):
        return False, f"{type(tokenizer).__name__} switches input modes"
    from tokenizers import Tokenizer

    fast = FastTokenizer(Tokenizer.from_str(tokenizer.backend_tokenizer.to_str()), describe(tokenizer))
    texts = [*PROBES, " ".join(tokenizer.all_special_tokens) + " x", "x".join(tokenizer.all_special_tokens)]
    for text in texts:
        for add in (True, False):
            want = tokenizer(text, add_special_tokens=add, return_offsets_mapping=True)
            got = fast(text, add_special_tokens=add, return_offsets_mapping=True)
            ids = list(want["input_ids"])
            if ids != list(got["input_ids"]) or [tuple(o) for o in want["offset_mapping"]] != list(got["offset_mapping"]):
                return False, f"the probe {text!r} encodes differently"
            if tokenizer.convert_ids_to_tokens(ids) != fast.convert_ids_to_tokens(ids):
                return False, f"the probe {text!r} gives other tokens"
            if tokenizer.decode(ids) != fast.decode(ids) or any(
                tokenizer.decode([i], clean_up_tokenization_spaces=False) != fast.decode([i], clean_up_tokenization_spaces=False)
                for i in ids
            ):
                return False, f"the probe {text!r} decodes differently"
    if sorted(tokenizer.all_special_ids) != sorted(fast.all_special_ids) or len(tokenizer) != len(fast):
        return False, "the special tokens or the vocabulary size differ"
    return True, "same backend and wrapper methods; every probe agrees"
