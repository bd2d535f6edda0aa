"""What a model's vectors say about words: similarity, neighbours, analogies, and a word in context.

A word's vector is the mean of its tokens' rows of the input-embedding matrix (the anatomy map's
``embedding``: ``model.get_input_embeddings()``), looked up as the word stands in running text (one
space before it) unless ``as_typed``. Neighbours and analogies score every vocabulary row by cosine
in one normalised matrix product. The context view runs each sentence once with ``output_hidden_states``
and compares the word's mean hidden state between sentences at every depth.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llmscope import loading
from llmscope.forward.word_options import check_options, find_word, hidden_index
from llmscope.errors import ModelFormatError, UsageError
from llmscope.loading.model import LoadedModel
from llmscope.text.prompts import encode_for, token_text
from llmscope.progress import reporter
from llmscope.forward.vectors import cosine_matrix, nearest_rows, pca_2d, unit

if TYPE_CHECKING:  # pragma: no cover
    import torch

ANALOGY_TOP = 5  # rows the analogy shows when --neighbors 0 turned the per-word lists off


# --------------------------------------------------------------------------------------------
# Result types


# Fields with ``repr=False`` are for the Rich views; ``--json`` leaves them out (render.to_jsonable),
# so the JSON keys are exactly issue 15's.
def _view_only() -> Any:
    return dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class WordTokens:
    text: str
    token_ids: list[int]
    tokens: list[str]


@dataclasses.dataclass(frozen=True)
class Neighbor:
    id: int | None  # a vocabulary id; None for a neighbour among the words (--layer)
    token: str
    cosine: float


@dataclasses.dataclass(frozen=True)
class WordNeighbors:
    word: str
    top: list[Neighbor]


@dataclasses.dataclass(frozen=True)
class Analogy:
    expression: str
    top: list[Neighbor]
    terms: list[tuple[int, str]] = _view_only()  # (+1 or -1, word) in the order written
    left_out: list[tuple[str, int, float]] = _view_only()  # the terms' tokens: (token, rank it would have, cosine)


@dataclasses.dataclass(frozen=True)
class ContextSentence:
    text: str
    positions: list[int]  # token positions of the word, special tokens counted
    tokens: list[str] = _view_only()  # the tokens at those positions


@dataclasses.dataclass(frozen=True)
class ContextLayer:
    hidden_state: int  # index into hidden_states: 0 the embedding output, i + 1 the output of layer i
    cosine: float  # sentence 1 vs sentence 2
    similarity: list[list[float]] | None  # every pair, with more than two sentences
    baseline: float | None = _view_only()  # mean cosine of the other tokens of sentences 1 and 2

    @property
    def layer(self) -> int | None:
        """The layer whose output this is, numbered from 0 as in every view; None: the embedding output."""
        return None if self.hidden_state == 0 else self.hidden_state - 1

    def to_json(self) -> dict[str, Any]:
        keys = ("hidden_state", "layer", "cosine") + (() if self.similarity is None else ("similarity",))
        return {k: getattr(self, k) for k in keys}


@dataclasses.dataclass(frozen=True)
class ContextReport:
    word: str
    sentences: list[ContextSentence]
    layers: list[ContextLayer]


@dataclasses.dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float


@dataclasses.dataclass(frozen=True)
class EmbeddingReport:
    model: str
    words: list[WordTokens]
    similarity: list[list[float]]
    neighbors: list[WordNeighbors]
    analogy: Analogy | None
    context: ContextReport | None
    projection: list[Point] | None
    layer: int | str | None = _view_only()  # None: rows of the input embeddings; "embed": the embedding
    # output; N: the output of layer N (numbered from 0, as in every view)
    dtype: str = _view_only()
    vocab_size: int = _view_only()  # rows of the input-embedding matrix
    hidden_size: int = _view_only()
    num_layers: int = _view_only()
    explained: list[float] | None = _view_only()  # share of the variance along each plotted axis
    tied: bool = _view_only()  # the LM head is the same matrix
    warnings: list[str] = dataclasses.field(default_factory=list)  # about the --context sentences, as read


# --------------------------------------------------------------------------------------------
# Vectors


def word_ids(tokenizer: Any, word: str, *, as_typed: bool = False) -> list[int]:
    """The tokens of WORD as it stands in running text: ``tokenizer(" " + word)``, no special tokens."""
    text = word if as_typed else " " + word
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _hidden_means(
    lm: LoadedModel, text: str, span: tuple[int, int], warnings: list[str] | None = None
) -> tuple[list[int], list[int], torch.Tensor, torch.Tensor | None]:
    """Run TEXT once; return its ids, the positions overlapping SPAN, their mean at every hidden state,
    and the mean unit vector of the other text tokens (special tokens left out; None if there are none).

    Both are (num_hidden_layers + 1, hidden): row 0 the embedding output, row i layer i's output.
    """
    import torch

    encoded = encode_for(lm, text)  # as the model reads it, within its context
    if warnings is not None:
        warnings.extend(f"{text!r}: {w}" for w in encoded.warnings)
    ids, offsets = encoded.ids, encoded.offsets
    if offsets is None:
        raise ModelFormatError(f"{lm.source.display_name}: its tokenizer gives no character offsets",
                               hint="finding a word in a sentence needs a fast (Rust) tokenizer")
    start, end = span
    positions = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
    if not positions:
        raise ModelFormatError(f"{lm.source.display_name}: no token covers {text[start:end]!r} in {text!r}")
    from llmscope.forward.anatomy import anatomy
    from llmscope.forward.layers import final_norm, hidden_states

    # the numbering of every view: the last row is the last layer's own output, before the final norm
    _, hidden = hidden_states(lm, torch.tensor([ids], device=lm.device), final_norm(lm, anatomy(lm.model)))
    means = torch.stack([h[0, positions].double().mean(dim=0).cpu() for h in hidden])  # (layers+1, hidden)
    others = [i for i, (a, b) in enumerate(offsets) if b > a and i not in positions]
    other_means = None
    if others:
        other_means = torch.stack([unit(h[0, others].double()).mean(dim=0).cpu() for h in hidden])
    return ids, positions, means, other_means


def _context(lm: LoadedModel, word: str, sentences: Sequence[str]) -> tuple[ContextReport, list[str]]:
    """The word across SENTENCES, and the warnings about how the model reads them (two BOS tokens...)."""
    import torch

    rows, vectors, others, warnings = [], [], [], []
    with reporter().progress("Reading the sentences", total=len(sentences)) as bar:
        for sentence in sentences:
            span = find_word(sentence, word)
            if span is None:  # check_options has made sure, for the CLI
                raise UsageError(f"`word={word!r}` is not in {sentence!r}")
            ids, positions, means, other = _hidden_means(lm, sentence, span, warnings)
            rows.append(ContextSentence(sentence, positions, [token_text(lm.tokenizer, ids[p]) for p in positions]))
            vectors.append(means)
            others.append(other)
            bar.advance()
    stacked = unit(torch.stack(vectors))  # (sentences, layers+1, hidden)
    layers = []
    for layer in range(stacked.shape[1]):
        at = stacked[:, layer]  # (sentences, hidden)
        matrix = (at @ at.T).clamp(-1, 1).tolist()
        # the mean cosine between the other tokens of sentences 1 and 2: what "similar" means at this depth
        baseline = None if others[0] is None or others[1] is None else float(others[0][layer] @ others[1][layer])
        layers.append(ContextLayer(layer, matrix[0][1], matrix if len(sentences) > 2 else None, baseline))
    return ContextReport(word=word, sentences=rows, layers=layers), warnings


# --------------------------------------------------------------------------------------------
# The core function


class _Vocabulary:
    """The loaded model's words: token lookup, input-embedding rows, token text."""

    def __init__(self, lm: LoadedModel, as_typed: bool) -> None:
        from llmscope.forward.anatomy import anatomy, require

        self.lm, self.as_typed = lm, as_typed
        self.parts = anatomy(lm.model)
        require(self.parts, "embedding")
        self.weight = self.parts.module(lm.model, self.parts.embedding).weight  # (vocab, hidden)

    def ids(self, word: str) -> list[int]:
        ids = word_ids(self.lm.tokenizer, word, as_typed=self.as_typed)
        if not ids:
            raise UsageError(f"{word!r} has no tokens for {self.lm.source.display_name}")
        return ids

    def text(self, token_id: int) -> str:
        return token_text(self.lm.tokenizer, token_id)

    def mean(self, ids: list[int]) -> torch.Tensor:
        """The mean of the tokens' rows: (hidden,) in float64 on the CPU."""
        import torch

        with torch.inference_mode():
            return self.weight[ids].double().mean(dim=0).cpu()

    def nearest(self, queries: torch.Tensor, exclude: list[set[int]], k: int) -> list[list[Neighbor]]:
        found, _ = nearest_rows(self.weight, queries, exclude, k)
        return [[Neighbor(i, self.text(i), c) for i, c in top] for top in found]

    @property
    def tied(self) -> bool:
        """Whether the LM head reads the same matrix (tied input and output embeddings)."""
        return self.parts.tied


