"""Property tests: random text and option values never crash tokenize, next-token and generate.

Any values at all end in a result or an ``LlmscopeError`` (never another exception). In-range values
always give a result (no example is refused, so none passes vacuously; texts too long for the
context are filtered out with ``assume``, which hypothesis counts), and the results keep their
invariants: ids are the tokenizer's own, probabilities are transformers' own softmax, generation
writes at most ``max_new_tokens`` tokens. One out-of-range value among good ones is always refused
with an error naming that option. The tiny GPT-2 and Llama fixtures are loaded once per session
(conftest's ``loaded_models``) and passed as ``model=``.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import llmscope
from llmscope.decoding.sampling import settings_for
from llmscope.errors import LlmscopeError, UsageError

SETTINGS = settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Any text a person or an attacker can type: every Unicode category, controls, combining marks and
# emoji included (lone surrogates cannot come from a UTF-8 source and are tested separately).
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)
WORDS = st.lists(st.sampled_from(["the", "cat", "sat", " ", "\n", "é", "東京", "😀", "<s>", "</s>", "[MASK]"]),
                 max_size=12).map("".join)
PROMPTS = st.one_of(TEXT, WORDS)


def _finite_probability(p: float) -> bool:
    return math.isfinite(p) and 0.0 <= p <= 1.0 + 1e-6


# --------------------------------------------------------------------------------------------
# tokenize


@SETTINGS
@given(text=PROMPTS, name=st.sampled_from(["gpt2", "llama"]), special=st.booleans())
def test_tokenize_ids_are_the_tokenizers(loaded_models, hf_tokenizers, text, name, special):
    result = llmscope.tokenize(text, model=loaded_models[name], add_special_tokens=special)
    assert result.ids == hf_tokenizers[name](text, add_special_tokens=special)["input_ids"]
    assert len(result.tokens) == len(result.ids)


@SETTINGS
@given(text=PROMPTS, system=st.one_of(st.none(), TEXT))
def test_tokenize_chat_never_crashes(loaded_models, hf_tokenizers, text, system):
    result = llmscope.tokenize(text, model=loaded_models["llama"], chat=True, system=system)
    tok = hf_tokenizers["llama"]
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": text}
    ]
    assert result.ids == list(tok.apply_chat_template(messages, add_generation_prompt=True)["input_ids"])


@SETTINGS
@given(ids=st.lists(st.integers(min_value=-5, max_value=10**6), max_size=8))
def test_decode_any_ids(loaded_models, hf_tokenizers, ids):
    """Ids in the vocabulary decode exactly as the tokenizer does; any other id is a usage error."""
    from llmscope.text.tokens import decode_ids

    tok = hf_tokenizers["gpt2"]
    if not all(0 <= i < len(tok) for i in ids):
        with pytest.raises(UsageError):
            decode_ids(ids, model=loaded_models["gpt2"])
        return
    result = decode_ids(ids, model=loaded_models["gpt2"])
    assert list(result.ids) == ids
    assert [t.token for t in result.tokens] == tok.convert_ids_to_tokens(ids)
    assert result.text == tok.decode(ids)


@SETTINGS
@given(text=st.text(max_size=20).map(lambda t: t + "\udce9"))
def test_lone_surrogates_are_a_clear_error(loaded_models, text):
    """A str holding a lone surrogate (what Python makes of invalid UTF-8) is refused as a usage
    error naming the surrogate, before any tokenizer sees it (st.text never makes surrogates itself)."""
    with pytest.raises(UsageError, match="surrogate"):
        llmscope.tokenize(text, model=loaded_models["gpt2"])


# --------------------------------------------------------------------------------------------
# next-token
#
# Three kinds of test for each entry point: any value at all gives a result or an LlmscopeError,
# never another exception; in-range values always give a result, whose invariants are checked
# (nothing is refused there, so no example passes vacuously); and one out-of-range value among good
# ones is always refused, with an error naming that option. ``rows`` and ``steps`` go to next_token
# itself; the decoding values build its ``settings`` (``settings_for``, which checks them).

KNOBS = dict(
    rows=st.integers(min_value=-2, max_value=10**6),
    temperature=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 5)),
    top_k=st.one_of(st.none(), st.integers(min_value=-2, max_value=10**6)),
    top_p=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.floats(0.01, 1)),
    min_p=st.one_of(st.none(), st.floats(-0.5, 1.5)),
    steps=st.integers(min_value=-1, max_value=4),
    strategy=st.sampled_from([None, "greedy", "sample", "top-k", "top-p", "min-p", "typical", "beam", "Greedy",
                              "nucleus", ""]),
    seed=st.integers(min_value=-1, max_value=2**70),
)
GOOD_KNOBS = dict(
    rows=st.integers(min_value=1, max_value=10**6),
    temperature=st.one_of(st.just(0.0), st.floats(0.05, 5)),
    top_k=st.one_of(st.none(), st.integers(min_value=1, max_value=10**6)),
    top_p=st.one_of(st.none(), st.floats(0.01, 1)),
    steps=st.integers(min_value=0, max_value=4),
    strategy=st.sampled_from([None, "greedy", "sample", "top-k", "top-p", "min-p", "typical", "Greedy", "nucleus"]),
    seed=st.integers(min_value=0, max_value=2**64 - 1),
)
_DECODING = ("temperature", "top_k", "top_p", "min_p", "typical_p", "repetition_penalty")


def _next_token(prompt, model, *, rows, steps, strategy, seed, **values):
    """predict_next_token with these values: greedy takes none of the sampling values (they would have
    no effect, and are refused), any other strategy all of them."""
    if strategy is not None and strategy.lower() == "greedy":
        values = {k: v for k, v in values.items() if k == "repetition_penalty"}
    settings = settings_for(strategy, seed=seed, **values)
    return llmscope.predict_next_token(prompt, model=model, rows=rows, steps=steps, settings=settings)
NAN, INF = float("nan"), float("inf")
NOT_FINITE = st.sampled_from([NAN, INF, -INF])


def _above(bound: float) -> st.SearchStrategy[float]:
    """Floats above BOUND: just above it as often as far above."""
    return st.one_of(st.floats(bound, bound + 1, exclude_min=True), st.floats(min_value=bound + 1))


def _below(bound: float, *, inclusive: bool = False) -> st.SearchStrategy[float]:
    """Floats below BOUND (and BOUND itself if ``inclusive``): just below it as often as far below."""
    return st.one_of(st.floats(bound - 1, bound, exclude_max=not inclusive), st.floats(max_value=bound - 1))


# knob -> (values out of range, what the error names); temperature 0 is greedy, not out of range
BAD_KNOBS = {
    "rows": (st.integers(max_value=0), "rows"),
    "top_k": (st.integers(max_value=0), r"top[-_]k"),
    "temperature": (st.one_of(_below(0), st.floats(0, 1e-5, exclude_min=True), NOT_FINITE), "temperature"),
    "top_p": (st.one_of(_below(0, inclusive=True), _above(1), NOT_FINITE), r"top[-_]p"),
    "min_p": (st.one_of(_below(0), _above(1), NOT_FINITE), r"min[-_]p"),
    "typical_p": (st.one_of(_below(0, inclusive=True), _above(1), NOT_FINITE), r"typical[-_]p"),
    "repetition_penalty": (st.one_of(_below(0, inclusive=True), NOT_FINITE), r"repetition[-_]penalty"),
    "steps": (st.integers(max_value=-1), "steps"),
    "strategy": (st.sampled_from(["beam", "", "bogus", "Beam search", "top_q"]), "strategy"),
    "seed": (st.one_of(st.integers(max_value=-1), st.integers(min_value=2**64)), "seed"),
}


def _fits(tokenizer, text: str, more: int, context: int) -> bool:
    """TEXT (with the tokenizer's own special tokens) and MORE tokens after it stay well inside CONTEXT."""
    return text != "" and len(tokenizer(text)["input_ids"]) + more < context - 8


def _next_probs(lm, ids):
    """transformers directly: the softmax of the last position's logits."""
    import torch

    with torch.no_grad():
        return torch.softmax(lm.model(torch.tensor([ids])).logits[0, -1].float(), dim=-1)


@SETTINGS
@given(prompt=PROMPTS, **KNOBS)
def test_next_token_never_crashes(loaded_models, prompt, rows, steps, strategy, seed, **values):
    """Any values: a result or an LlmscopeError, never another exception (the results are checked below)."""
    try:
        settings = settings_for(strategy, seed=seed, **values)
        llmscope.predict_next_token(prompt, model=loaded_models["gpt2"], rows=rows, steps=steps, settings=settings)
    except LlmscopeError:
        pass
    try:  # a strategy name as the settings: its defaults
        llmscope.predict_next_token(prompt, model=loaded_models["gpt2"], rows=rows, steps=steps, settings=strategy)
    except LlmscopeError:
        pass


@SETTINGS
@given(prompt=PROMPTS, **GOOD_KNOBS)
def test_next_token_good_values_give_the_models_probabilities(loaded_models, hf_tokenizers, prompt, rows, steps,
                                                              strategy, seed, **values):
    lm, tok = loaded_models["gpt2"], hf_tokenizers["gpt2"]
    assume(_fits(tok, prompt, steps, lm.model.config.n_positions))  # else refused, rightly
    result = _next_token(prompt, lm, rows=rows, steps=steps, strategy=strategy, seed=seed, **values)
    ids = tok(prompt)["input_ids"]
    assert result.input_ids == ids
    reference = _next_probs(lm, ids)  # (vocab,)
    probs = [c.prob for c in result.candidates]
    assert len(probs) == min(rows, reference.shape[0])
    sampled = [c.prob_sampling for c in result.candidates]
    if result.settings.do_sample:  # what the draw chooses among: a distribution over what the filters keep
        assert all(_finite_probability(p) for p in sampled)
        assert 1 <= result.distribution.sampling_kept <= reference.shape[0]
        assert sum(sampled) <= 1 + 1e-5
    else:  # greedy (temperature 0 included): the argmax, nothing reshaped
        assert sampled == [None] * len(probs) and result.distribution.sampling_kept == 1
    assert probs == pytest.approx(sorted(reference.tolist(), reverse=True)[: len(probs)], abs=1e-5)
    assert probs == pytest.approx([float(reference[c.id]) for c in result.candidates], abs=1e-5)
    assert all(_finite_probability(c.cumulative_prob) for c in result.candidates)
    assert result.distribution.entropy == pytest.approx(float(-(reference * reference.log()).sum()), abs=1e-4)
    assert all(0 <= s.chosen.id < reference.shape[0] for s in result.steps)
    if len(result.steps) < steps:  # only the EOS ends the steps early
        assert result.stop_reason == "eos" and result.steps[-1].chosen.id == tok.eos_token_id
    else:
        assert len(result.steps) == steps


@pytest.mark.parametrize("knob", sorted(BAD_KNOBS))
@SETTINGS
@given(data=st.data(), good=st.fixed_dictionaries(GOOD_KNOBS))
def test_next_token_refuses_each_bad_value(loaded_models, knob, data, good):
    values, names = BAD_KNOBS[knob]
    if knob in _DECODING and good["strategy"] is not None and good["strategy"].lower() == "greedy":
        good["strategy"] = "sample"  # greedy would refuse any sampling value for having no effect
    options = {**good, knob: data.draw(values, label=knob)}
    with pytest.raises(UsageError, match=names):
        _next_token("The cat", loaded_models["gpt2"], **options)


@SETTINGS
@given(prompt=PROMPTS, show=st.lists(PROMPTS, max_size=3))
def test_next_token_show_never_crashes(loaded_models, prompt, show):
    """Any prompt and --show texts: a result or an LlmscopeError (an empty text is refused)."""
    try:
        llmscope.predict_next_token(prompt, model=loaded_models["llama"], show=show)
    except LlmscopeError:
        pass


@SETTINGS
@given(prompt=PROMPTS.filter(bool), show=st.lists(PROMPTS.filter(bool), min_size=1, max_size=3))
def test_next_token_show_gives_the_models_probabilities(loaded_models, hf_tokenizers, prompt, show):
    """Each text shown: the probability of its first token and of the whole text, from transformers'
    own softmax."""
    import torch

    lm, tok = loaded_models["llama"], hf_tokenizers["llama"]
    assume(all(_fits(tok, prompt + text, 0, lm.model.config.max_position_embeddings) for text in show))
    result = llmscope.predict_next_token(prompt, model=lm, show=show)
    ids = tok(prompt)["input_ids"]
    first = _next_probs(lm, ids)
    assert len(result.distribution.shown) == len(show)
    for shown in result.distribution.shown:
        assert shown.ids and all(0 <= i < len(tok) for i in shown.ids)
        assert shown.prob == pytest.approx(float(first[shown.ids[0]]), abs=1e-5)
        if len(shown.ids) == 1:
            assert shown.sequence_logprob is None  # one token: its probability says it all
            continue
        with torch.no_grad():  # one teacher-forced pass: each token's log-probability after those before it
            logits = lm.model(torch.tensor([ids + shown.ids])).logits[0, len(ids) - 1 : -1].float()
        total = torch.log_softmax(logits, dim=-1)[torch.arange(len(shown.ids)), torch.tensor(shown.ids)].sum()
        assert shown.sequence_logprob == pytest.approx(float(total), abs=1e-3)


# --------------------------------------------------------------------------------------------
# generate

GENERATE = dict(
    strategy=st.sampled_from([None, "greedy", "sample", "top-k", "top-p", "min-p", "typical", "beam", "nucleus",
                              "bogus"]),
    temperature=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 3)),
    top_k=st.one_of(st.none(), st.integers(min_value=-1, max_value=10**6)),
    top_p=st.one_of(st.none(), st.floats(-0.5, 1.5)),
    min_p=st.one_of(st.none(), st.floats(-0.5, 1.5)),
    typical_p=st.one_of(st.none(), st.floats(-0.5, 1.5)),
    num_beams=st.one_of(st.none(), st.integers(min_value=-1, max_value=4)),
    max_new_tokens=st.integers(min_value=-1, max_value=6),
    repetition_penalty=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0.5, 2)),
    seed=st.integers(min_value=-1, max_value=2**70),
)
# knob -> (the strategy it belongs to, values out of range, what the error names)
BAD_GENERATE = {
    "temperature": ("sample", st.one_of(_below(0), st.floats(0, 1e-5, exclude_min=True), NOT_FINITE), "temperature"),
    "top_k": ("top-k", st.integers(max_value=0), r"top[-_]k"),
    "top_p": ("top-p", st.one_of(_below(0, inclusive=True), _above(1), NOT_FINITE), r"top[-_]p"),
    "min_p": ("min-p", st.one_of(_below(0), _above(1), NOT_FINITE), r"min[-_]p"),
    "typical_p": ("typical", st.one_of(_below(0, inclusive=True), _above(1), NOT_FINITE), r"typical[-_]p"),
    "num_beams": ("beam", st.integers(max_value=0), r"num[-_]beams"),
    "max_new_tokens": ("sample", st.integers(max_value=0), r"max[-_]new[-_]tokens"),
    "repetition_penalty": ("sample", st.one_of(_below(0, inclusive=True), NOT_FINITE), r"repetition[-_]penalty"),
    "seed": ("sample", st.one_of(st.integers(max_value=-1), st.integers(min_value=2**64)), "seed"),
    "strategy": (None, st.sampled_from(["bogus", "Beam search", "top_q"]), "strategy"),
}


