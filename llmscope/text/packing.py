"""The cost of padding documents to a fixed sequence length versus packing them back-to-back.

Only the tokenizer is loaded. Each document is tokenized without special tokens; then:

* padding: every document goes into its own sequences; a document longer than ``seq_len`` is split
  into ``ceil(length / seq_len)`` chunks (nothing is truncated), and each chunk is padded to
  ``seq_len``;
* packing: documents are concatenated, each followed by the separator (EOS by default), and the
  stream is cut into sequences of ``seq_len``; only the last sequence is padded.

Utilisation is the share of the sequence slots that hold document tokens.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from llmscope import loading
from llmscope.errors import UsageError
from llmscope.progress import Reporter, reporter

BATCH = 256  # documents tokenized per call: fast tokenizers work in parallel over a batch
PROGRESS_BYTES = 1 << 20  # inputs at least this large show a progress bar


# --------------------------------------------------------------------------------------------
# Result types


@dataclasses.dataclass(frozen=True)
class StrategyCost:
    sequences: int
    document_tokens: int
    separator_tokens: int
    padding_tokens: int
    utilisation: float  # document tokens / (sequences x seq_len)


@dataclasses.dataclass(frozen=True)
class PackingResult:
    """``llmscope pack``: padding versus packing the same documents into sequences of ``seq_len``."""

    model: str  # the display name (ModelSource.display_name), as in every result
    source: str  # the same name: the key pack's --json had before "model"
    seq_len: int
    separator: str
    separator_ids: list[int]
    documents: int
    empty_documents: int  # skipped: no tokens
    tokens: int  # document tokens, no special tokens
    shortest: int
    longest: int
    mean: float
    long_documents: int  # longer than seq_len: split into chunks when padding
    chunks: int  # sequences those long documents take when padding
    padded: StrategyCost
    packed: StrategyCost
    lengths: list[int] = dataclasses.field(repr=False, default_factory=list)  # per document, for the picture

    @property
    def saved_sequences(self) -> int:
        return self.padded.sequences - self.packed.sequences


# --------------------------------------------------------------------------------------------
# Reading documents


def _documents(
    inputs: Iterable[str | Path], by_line: bool
) -> Iterator[tuple[str, int]]:
    """(text, bytes consumed) per document. Files and '-' (standard input) are read through
    ``llmscope.text.inputs``: regular files only, a stream bounded by LLMSCOPE_MAX_INPUT_BYTES each,
    strict UTF-8."""
    from llmscope.text import inputs as reader

    for item in inputs:
        if isinstance(item, Path) or item == "-":
            path = None if str(item) == "-" else item
            where = "standard input" if path is None else f"file {item}"
            if by_line:
                yield from reader.iter_lines(path, where=where)
            else:
                text = reader.read_stdin() if path is None else reader.read_file(path, where=where)
                yield text, len(text.encode("utf-8", errors="replace"))
        elif by_line:
            for line in str(item).splitlines():
                yield line, len(line.encode("utf-8")) + 1
        else:
            yield str(item), len(str(item).encode("utf-8"))


def _total_bytes(inputs: list[str | Path]) -> int | None:
    total = 0
    for item in inputs:
        if isinstance(item, Path):
            try:
                total += os.path.getsize(Path(item).expanduser())
            except OSError:
                return None
        elif item == "-":
            return None
        else:
            total += len(str(item).encode("utf-8"))
    return total


# --------------------------------------------------------------------------------------------
# The arithmetic


def padded_cost(lengths: list[int], seq_len: int) -> StrategyCost:
    """Each document in its own sequences, long ones split into chunks, every chunk padded."""
    sequences = sum(math.ceil(n / seq_len) for n in lengths)
    tokens = sum(lengths)
    slots = sequences * seq_len
    return StrategyCost(
        sequences=sequences,
        document_tokens=tokens,
        separator_tokens=0,
        padding_tokens=slots - tokens,
        utilisation=tokens / slots if slots else 0.0,
    )


def packed_cost(lengths: list[int], seq_len: int, separator_len: int) -> StrategyCost:
    """Documents back-to-back, each followed by the separator, cut every ``seq_len`` tokens."""
    tokens = sum(lengths)
    separators = separator_len * len(lengths)
    stream = tokens + separators
    sequences = math.ceil(stream / seq_len)
    slots = sequences * seq_len
    return StrategyCost(
        sequences=sequences,
        document_tokens=tokens,
        separator_tokens=separators,
        padding_tokens=slots - stream,
        utilisation=tokens / slots if slots else 0.0,
    )


# --------------------------------------------------------------------------------------------
# Tokenizing, and the public function


def _token_lengths(tokenizer: Any, inputs: list[str | Path], by_line: bool) -> tuple[list[int], int]:
    """The token count of every non-empty document, and how many documents were empty.

    Tokenizes in batches (fast tokenizers work in parallel over a batch); inputs of a known size
    under PROGRESS_BYTES get no bar (it would only flicker).
    """
    lengths: list[int] = []
    empty = 0
    total_bytes = _total_bytes(inputs)
    talk = reporter() if total_bytes is None or total_bytes >= PROGRESS_BYTES else Reporter()
    with talk.progress("Tokenizing", total=total_bytes, unit="bytes") as bar:
        batch: list[str] = []
        batch_bytes = 0

        def flush() -> None:
            nonlocal empty, batch_bytes
            if not batch:
                return
            for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
                if ids:
                    lengths.append(len(ids))
                else:
                    empty += 1
            bar.advance(batch_bytes)
            batch.clear()
            batch_bytes = 0

        for text, size in _documents(inputs, by_line):
            batch.append(text)
            batch_bytes += size
            if len(batch) >= BATCH:
                flush()
        flush()
    return lengths, empty


def pack(
    files_or_texts: Iterable[str | Path],
    *,
    model: loading.ModelLike = None,
    seq_len: int,
    separator: str | None = None,
    by_line: bool = False,
) -> PackingResult:
    """Tokenize documents and compare padding each to ``seq_len`` with packing them.

    ``files_or_texts``: ``Path``s are text files (one document each, or one per line with
    ``by_line``), ``"-"`` is standard input, any other string is a document's text. ``separator``
    is the text of the token(s) put between packed documents; default: the tokenizer's EOS.
    ``model``: any form ``load`` takes (a ``LoadSpec`` carries the revision, the GGUF file and
    ``trust_remote_code``); only its tokenizer is loaded.
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise UsageError(f"`seq_len={seq_len}`: must be a whole number of at least 1")
    inputs = list(files_or_texts)
    if not inputs:
        raise UsageError("no documents given", hint="name text files, or - for standard input")
    from llmscope.text.inputs import check_regular_file, max_input_bytes

    for item in inputs:  # before the tokenizer loads: regular files of at most the input limit
        if isinstance(item, Path) and str(item) != "-":
            check_regular_file(item, f"file {item}", max_input_bytes())

    if isinstance(model, loading.LoadedModel):
        tokenizer, source_name = model.tokenizer, model.source.display_name
    else:
        spec = loading.load_spec(model)
        source = loading.source_of(spec)
        tokenizer = loading.load_tokenizer(source, trust_remote_code=spec.trust_remote_code)
        source_name = source.display_name

    if separator is None:
        if tokenizer.eos_token_id is None:
            raise UsageError("this tokenizer has no EOS token to separate documents", hint="give one with `separator`")
        separator_ids = [int(tokenizer.eos_token_id)]
        separator_text = str(tokenizer.eos_token)
    else:
        separator_ids = list(tokenizer(separator, add_special_tokens=False)["input_ids"])
        separator_text = separator
        if not separator_ids:
            raise UsageError(f"`separator={separator!r}` is no token at all for this tokenizer")

    lengths, empty = _token_lengths(tokenizer, inputs, by_line)
    if not lengths:
        raise UsageError("the documents hold no tokens", hint="are the files empty?")
    long_docs = [n for n in lengths if n > seq_len]
    return PackingResult(
        model=source_name,
        source=source_name,
        seq_len=seq_len,
        separator=separator_text,
        separator_ids=separator_ids,
        documents=len(lengths),
        empty_documents=empty,
        tokens=sum(lengths),
        shortest=min(lengths),
        longest=max(lengths),
        mean=sum(lengths) / len(lengths),
        long_documents=len(long_docs),
        chunks=sum(math.ceil(n / seq_len) for n in long_docs),
        padded=padded_cost(lengths, seq_len),
        packed=packed_cost(lengths, seq_len, len(separator_ids)),
        lengths=lengths,
    )