def _word_vectors(vocab: _Vocabulary, words: list[str], ids: list[list[int]], layer: int | None) -> torch.Tensor:
    """(words, hidden): rows of the input embeddings (LAYER None), or hidden_states[LAYER] of each word run alone."""
    import torch

    if not words:
        return torch.empty(0, vocab.weight.shape[1], dtype=torch.float64)
    if layer is None:
        return torch.stack([vocab.mean(i) for i in ids])
    rows = []
    with reporter().progress("Running each word", total=len(words)) as bar:
        for w in words:
            text = w if vocab.as_typed else " " + w  # as the model reads it; the word's own span
            rows.append(_hidden_means(vocab.lm, text, (0 if vocab.as_typed else 1, len(text)))[2][layer])
            bar.advance()
    return torch.stack(rows)


def _among_words(words: list[str], similarity: list[list[float]], k: int) -> list[WordNeighbors]:
    """With --layer the vocabulary rows are not hidden states: rank the other words instead."""
    near = []
    for a, w in enumerate(words):
        others = sorted((b for b in range(len(words)) if b != a), key=lambda b: -similarity[a][b])
        near.append(WordNeighbors(w, [Neighbor(None, words[b], similarity[a][b]) for b in others[:k]]))
    return near


def _analogy(vocab: _Vocabulary, expression: str, terms: list[tuple[int, str]], k: int) -> Analogy:
    """3CosAdd, as word2vec's demo and gensim's most_similar: the sum of signed unit vectors."""
    ids_of = [vocab.ids(t) for _, t in terms]
    combined = sum(sign * unit(vocab.mean(ids)) for (sign, _), ids in zip(terms, ids_of))  # (hidden,)
    excluded = set(itertools.chain.from_iterable(ids_of))
    found, left_out = nearest_rows(vocab.weight, combined[None], [excluded], k)
    top = [Neighbor(i, vocab.text(i), c) for i, c in found[0]]
    return Analogy(expression.strip(), top, terms, [(vocab.text(i), rank, c) for i, rank, c in left_out[0]])