@SETTINGS
@given(prompt=PROMPTS, name=st.sampled_from(["gpt2", "llama"]), **GENERATE)
def test_generate_never_crashes(loaded_models, prompt, name, **options):
    """Any values: a result or an LlmscopeError, never another exception (most mixes are refused:
    in-range values are checked in the next test, and refusals in the one after)."""
    try:
        llmscope.generate(prompt, model=loaded_models[name], settings=settings_for(**options))
    except LlmscopeError:
        pass


@SETTINGS
@given(
    prompt=st.one_of(WORDS, st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=25)),
    strategy=st.sampled_from(["sample", "top-k", "top-p", "min-p", "typical", "beam", "greedy"]),
    temperature=st.floats(0.1, 3),
    value=st.floats(0.05, 1.0),
    top_k=st.integers(1, 1000),
    num_beams=st.integers(1, 3),
    repetition_penalty=st.floats(0.5, 2),
    max_new_tokens=st.integers(1, 5),
    seed=st.integers(0, 2**64 - 1),
)
def test_generate_valid_options_always_give_a_result(loaded_models, prompt, strategy, temperature, value, top_k,
                                                     num_beams, repetition_penalty, max_new_tokens, seed):
    """In-range values never fail: every strategy with its own parameter gives text, seeded."""
    options = {"sample": {"temperature": temperature}, "top-k": {"top_k": top_k, "temperature": temperature},
               "top-p": {"top_p": value}, "min-p": {"min_p": value}, "typical": {"typical_p": value},
               "beam": {"num_beams": num_beams}, "greedy": {}}[strategy]
    run = dict(model=loaded_models["llama"], settings=settings_for(
        strategy, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty, seed=seed, **options))
    result = llmscope.generate(prompt, **run)
    assert 1 <= len(result.token_ids) <= max_new_tokens or result.stop_reason == "eos"
    assert all(_finite_probability(p) for p in result.token_probs)
    if strategy != "beam":
        assert llmscope.generate(prompt, **run).token_ids == result.token_ids  # the same seed, the same text


