"""A prompt cut into units a person reads (tokens, words, sentences), each unit the tokens it holds.

Attribution (``llmscope why``) sums token scores within a unit, or replaces a whole unit at once. A
word is a run of non-space characters with the spaces before it (" Paris."), a sentence runs to its
``.``, ``!`` or ``?`` (or a line break) and the spaces after it, so the units tile the text. A token
belongs to the unit holding its last character. Fixed tokens (BOS, chat-template tokens) are never part
of a unit: each stays apart as a unit of its own, flagged ``special``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

BY = ("token", "word", "sentence")
_WORD = re.compile(r"\s*\S+|\s+$")
_SENTENCE = re.compile(r".*?(?:[.!?]+(?=\s|$)\s*|\n+|$)", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Unit:
    """Tokens read as one unit: their positions in the prompt and the characters they cover."""

    text: str
    start: int | None  # character span in the text (None: the tokenizer gives no offsets)
    end: int | None
    positions: tuple[int, ...]
    special: bool = False


def spans(text: str, by: str) -> list[tuple[int, int]]:
    """The character spans of TEXT's words or sentences, in order, covering all of it."""
    pattern = _WORD if by == "word" else _SENTENCE
    out = [(m.start(), m.end()) for m in pattern.finditer(text) if m.end() > m.start()]
    return out or [(0, len(text))]


def units(
    text: str,
    token_texts: Sequence[str],
    offsets: Sequence[tuple[int, int]] | None,
    fixed: set[int],
    by: str,
) -> list[Unit]:
    """The prompt's tokens grouped BY token, word or sentence, in order. Without offsets a word starts
    at a token that begins with a space and a sentence after a token ending in . ! ? or a line break."""
    if by == "token":
        return [_one(text, token_texts, offsets, i, i in fixed) for i in range(len(token_texts))]
    if offsets is None:
        return _by_texts(token_texts, fixed, by)
    bounds = spans(text, by)
    out: list[Unit] = []
    group: list[int] = []
    current: int | None = None

    def close() -> None:
        if group:
            s, e = offsets[group[0]][0], offsets[group[-1]][1]
            out.append(Unit(text[s:e], s, e, tuple(group)))
            group.clear()

    for i in range(len(token_texts)):
        if i in fixed or offsets[i][1] <= offsets[i][0]:
            close()
            current = None
            out.append(_one(text, token_texts, offsets, i, True))
            continue
        where = _span_index(bounds, offsets[i][1] - 1)
        if where != current:
            close()
            current = where
        group.append(i)
    close()
    return out


def _span_index(bounds: list[tuple[int, int]], char: int) -> int:
    for k, (s, e) in enumerate(bounds):
        if s <= char < e:
            return k
    return len(bounds) - 1


def _one(text: str, token_texts: Sequence[str], offsets: Sequence[tuple[int, int]] | None, i: int,
         special: bool) -> Unit:
    if offsets is None or offsets[i][1] <= offsets[i][0]:
        return Unit(token_texts[i], None if offsets is None else offsets[i][0],
                    None if offsets is None else offsets[i][1], (i,), special)
    s, e = offsets[i]
    return Unit(text[s:e], s, e, (i,), special)


def _by_texts(token_texts: Sequence[str], fixed: set[int], by: str) -> list[Unit]:
    """Units from the decoded tokens alone (a slow tokenizer gives no character offsets)."""
    out: list[Unit] = []
    group: list[int] = []

    def close() -> None:
        if group:
            out.append(Unit("".join(token_texts[j] for j in group), None, None, tuple(group)))
            group.clear()

    for i, piece in enumerate(token_texts):
        if i in fixed:
            close()
            out.append(Unit(piece, None, None, (i,), True))
            continue
        if by == "word" and group and piece[:1].isspace():
            close()
        group.append(i)
        if by == "sentence" and re.search(r"([.!?]\s*|\n)$", piece):
            close()
    close()
    return out