def _check_work(lm: LoadedModel, vocab: _Vocabulary, ids: list[list[int]], *, neighbors: int, layer: bool,
                analogy: bool, contexts: Sequence[str]) -> None:
    """The estimate of what the words, neighbours and sentences will allocate, refused (exit 1) before
    any of it runs when it cannot fit (as the forward-pass views are)."""
    from llmscope.memory.forward_guard import check_fits, embeddings_work

    context_tokens = [len(lm.tokenizer(s)["input_ids"]) for s in contexts]
    estimate = embeddings_work(lm.config, [len(i) for i in ids], vocab_rows=int(vocab.weight.shape[0]),
                               neighbors=neighbors, layer=layer, analogy=analogy, context_tokens=context_tokens,
                               dtype=str(vocab.weight.dtype))
    hints = ["fewer words"]
    if neighbors and not layer:
        hints.append("`neighbors=0` (no nearest vocabulary tokens)")
    if contexts:
        hints.append("fewer or shorter `contexts`")
    check_fits(estimate, device=lm.device, hints=hints)


def embeddings(
    words: Sequence[str] = (),
    *,
    model: loading.ModelLike = None,
    neighbors: int = 5,
    analogy: str | None = None,
    contexts: Sequence[str] = (),
    word: str | None = None,
    layer: int | str | None = None,
    plot: bool = False,
    as_typed: bool = False,
) -> EmbeddingReport:
    """Words as the model's vectors: their tokens, pairwise cosines, nearest vocabulary rows, an
    analogy, a PCA picture, and one word's hidden states compared across sentences at every layer."""
    words = [words] if isinstance(words, str) else list(words)  # embeddings("king") is one word
    terms = check_options(words, neighbors=neighbors, analogy=analogy, contexts=contexts, word=word,
                          layer=layer, plot=plot)
    lm = loading.load(model)
    from llmscope.config.values import text_config

    num_layers = int(text_config(lm.config).num_hidden_layers)
    index = hidden_index(layer, num_layers)
    vocab = _Vocabulary(lm, as_typed)
    ids = [vocab.ids(w) for w in words]
    _check_work(lm, vocab, ids, neighbors=neighbors, layer=index is not None, analogy=terms is not None,
                contexts=contexts)
    vectors = _word_vectors(vocab, words, ids, index)  # (words, hidden)
    similarity = cosine_matrix(vectors)
    near: list[WordNeighbors] = []
    if neighbors and layer is None:
        found = vocab.nearest(vectors, [set(i) for i in ids], neighbors) if words else []
        near = [WordNeighbors(w, top) for w, top in zip(words, found)]
    elif neighbors:
        near = _among_words(words, similarity, neighbors)
    context, warnings = _context(lm, word.strip(), contexts) if contexts else (None, [])
    projection = explained = None
    if plot:
        coords, explained = pca_2d(vectors)
        projection = [Point(w, x, y) for w, (x, y) in zip(words, coords)]
    return EmbeddingReport(
        model=lm.source.display_name,
        dtype=str(vocab.weight.dtype).replace("torch.", ""),
        vocab_size=int(vocab.weight.shape[0]),
        hidden_size=int(vocab.weight.shape[1]),
        num_layers=num_layers,
        layer=None if index is None else ("embed" if index == 0 else index - 1),
        words=[WordTokens(w, i, [vocab.text(t) for t in i]) for w, i in zip(words, ids)],
        similarity=similarity,
        neighbors=near,
        analogy=_analogy(vocab, analogy, terms, neighbors or ANALOGY_TOP) if terms is not None else None,
        context=context,
        projection=projection,
        explained=explained,
        tied=vocab.tied,
        warnings=warnings,
    )


# The name in ``llmscope``'s lazy API: ``llmscope.forward.embeddings`` is this module once it is imported.
embedding_report = embeddings