@pytest.mark.parametrize("knob", sorted(BAD_GENERATE))
@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2**64 - 1))
def test_generate_refuses_each_bad_value(knob, data, seed):
    """One value out of range among good ones: a UsageError naming it, before any model loads (the
    model path does not exist, so a load would fail differently)."""
    strategy, values, names = BAD_GENERATE[knob]
    bad = data.draw(values, label=knob)
    with pytest.raises(UsageError, match=names):
        if knob == "strategy":  # a name as the settings: generate builds them itself, before loading
            llmscope.generate("The cat", model="/does/not/exist", settings=bad)
        else:
            settings = settings_for(strategy, **{"seed": seed, knob: bad})
            llmscope.generate("The cat", model="/does/not/exist", settings=settings)


@SETTINGS
@given(prompt=PROMPTS, system=st.one_of(st.none(), TEXT), max_new_tokens=st.integers(1, 3))
def test_generate_chat_follows_the_template(loaded_models, hf_tokenizers, prompt, system, max_new_tokens):
    """Any user and system text: the prompt is the chat template's, and the reply is written."""
    lm, tok = loaded_models["llama"], hf_tokenizers["llama"]
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": prompt}
    ]
    expected = list(tok.apply_chat_template(messages, add_generation_prompt=True)["input_ids"])
    assume(len(expected) + max_new_tokens < lm.model.config.max_position_embeddings - 8)  # else refused, rightly
    result = llmscope.generate(prompt, model=lm, chat=True, system=system,
                               settings=settings_for(max_new_tokens=max_new_tokens))
    assert result.prompt_tokens == len(expected)
    assert 1 <= len(result.token_ids) <= max_new_tokens
    assert len(result.token_ids) == max_new_tokens or result.stop_reason == "eos"


