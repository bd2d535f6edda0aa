"""Property tests: random text and option values never crash tokenize, next-token and generate.

Every call ends in a result or an ``LlmscopeError`` (never another exception), and the results
keep their invariants: ids are the tokenizer's own, probabilities are finite and add up to at most
1, and generation writes at most ``max_new_tokens`` tokens. The tiny GPT-2 and Llama fixtures are
loaded once per session (conftest's ``loaded_models``) and passed as ``model=``.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import llmscope
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

KNOBS = dict(
    top_k=st.integers(min_value=-2, max_value=10**6),
    temperature=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0.05, 5)),
    top_p=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.floats(0.01, 1)),
    steps=st.integers(min_value=-1, max_value=4),
    strategy=st.sampled_from(["greedy", "sample", "beam", "Greedy", ""]),
    seed=st.integers(min_value=-1, max_value=2**70),
)


@SETTINGS
@given(prompt=PROMPTS, **KNOBS)
def test_next_token_never_crashes(loaded_models, prompt, top_k, temperature, top_p, steps, strategy, seed):
    try:
        result = llmscope.predict_next_token(
            prompt, model=loaded_models["gpt2"], top_k=top_k, temperature=temperature, top_p=top_p, steps=steps,
            strategy=strategy, seed=seed,
        )
    except LlmscopeError:
        return
    probs = [c.prob for c in result.candidates]
    assert probs and all(_finite_probability(p) for p in probs)
    assert sum(probs) <= 1 + 1e-5
    assert probs == sorted(probs, reverse=True)
    assert len(probs) <= top_k
    assert all(_finite_probability(c.cumulative_prob) for c in result.candidates)
    assert math.isfinite(result.distribution.entropy) and result.distribution.entropy >= -1e-6
    assert len(result.steps) == steps
    assert result.input_ids == loaded_models["gpt2"].tokenizer(prompt)["input_ids"]


@SETTINGS
@given(prompt=PROMPTS, show=st.lists(PROMPTS, max_size=3))
def test_next_token_show_never_crashes(loaded_models, prompt, show):
    try:
        result = llmscope.predict_next_token(prompt, model=loaded_models["llama"], show=show)
    except LlmscopeError:
        return
    for shown in result.distribution.shown:
        assert _finite_probability(shown.prob)
        assert shown.logprob <= 1e-6


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


@SETTINGS
@given(prompt=PROMPTS, name=st.sampled_from(["gpt2", "llama"]), **GENERATE)
def test_generate_never_crashes(loaded_models, prompt, name, **options):
    lm = loaded_models[name]
    try:
        result = llmscope.generate(prompt, model=lm, **options)
    except LlmscopeError:
        return
    assert len(result.token_ids) <= options["max_new_tokens"]
    assert len(result.token_probs) == len(result.token_ids) == len(result.token_texts)
    assert all(_finite_probability(p) for p in result.token_probs)
    assert result.stop_reason in ("eos", "length")
    assert all(0 <= i < lm.model.config.vocab_size for i in result.token_ids)


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
    run = dict(model=loaded_models["llama"], strategy=strategy, max_new_tokens=max_new_tokens,
               repetition_penalty=repetition_penalty, seed=seed, **options)
    result = llmscope.generate(prompt, **run)
    assert 1 <= len(result.token_ids) <= max_new_tokens or result.stop_reason == "eos"
    assert all(_finite_probability(p) for p in result.token_probs)
    if strategy != "beam":
        assert llmscope.generate(prompt, **run).token_ids == result.token_ids  # the same seed, the same text


@SETTINGS
@given(prompt=PROMPTS, system=st.one_of(st.none(), TEXT), max_new_tokens=st.integers(1, 3))
def test_generate_chat_never_crashes(loaded_models, prompt, system, max_new_tokens):
    try:
        result = llmscope.generate(prompt, model=loaded_models["llama"], chat=True, system=system,
                                   max_new_tokens=max_new_tokens)
    except LlmscopeError:
        return
    assert len(result.token_ids) <= max_new_tokens


# --------------------------------------------------------------------------------------------
# A few through the CLI: the error boundary turns whatever is refused into one line


@settings(max_examples=10, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prompt=WORDS.filter(lambda t: not t.startswith("-")),
    command=st.sampled_from(["tokenize", "next-token", "generate"]),
    number=st.sampled_from(["-1", "0", "1", "2.5", "nan", "inf", "1e400", "abc", str(10**30)]),
    option=st.sampled_from(["--top-k", "--temperature", "--top-p", "--seed", "--max-new-tokens", "--steps"]),
)
def test_cli_random_options(cli, one_error_line, tiny_models, prompt, command, number, option):
    valid = {"tokenize": (), "next-token": ("--top-k", "--temperature", "--top-p", "--seed", "--steps"),
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
