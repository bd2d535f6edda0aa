"""What ``embeddings`` checks before any model loads: the analogy's terms, a word in a sentence, the options
together, and which hidden state ``layer`` names (``embed`` or a layer number from 0, as every view numbers them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from llmscope.errors import UsageError

# Words (and context sentences) one call compares at most: their cosines are a words x words table (256
# words: 65,536 cells, drawn in seconds; 3,000 words took minutes and 20,000 gigabytes).
MAX_WORDS = 256


def parse_analogy(expression: str) -> list[tuple[int, str]]:
    """``"king - man + woman"`` -> ``[(1, "king"), (-1, "man"), (1, "woman")]``; a leading sign is allowed."""
    example = "write it like 'king - man + woman'"
    parts = [p.strip() for p in re.split(r"([+-])", expression)]  # terms and signs, alternating
    if not any(p and p not in ("+", "-") for p in parts):
        raise UsageError(f"`analogy={expression!r}` has no term", hint=example)
    terms: list[tuple[int, str]] = []
    sign: int | None = None
    for part in parts:
        if part in ("+", "-"):
            if sign is not None:
                raise UsageError(f"`analogy={expression!r}`: two signs in a row", hint=example)
            sign = 1 if part == "+" else -1
        elif part:
            terms.append((sign or 1, part))
            sign = None
    if sign is not None:
        raise UsageError(f"`analogy={expression!r}` ends with a sign", hint=example)
    return terms


def find_word(sentence: str, word: str) -> tuple[int, int] | None:
    """The character span of WORD's first whole-word occurrence (any case when the exact case is absent)."""
    pattern = r"(?<!\w)" + re.escape(word) + r"(?!\w)"
    found = re.search(pattern, sentence) or re.search(pattern, sentence, flags=re.IGNORECASE)
    return found.span() if found else None


def check_options(
    words: Sequence[str],
    *,
    neighbors: int = 5,
    analogy: str | None = None,
    contexts: Sequence[str] = (),
    word: str | None = None,
    layer: int | str | None = None,
    plot: bool = False,
) -> list[tuple[int, str]] | None:
    """Every check that needs no model (one clear line each); returns the parsed analogy."""
    if len(words) > MAX_WORDS:
        raise UsageError(f"{len(words):,} words: at most {MAX_WORDS:,} (their cosines are a words x words table)",
                         hint="compare fewer words at a time")
    if len(contexts) > MAX_WORDS:
        raise UsageError(f"{len(contexts):,} `contexts`: at most {MAX_WORDS:,} (their cosines are a sentences x "
                         "sentences table at every layer)", hint="compare fewer sentences at a time")
    for w in words:
        if not w.strip():
            raise UsageError("a WORD is empty", hint="give words like: llmscope embeddings king queen")
    if not words and analogy is None and not contexts and word is None:
        raise UsageError("no words", hint="give words (llmscope embeddings king queen), `analogy` or `contexts`")
    if neighbors < 0:
        raise UsageError(f"`neighbors={neighbors}`: must be 0 or more")
    hidden_index(layer)  # "embed" or a layer number
    if plot and len(words) < 2:
        raise UsageError("`plot=True` needs at least two words")
    terms = parse_analogy(analogy) if analogy is not None else None
    if contexts or word is not None:
        if len(contexts) < 2:
            raise UsageError(
                f"{len(contexts)} `contexts` given: the context view compares two or more sentences",
                hint="e.g. `contexts` 'I sat on the river bank.' and 'I paid at the bank.' with `word='bank'`",
            )
        if word is None or not word.strip():
            raise UsageError("`contexts` needs `word`: the word to follow through the sentences")
        for i, sentence in enumerate(contexts, 1):
            if find_word(sentence, word.strip()) is None:
                raise UsageError(f"`word={word.strip()!r}` is not in sentence {i} of `contexts`: {sentence!r}")
    return terms


def hidden_index(layer: int | str | None, num_layers: int | None = None) -> int | None:
    """Which hidden state LAYER names: "embed" -> 0 (the embedding output), N -> N + 1 (layer N's output,
    numbered from 0 as ``layers`` and ``attention`` number them); None stays None (the input embeddings)."""
    if layer is None:
        return None
    if isinstance(layer, str):
        text = layer.strip().lower()
        if text in ("embed", "embeddings", "embedding"):
            return 0
        try:
            layer = int(text)
        except ValueError:
            raise UsageError(f"`layer={layer!r}`: give embed (the embedding output) or a layer number") from None
    hint = "embed is the embedding output, N the output of layer N (from 0, as in layers and attention)"
    if layer < 0:
        raise UsageError(f"`layer={layer}`: must be embed or 0 or more", hint=hint)
    if num_layers is not None and layer >= num_layers:
        raise UsageError(f"`layer={layer}`: this model has layers 0 to {num_layers - 1}", hint=hint)
    return layer + 1