# --------------------------------------------------------------------------------------------
# A few through the CLI: the error boundary turns whatever is refused into one line


@settings(max_examples=10, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prompt=WORDS.filter(lambda t: not t.startswith("-")),
    command=st.sampled_from(["tokenize", "next-token", "generate"]),
    number=st.sampled_from(["-1", "0", "1", "2.5", "nan", "inf", "1e400", "abc", str(10**30)]),
    option=st.sampled_from(["--top-k", "--temperature", "--top-p", "--seed", "--max-new-tokens", "--steps",
                            "--rows"]),
)
def test_cli_random_options(cli, one_error_line, tiny_models, prompt, command, number, option):
    valid = {"tokenize": (), "next-token": ("--top-k", "--temperature", "--top-p", "--seed", "--steps", "--rows"),
             "generate": ("--top-k", "--temperature", "--top-p", "--seed", "--max-new-tokens")}[command]
    assume(option in valid or command == "tokenize")
    args = [command, prompt, "-m", str(tiny_models["gpt2"])]
    if command != "tokenize":
        args += [option, number]
    if command == "generate":
        args += ["-n", "2"] if option != "--max-new-tokens" else []
    result = cli(*args)
    assert "Traceback" not in result.stderr and "this is a bug" not in result.stderr, result.stderr
    if result.exit_code != 0:
        one_error_line(result)
        assert result.exit_code in (1, 2)
