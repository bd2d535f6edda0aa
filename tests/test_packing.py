"""llmscope.text.packing: counts recomputed here from the tokenizer's own token counts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from llmscope.errors import UsageError
from llmscope.text.packing import pack
from llmscope.render.packing import packed_layout, padded_layout

DOCS = [
    "The cat sat on the mat because it was tired.",
    "Hi.",
    "Once upon a time, there was a little robot who loved to read books about the sea. " * 3,
    "Paris is the capital of France.",
]


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    paths = []
    for i, doc in enumerate(DOCS):
        path = tmp_path / f"doc{i}.txt"
        path.write_text(doc, encoding="utf-8")
        paths.append(path)
    return paths


def _lengths(folder, texts):
    tok = AutoTokenizer.from_pretrained(folder)
    return tok, [len(tok.encode(t, add_special_tokens=False)) for t in texts]


@pytest.mark.parametrize("seq_len", [1, 7, 16, 64, 1000])
def test_counts_match_the_tokenizer(tiny_models, files, seq_len):
    folder = str(tiny_models["gpt2"])
    tok, lengths = _lengths(folder, DOCS)
    result = pack(files, model=folder, seq_len=seq_len)
    total = sum(lengths)
    assert result.documents == len(DOCS) and result.tokens == total
    assert (result.shortest, result.longest) == (min(lengths), max(lengths))
    # padding: one or more sequences per document
    padded_sequences = sum(-(-n // seq_len) for n in lengths)
    assert result.padded.sequences == padded_sequences
    assert result.padded.padding_tokens == padded_sequences * seq_len - total
    assert result.padded.utilisation == pytest.approx(total / (padded_sequences * seq_len))
    # packing: all documents plus one EOS each, back-to-back
    assert result.separator_ids == [tok.eos_token_id]
    stream = total + len(DOCS)
    assert result.packed.sequences == math.ceil(stream / seq_len)
    assert result.packed.padding_tokens == result.packed.sequences * seq_len - stream
    assert result.packed.separator_tokens == len(DOCS)
    assert result.packed.utilisation == pytest.approx(total / (result.packed.sequences * seq_len))
    assert result.long_documents == sum(n > seq_len for n in lengths)


def test_texts_by_line_and_custom_separator(tiny_models):
    folder = str(tiny_models["llama"])
    text = "\n".join(DOCS) + "\n\n"
    tok, lengths = _lengths(folder, DOCS)
    sep = tok.encode("</s></s>", add_special_tokens=False)
    result = pack([text], model=folder, seq_len=32, separator="</s></s>", by_line=True)
    assert result.documents == len(DOCS) and result.empty_documents == 1
    assert result.separator_ids == sep and len(sep) == 2
    assert result.packed.separator_tokens == 2 * len(DOCS)
    assert result.packed.sequences == math.ceil((sum(lengths) + 2 * len(DOCS)) / 32)
    assert result.lengths == lengths


def test_stdin(tiny_models, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(DOCS[0]))
    folder = str(tiny_models["gpt2"])
    _, lengths = _lengths(folder, DOCS[:1])
    result = pack(["-"], model=folder, seq_len=8)
    assert result.tokens == lengths[0]


def test_layouts_fill_sequences_exactly():
    lengths = [5, 12, 3]
    padded = padded_layout(lengths, 8, limit=100)
    assert [sum(n for _, n in row) for row in padded] == [8] * 4
    assert len(padded) == 4  # 5 -> 1, 12 -> 2, 3 -> 1
    packed = packed_layout(lengths, 8, 1, limit=100)
    assert [sum(n for _, n in row) for row in packed] == [8] * 3  # 20 + 3 separators = 23 -> 3 sequences
    assert sum(n for row in packed for kind, n in row if kind >= 0) == 20


@pytest.mark.parametrize("seq_len", [0, -3])
def test_bad_seq_len(tiny_models, files, seq_len):
    with pytest.raises(UsageError):
        pack(files, model=str(tiny_models["gpt2"]), seq_len=seq_len)


def test_missing_file_and_empty_input(tiny_models, tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        pack([tmp_path / "nope.txt"], model=str(tiny_models["gpt2"]), seq_len=8)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(UsageError):
        pack([tmp_path / "empty.txt"], model=str(tiny_models["gpt2"]), seq_len=8)
