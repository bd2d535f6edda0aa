"""embeddings(): every number checked against transformers called directly on the same model."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

import llmscope
from llmscope.forward.embeddings import embeddings
from llmscope.forward.word_options import find_word, parse_analogy
from llmscope.errors import UsageError
from llmscope.loading.model import LoadSpec

TOL = 1e-4


@pytest.fixture
def loaded(loaded_models):
    return loaded_models


# --------------------------------------------------------------------------------------------
# The reference: straight from get_input_embeddings() and output_hidden_states


def ref_ids(lm, word: str) -> list[int]:
    return lm.tokenizer(" " + word, add_special_tokens=False)["input_ids"]


def ref_vector(lm, word: str) -> torch.Tensor:
    return lm.model.get_input_embeddings().weight[ref_ids(lm, word)].detach().mean(dim=0)


def ref_nearest(lm, query: torch.Tensor, exclude: set[int], k: int) -> tuple[list[int], list[float]]:
    weight = lm.model.get_input_embeddings().weight.detach()
    scores = F.normalize(weight, dim=1) @ F.normalize(query, dim=0)
    scores[list(exclude)] = float("-inf")
    top = torch.topk(scores, k)
    return top.indices.tolist(), top.values.tolist()


def states(model, **inputs) -> list[torch.Tensor]:
    """transformers' hidden states, numbered as every llmscope view numbers them: the embedding output, then
    each layer's output; a decoder's last one is its last layer's own output (read by a hook on that layer),
    where transformers hands it back after the final norm. An encoder (BERT) has no final norm."""
    base = model.base_model
    blocks = getattr(base, "layers", None) or getattr(base, "h", None)
    kept = []
    handle = blocks[-1].register_forward_hook(lambda _m, _a, out: kept.append(out[0] if isinstance(out, tuple) else out)) \
        if blocks is not None else None
    try:
        with torch.no_grad():
            hidden = list(model(**inputs, output_hidden_states=True).hidden_states)
    finally:
        if handle is not None:
            handle.remove()
    if kept:
        hidden[-1] = kept[-1]
    return hidden


def ref_hidden(lm, text: str, start: int, end: int) -> torch.Tensor:
    """(layers + 1, hidden): the mean over the tokens overlapping [start, end) of every hidden state."""
    enc = lm.tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    positions = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
    return torch.stack([h[0, positions].mean(dim=0) for h in states(lm.model, **enc)])


def ref_others(lm, text: str, start: int, end: int) -> list[torch.Tensor]:
    """Per hidden state, (tokens, hidden): the text tokens other than [start, end), special tokens left out."""
    enc = lm.tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    others = [i for i, (a, b) in enumerate(offsets) if b > a and not (a < end and b > start)]
    return [h[0, others] for h in states(lm.model, **enc)]


def check_words(lm, words: list[str], k: int = 5) -> None:
    report = embeddings(words, model=lm, neighbors=k)
    assert [w.text for w in report.words] == words
    assert [w.token_ids for w in report.words] == [ref_ids(lm, w) for w in words]
    vectors = [ref_vector(lm, w) for w in words]
    for i, a in enumerate(vectors):
        for j, b in enumerate(vectors):
            assert report.similarity[i][j] == pytest.approx(float(F.cosine_similarity(a, b, dim=0)), abs=TOL)
    for w, v, n in zip(words, vectors, report.neighbors):
        ids, cosines = ref_nearest(lm, v, set(ref_ids(lm, w)), k)
        assert n.word == w and [x.id for x in n.top] == ids
        assert [x.cosine for x in n.top] == pytest.approx(cosines, abs=TOL)
        assert not set(ids) & set(ref_ids(lm, w))


# --------------------------------------------------------------------------------------------
# Tiny models


@pytest.mark.parametrize("name", ["gpt2", "llama", "bert"])
def test_words_similarity_and_neighbors_match_transformers(loaded, name):
    check_words(loaded[name], ["cat", "dog", "mat", "capital"])


def test_a_gguf_file_gives_what_transformers_reads_from_it(tiny_gguf):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = LoadSpec(model=str(tiny_gguf), device="cpu", dtype="float32")
    report = embeddings(["cat", "sat", "mat"], model=spec, neighbors=3, contexts=["the cat sat", "a cat"], word="cat")
    direct = AutoModelForCausalLM.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    weight = direct.get_input_embeddings().weight.detach()
    ids = [tokenizer(" " + w, add_special_tokens=False)["input_ids"] for w in ("cat", "sat", "mat")]
    assert [w.token_ids for w in report.words] == ids
    vectors = [weight[i].mean(dim=0) for i in ids]
    assert report.similarity[0][2] == pytest.approx(float(F.cosine_similarity(vectors[0], vectors[2], dim=0)), abs=TOL)
    enc = [tokenizer(s, return_tensors="pt") for s in ("the cat sat", "a cat")]
    hidden = [states(direct, **e) for e in enc]
    positions = [s.positions for s in report.context.sentences]
    assert [tokenizer.decode(e["input_ids"][0, p]).strip() for e, p in zip(enc, positions)] == ["cat", "cat"]
    for row in report.context.layers:
        a, b = (h[row.hidden_state][0, p].mean(dim=0) for h, p in zip(hidden, positions))
        assert row.cosine == pytest.approx(float(F.cosine_similarity(a, b, dim=0)), abs=TOL)


def test_tied_says_whether_the_lm_head_is_the_same_matrix(loaded):
    assert embeddings(["cat"], model=loaded["gpt2"], neighbors=0).tied  # GPT-2 ties its head
    assert not embeddings(["cat"], model=loaded["llama"], neighbors=0).tied  # built with tie_word_embeddings=False


def test_half_precision_weights_are_scored_in_float32(tiny_models):
    lm = llmscope.load(str(tiny_models["llama"]), device="cpu", dtype="bfloat16")
    report = embeddings(["cat", "dog"], model=lm, neighbors=4)
    weight = lm.model.get_input_embeddings().weight.detach().float()
    for w, n in zip(["cat", "dog"], report.neighbors):
        query = weight[ref_ids(lm, w)].mean(dim=0)
        scores = F.normalize(weight, dim=1) @ F.normalize(query, dim=0)
        scores[ref_ids(lm, w)] = float("-inf")
        top = torch.topk(scores, 4)
        assert [x.id for x in n.top] == top.indices.tolist()
        assert [x.cosine for x in n.top] == pytest.approx(top.values.tolist(), abs=1e-3)


def test_as_typed_uses_the_text_exactly(loaded):
    lm = loaded["gpt2"]
    report = embeddings(["cat"], model=lm, as_typed=True, neighbors=0)
    assert report.words[0].token_ids == lm.tokenizer("cat", add_special_tokens=False)["input_ids"]
    assert report.words[0].token_ids != ref_ids(lm, "cat")
    assert report.neighbors == [] and report.analogy is None and report.context is None
    assert report.projection is None
    assert [w.text for w in embeddings("cat", model=lm, neighbors=0).words] == ["cat"]  # one word, not letters


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_analogy_is_3cosadd_over_unit_vectors(loaded, name):
    lm = loaded[name]
    report = embeddings([], model=lm, analogy="cat - dog + mat", neighbors=4)
    query = (F.normalize(ref_vector(lm, "cat"), dim=0) - F.normalize(ref_vector(lm, "dog"), dim=0)
             + F.normalize(ref_vector(lm, "mat"), dim=0))
    exclude = set(ref_ids(lm, "cat") + ref_ids(lm, "dog") + ref_ids(lm, "mat"))
    ids, cosines = ref_nearest(lm, query, exclude, 4)
    assert report.analogy.expression == "cat - dog + mat"
    assert report.analogy.terms == [(1, "cat"), (-1, "dog"), (1, "mat")]
    assert [x.id for x in report.analogy.top] == ids
    assert [x.cosine for x in report.analogy.top] == pytest.approx(cosines, abs=TOL)
    # the terms' own tokens: the rank and cosine each would have had
    weight = lm.model.get_input_embeddings().weight.detach()
    scores = F.normalize(weight, dim=1) @ F.normalize(query, dim=0)
    expected = sorted((int((scores > scores[i]).sum()) + 1, float(scores[i])) for i in exclude)
    assert [(rank, pytest.approx(c, abs=TOL)) for _, rank, c in report.analogy.left_out] == expected
    # --neighbors 0 turns the per-word lists off; the analogy still shows five
    assert len(embeddings([], model=lm, analogy="cat + dog", neighbors=0).analogy.top) == 5


@pytest.mark.parametrize("name", ["gpt2", "llama", "bert"])
def test_context_cosines_per_layer_match_hidden_states(loaded, name):
    lm = loaded[name]
    sentences = ["The cat sat on the mat.", "A quick brown cat jumps.", "Once upon a time, the cat read books."]
    report = embeddings([], model=lm, contexts=sentences[:2], word="cat")
    means = [ref_hidden(lm, s, s.index("cat"), s.index("cat") + 3) for s in sentences]
    n = lm.config.num_hidden_layers
    assert [row.hidden_state for row in report.context.layers] == list(range(n + 1))
    assert [row.layer for row in report.context.layers] == [None, *range(n)]  # embed, then layers from 0
    for row in report.context.layers:
        expected = F.cosine_similarity(means[0][row.hidden_state], means[1][row.hidden_state], dim=0)
        assert row.cosine == pytest.approx(float(expected), abs=TOL)
        assert row.similarity is None
        # the baseline: mean cosine over every pair (other token of sentence 1, other token of sentence 2)
        a, b = (ref_others(lm, s, s.index("cat"), s.index("cat") + 3)[row.hidden_state] for s in sentences[:2])
        pairs = F.cosine_similarity(a[:, None], b[None, :], dim=-1)  # (tokens of 1, tokens of 2)
        assert row.baseline == pytest.approx(float(pairs.mean()), abs=TOL)
    for s, text in zip(report.context.sentences, sentences):
        ids = lm.tokenizer(text)["input_ids"]
        assert s.text == text and s.positions and "cat" in "".join(s.tokens).lower()
        assert all(0 <= p < len(ids) for p in s.positions)
    # three sentences: every pair, per layer
    three = embeddings([], model=lm, contexts=sentences, word="cat").context
    for row in three.layers:
        for a in range(3):
            for b in range(3):
                expected = F.cosine_similarity(means[a][row.hidden_state], means[b][row.hidden_state], dim=0)
                assert row.similarity[a][b] == pytest.approx(float(expected), abs=TOL)


def test_context_counts_the_special_tokens(loaded):
    lm = loaded["bert"]  # [CLS] first: the word's positions are shifted by it
    report = embeddings([], model=lm, contexts=["cat on the mat", "the cat"], word="cat")
    ids = lm.tokenizer("cat on the mat")["input_ids"]
    assert ids[0] == lm.tokenizer.cls_token_id
    assert report.context.sentences[0].positions[0] == 1
    assert report.context.sentences[1].positions[0] == 2


@pytest.mark.parametrize("name", ["llama", "bert"])
def test_layer_uses_each_word_run_alone(loaded, name):
    lm = loaded[name]
    words = ["cat", "dog", "capital"]
    report = embeddings(words, model=lm, layer=1, neighbors=1)  # layer 1's output: hidden state 2
    vectors = [ref_hidden(lm, " " + w, 1, len(w) + 1)[2] for w in words]
    for i in range(3):
        for j in range(3):
            expected = F.cosine_similarity(vectors[i], vectors[j], dim=0)
            assert report.similarity[i][j] == pytest.approx(float(expected), abs=TOL)
    # neighbours among the words, not vocabulary rows
    best = max((j for j in range(3) if j != 0), key=lambda j: report.similarity[0][j])
    assert report.neighbors[0].top[0].token == words[best] and report.neighbors[0].top[0].id is None
    with pytest.raises(UsageError, match="layers 0 to 1"):
        embeddings(words, model=lm, layer=2)
    embed = embeddings(words, model=lm, layer="embed", neighbors=1)  # the embedding output: hidden state 0
    first = [ref_hidden(lm, " " + w, 1, len(w) + 1)[0] for w in words]
    assert embed.similarity[0][1] == pytest.approx(float(F.cosine_similarity(first[0], first[1], dim=0)), abs=TOL)


def test_plot_is_the_pca_of_the_unit_vectors(loaded):
    lm = loaded["gpt2"]
    words = ["cat", "dog", "mat", "capital", "robot"]
    report = embeddings(words, model=lm, plot=True, neighbors=0)
    x = F.normalize(torch.stack([ref_vector(lm, w) for w in words]).double(), dim=1)
    _, _, v = torch.pca_lowrank(x, q=len(words), center=True)
    expected = (x - x.mean(dim=0)) @ v[:, :2]  # (words, 2), up to each axis's sign
    got = torch.tensor([[p.x, p.y] for p in report.projection], dtype=torch.float64)
    assert [p.label for p in report.projection] == words
    for axis in range(2):
        assert torch.allclose(got[:, axis].abs(), expected[:, axis].abs(), atol=TOL)
    assert 0 < report.explained[1] <= report.explained[0] < 1


# --------------------------------------------------------------------------------------------
# Checks before any load


@pytest.mark.parametrize(
    "expression, terms",
    [("king - man + woman", [(1, "king"), (-1, "man"), (1, "woman")]), ("-man+woman", [(-1, "man"), (1, "woman")]),
     ("paris", [(1, "paris")]), ("new york - usa", [(1, "new york"), (-1, "usa")])],
)
def test_parse_analogy(expression, terms):
    assert parse_analogy(expression) == terms


@pytest.mark.parametrize("expression, words", [("", "no term"), (" + - ", "no term"), ("king - - man", "two signs"),
                                               ("king -", "ends with a sign")])
def test_bad_analogies(expression, words):
    with pytest.raises(UsageError, match=words):
        parse_analogy(expression)


def test_find_word_is_whole_word_first_occurrence():
    assert find_word("The bank by the river bank", "bank") == (4, 8)
    assert find_word("embankment and bank", "bank") == (15, 19)
    assert find_word("Bank of England", "bank") == (0, 4)
    assert find_word("banking", "bank") is None


def test_bad_input_never_loads(monkeypatch):
    def no_load(*args, **kwargs):
        raise AssertionError("loaded a model")

    monkeypatch.setattr("llmscope.loading.load", no_load)
    cases = [
        (dict(), "no words"),
        (dict(analogy=" - "), "no term"),
        (dict(contexts=["a bank", "the river"], word="bank"), "not in sentence 2 of contexts"),
        (dict(contexts=["a bank"], word="bank"), "two or more"),
        (dict(contexts=["a bank", "the bank"]), "contexts needs word"),
        (dict(words=["x"], plot=True), "at least two"),
    ]
    for kwargs, words in cases:
        with pytest.raises(UsageError, match=words):
            embeddings(model="/nonexistent", **kwargs)


# --------------------------------------------------------------------------------------------
# The embedded Gemma 3 270M


@pytest.mark.slow
def test_demo_model_words_and_fast_neighbors(demo_model):
    words = ["king", "queen", "man", "woman"]
    check_words(demo_model, words)
    weight = demo_model.model.get_input_embeddings().weight
    assert tuple(weight.shape) == (262_144, 640)
    embeddings(words, model=demo_model)  # warm
    started = time.perf_counter()
    embeddings(words, model=demo_model)
    assert time.perf_counter() - started < 3.0  # one matrix product over 262,144 rows (~0.3 s here)


@pytest.mark.slow
def test_demo_model_analogy_and_context(demo_model):
    lm = demo_model
    report = embeddings([], model=lm, analogy="king - man + woman", contexts=[
        "We sat on the river bank.", "I opened a bank account."], word="bank")
    query = sum(s * F.normalize(ref_vector(lm, w), dim=0) for s, w in [(1, "king"), (-1, "man"), (1, "woman")])
    exclude = set(ref_ids(lm, "king") + ref_ids(lm, "man") + ref_ids(lm, "woman"))
    ids, cosines = ref_nearest(lm, query, exclude, 5)
    assert [x.id for x in report.analogy.top] == ids
    assert [x.cosine for x in report.analogy.top] == pytest.approx(cosines, abs=TOL)
    river, account = "We sat on the river bank.", "I opened a bank account."
    a = ref_hidden(lm, river, river.index("bank"), river.index("bank") + 4)
    b = ref_hidden(lm, account, account.index("bank"), account.index("bank") + 4)
    assert len(report.context.layers) == lm.config.num_hidden_layers + 1
    for row in report.context.layers:
        assert row.cosine == pytest.approx(float(F.cosine_similarity(a[row.hidden_state], b[row.hidden_state], dim=0)), abs=TOL)
    assert report.context.sentences[0].positions == [6]  # <bos> We sat on the river bank
