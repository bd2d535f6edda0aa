"""Decoding strategies against transformers' own ``model.generate`` and independent filter checks."""

from __future__ import annotations

import math

import pytest

import llmscope
from llmscope import decoding
from llmscope.decoding import sampling
from llmscope.decoding.sampling import parse_strategy_list, settings_for
from llmscope.errors import UsageError
from llmscope.loading.model import LoadSpec


@pytest.fixture(scope="module")
def gpt2(tiny_models):
    return llmscope.load(str(tiny_models["gpt2"]), device="cpu")


@pytest.fixture(scope="module")
def llama(tiny_models):
    return llmscope.load(str(tiny_models["llama"]), device="cpu")


def _prompt_ids(lm, prompt):
    return lm.tokenizer(prompt, return_tensors="pt")["input_ids"]


def _hf_generate(lm, prompt, **kwargs):
    """transformers called directly: the reference every strategy is checked against."""
    import torch

    ids = _prompt_ids(lm, prompt)
    with torch.no_grad():
        out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), pad_token_id=lm.tokenizer.eos_token_id,
                                **kwargs)
    return out[0, ids.shape[-1]:].tolist()


def _teacher_forced_logits(lm, prompt, token_ids):
    """Logits at every generated position from ONE plain forward pass (no cache, no processors)."""
    import torch

    ids = _prompt_ids(lm, prompt)
    full = torch.cat([ids, torch.tensor([token_ids])], dim=-1)
    with torch.no_grad():
        logits = lm.model(full).logits[0].float()  # (tokens, vocab)
    return logits[ids.shape[-1] - 1 : -1]  # (generated, vocab): the logits each token was chosen from


# --------------------------------------------------------------------------------------------
# Validation: no model needed


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"top_p": 0.0}, "top_p=0.0: must be in"),
        ({"top_p": 1.5}, "top_p=1.5: must be in"),
        ({"temperature": -0.1}, "temperature=-0.1: must be 0 or more"),
        ({"top_k": 0}, "top_k=0: must be 1 or more"),
        ({"max_new_tokens": 0}, "max_new_tokens=0: must be 1 or more"),
        ({"num_beams": 0}, "num_beams=0: must be 1 or more"),
        ({"min_p": 1.2}, "min_p=1.2: must be in"),
        ({"repetition_penalty": 0.0}, "repetition_penalty=0.0: must be from"),
    ],
)
def test_bad_values_are_refused_before_loading(kwargs, option):
    # The settings are checked where they are built, in the API's words; compare's shared values too.
    with pytest.raises(UsageError, match=option):
        settings_for(**kwargs)
    with pytest.raises(UsageError, match=option):
        parse_strategy_list("greedy,sample", **kwargs)


def test_unknown_strategy():
    # model= names a path that does not exist: a load would fail differently, so the UsageError
    # proves validation came first.
    with pytest.raises(UsageError, match="unknown strategy 'fancy'"):
        decoding.generate("hi", model="/does/not/exist", settings="fancy")
    with pytest.raises(UsageError, match="unknown strategy"):
        decoding.compare("hi", model="/does/not/exist", strategies="greedy,fancy")
    with pytest.raises(UsageError, match="settings"):
        decoding.generate("hi", model="/does/not/exist", settings=0.7)


def test_strategy_inference_and_options_that_cannot_apply():
    assert sampling.settings_for(None).strategy == "greedy"
    assert sampling.settings_for(None, top_p=0.8).strategy == "top-p"
    assert sampling.settings_for(None, num_beams=3).strategy == "beam"
    assert sampling.settings_for(None, temperature=0.7).strategy == "sample"
    s = sampling.settings_for("top-p", top_k=20)
    assert (s.top_p, s.top_k) == (sampling.DEFAULT_TOP_P, 20)  # combined, as model.generate does
    with pytest.raises(UsageError, match="top_p=0.5 has no effect with strategy=greedy"):
        sampling.settings_for("greedy", top_p=0.5)
    specs = sampling.parse_strategy_list("greedy,nucleus,top-p=0.5,beam=3", top_p=0.8, top_k=7)
    assert [s.label for s in specs] == ["greedy", "top-p 0.8", "top-p 0.5", "beam 3"]
    assert specs[1].top_k is None  # compare: --top-k belongs to the top-k row only


def test_distinct_and_repetition():
    assert decoding.distinct_n([1, 2, 1, 2], 1) == 0.5
    assert decoding.distinct_n([1, 2, 1, 2], 2) == 2 / 3
    assert decoding.repetition_rate([1, 2, 3, 4, 1, 2, 3, 4]) == 1 - 4 / 5
    assert decoding.repetition_rate([1, 2, 3]) == 0.0


# --------------------------------------------------------------------------------------------
# Greedy and beam equal model.generate token by token


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_greedy_equals_model_generate(request, name):
    lm = request.getfixturevalue(name)
    prompt = "The cat sat on"
    result = decoding.generate(prompt, model=lm, settings=settings_for("greedy", max_new_tokens=12))
    assert result.token_ids == _hf_generate(lm, prompt, do_sample=False, max_new_tokens=12)
    assert result.stop_reason in ("eos", "length")
    assert result.candidates_kept == [1] * result.num_tokens  # the argmax chooses from one token
    if result.stop_reason == "length":
        assert result.num_tokens == 12


def test_repetition_penalty_equals_model_generate(llama):
    prompt = "The quick brown fox"
    result = decoding.generate(prompt, model=llama, settings=settings_for(max_new_tokens=12, repetition_penalty=1.5))
    assert result.token_ids == _hf_generate(llama, prompt, do_sample=False, max_new_tokens=12, repetition_penalty=1.5)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_beam_equals_model_generate(request, name):
    lm = request.getfixturevalue(name)
    prompt = "Paris is the capital"
    result = decoding.generate(prompt, model=lm, settings=settings_for("beam", num_beams=3, max_new_tokens=10))
    assert result.token_ids == _hf_generate(lm, prompt, do_sample=False, num_beams=3, max_new_tokens=10)
    assert result.time_to_first_token is None


def test_token_probs_are_the_models_own(llama):
    import torch

    prompt = "Once upon a time"
    result = decoding.generate(prompt, model=llama,
                               settings=settings_for("top-k", top_k=5, temperature=0.5, max_new_tokens=10))
    probs = torch.softmax(_teacher_forced_logits(llama, prompt, result.token_ids), dim=-1)
    expected = probs[torch.arange(len(result.token_ids)), torch.tensor(result.token_ids)]
    assert torch.allclose(torch.tensor(result.token_probs), expected, atol=1e-5)
    assert math.isclose(result.mean_logprob, float(expected.log().mean()), abs_tol=1e-4)
    # perplexity: exp of the mean negative log-likelihood, recomputed from transformers' own logits
    nll = -torch.log_softmax(_teacher_forced_logits(llama, prompt, result.token_ids), dim=-1)
    assert math.isclose(result.perplexity, math.exp(float(nll[torch.arange(len(result.token_ids)),
                                                             torch.tensor(result.token_ids)].mean())), rel_tol=1e-4)


# --------------------------------------------------------------------------------------------
# Sampling: reproducible, and always inside the filtered set


def test_same_seed_same_text(llama):
    settings = settings_for("sample", seed=7, max_new_tokens=15)
    runs = [decoding.generate("The dog", model=llama, settings=settings) for _ in range(2)]
    assert runs[0].token_ids == runs[1].token_ids and runs[0].text == runs[1].text
    others = {tuple(decoding.generate("The dog", model=llama,
                                      settings=settings_for("sample", seed=s, max_new_tokens=15)).token_ids)
              for s in range(4)}
    assert len(others) > 1  # the seed does matter


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_tokens_lie_in_the_top_k(llama, seed):
    import torch

    prompt, k = "The quick brown", 4
    result = decoding.generate(prompt, model=llama, settings=settings_for("top-k", top_k=k, seed=seed,
                                                                          max_new_tokens=25))
    logits = _teacher_forced_logits(llama, prompt, result.token_ids)
    order = torch.argsort(logits, dim=-1, descending=True)  # sort them ourselves
    for step, token in enumerate(result.token_ids):
        assert token in order[step, :k].tolist(), f"step {step}: token {token} outside the top {k}"
    assert result.candidates_kept == [k] * result.num_tokens  # each draw chose among exactly k tokens


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_p_tokens_lie_in_the_nucleus(llama, seed):
    import torch

    prompt, p, temperature = "Attention is all", 0.3, 0.7
    result = decoding.generate(prompt, model=llama, settings=settings_for("top-p", top_p=p, temperature=temperature,
                                                                          seed=seed, max_new_tokens=25))
    probs = torch.softmax(_teacher_forced_logits(llama, prompt, result.token_ids) / temperature, dim=-1)
    for step, token in enumerate(result.token_ids):
        sorted_probs, sorted_ids = torch.sort(probs[step], descending=True)
        # the nucleus: the smallest set of most likely tokens whose mass reaches p
        size = int((torch.cumsum(sorted_probs, 0) < p).sum()) + 1
        assert token in sorted_ids[:size].tolist(), f"step {step}: token {token} outside the nucleus"


def test_min_p_tokens_pass_the_threshold(llama):
    import torch

    prompt, min_p = "def add(a, b):", 0.5
    result = decoding.generate(prompt, model=llama, settings=settings_for("min-p", min_p=min_p, seed=3,
                                                                          max_new_tokens=20))
    probs = torch.softmax(_teacher_forced_logits(llama, prompt, result.token_ids), dim=-1)
    for step, token in enumerate(result.token_ids):
        assert probs[step, token] >= min_p * probs[step].max() - 1e-6
        # what the draw chose from: every token at least min_p of the most likely one's probability
        assert result.candidates_kept[step] == int((probs[step] >= min_p * probs[step].max()).sum()), step


def test_temperature_zero_is_greedy(llama):
    prompt = "The cat"
    sampled = decoding.generate(prompt, model=llama, settings=settings_for("top-p", temperature=0, max_new_tokens=10))
    assert sampled.token_ids == _hf_generate(llama, prompt, do_sample=False, max_new_tokens=10)
    assert sampled.strategy == "greedy" and sampled.candidates_kept == [1] * sampled.num_tokens
    assert sampled.warnings == ["temperature=0 always picks the most likely token: top-p runs as greedy"]


# --------------------------------------------------------------------------------------------
# Streaming, KV cache, chat


def test_streaming_gives_every_token_in_order(gpt2):
    seen = []
    result = decoding.generate("The cat", model=gpt2, settings=settings_for("sample", seed=1, max_new_tokens=15),
                               on_token=seen.append)
    assert [t.token_id for t in seen] == result.token_ids
    assert [t.prob for t in seen] == result.token_probs
    assert "".join(t.text for t in seen) == result.text
    assert result.time_to_first_token is not None and result.time_to_first_token <= result.total_time


def _fed(lm, call):
    """Run ``call()``; the number of tokens each forward pass of the model was fed."""
    fed = []

    def record(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        fed.append(ids.shape[-1])

    hook = lm.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        result = call()
    finally:
        hook.remove()
    return result, fed


def test_no_kv_cache_gives_the_same_tokens_and_a_comparison(llama):
    """With the cache: the prompt once, then one token per pass; without it: the whole sequence every
    pass (then the cached run again, for the comparison). The same tokens either way."""
    prompt = "The cat sat"
    p = _prompt_ids(llama, prompt).shape[-1]
    settings = settings_for(max_new_tokens=10)
    cached, fed_cached = _fed(llama, lambda: decoding.generate(prompt, model=llama, settings=settings))
    uncached, fed_both = _fed(llama, lambda: decoding.generate(prompt, model=llama, settings=settings, kv_cache=False))
    n = cached.num_tokens
    assert n == 10 and cached.stop_reason == "length"
    assert fed_cached == [p] + [1] * (n - 1)  # the last token is chosen, never fed
    assert fed_both == [p + i for i in range(n)] + fed_cached
    assert uncached.token_ids == cached.token_ids == _hf_generate(llama, prompt, do_sample=False, max_new_tokens=10)
    c = uncached.kv_cache_comparison
    assert c is not None and c.same_token_ids
    # the work each way, counted from what the model was fed: every position and every causal query-key pair
    assert c.uncached_positions == sum(fed_both[:n]) and c.cached_positions == sum(fed_cached) == p + n - 1
    assert c.uncached_attention_pairs == sum(t * (t + 1) // 2 for t in fed_both[:n])
    assert c.cached_attention_pairs == p * (p + 1) // 2 + sum(p + i for i in range(1, n))
    assert not uncached.kv_cache and cached.kv_cache and cached.kv_cache_comparison is None


def test_chat_uses_the_chat_template(llama):
    import torch

    result = decoding.generate("Hi there", model=llama, chat=True, system="Be brief.",
                               settings=settings_for(max_new_tokens=5))
    expected = llama.tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )["input_ids"]
    assert result.prompt_tokens == expected.shape[-1]
    end_of_turn = llama.tokenizer.convert_tokens_to_ids("</s>")  # what the template closes each turn with
    with torch.no_grad():
        out = llama.model.generate(expected, attention_mask=torch.ones_like(expected), do_sample=False,
                                   max_new_tokens=5, eos_token_id=[end_of_turn],
                                   pad_token_id=llama.tokenizer.eos_token_id)
    assert result.token_ids == out[0, expected.shape[-1]:].tolist()


def test_chat_stops_at_the_templates_end_of_turn_token(im_end_chat):
    """The chat stop list holds the template's end-of-turn token even where it is not the EOS:
    transformers told to stop at <|im_end|> (and the EOS) writes what llmscope writes; told the EOS
    only, it writes on past <|im_end|>."""
    import torch

    folder, ids, im_end = im_end_chat
    lm = llmscope.load(str(folder), device="cpu", dtype="float32")
    result = decoding.generate("Hi there", model=lm, chat=True, system="Be brief.",
                               settings=settings_for(max_new_tokens=10))
    n = ids.shape[-1]
    kwargs = dict(attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=10,
                  pad_token_id=lm.tokenizer.eos_token_id)
    with torch.no_grad():
        stopped = lm.model.generate(ids, eos_token_id=[im_end, lm.tokenizer.eos_token_id], **kwargs)[0, n:].tolist()
        eos_only = lm.model.generate(ids, eos_token_id=lm.tokenizer.eos_token_id, **kwargs)[0, n:].tolist()
    assert result.prompt_tokens == n
    assert result.token_ids == stopped and result.stop_reason == "eos"
    assert stopped[-1] == im_end and len(stopped) < 10
    assert eos_only[: len(stopped)] == stopped and len(eos_only) > len(stopped)  # the model writes on past it


def test_chat_without_template_and_masked_models_are_refused(gpt2, tiny_models):
    with pytest.raises(UsageError, match="no chat template"):
        decoding.generate("Hi", model=gpt2, chat=True)
    with pytest.raises(UsageError, match="masked language model"):
        decoding.generate("Hi", model=LoadSpec(model=str(tiny_models["bert"]), device="cpu"))


# --------------------------------------------------------------------------------------------
# compare: one batch, each row as generate gives it


def test_compare_rows_equal_generate(llama):
    """Each row of the one batch equals the same strategy run alone. For the five sampled rows this is
    consistency, not correctness: their seeded RNG is llmscope's, not transformers', so only
    llmscope's own ``generate`` can give the same draws (it is checked against the filters it samples
    from above). The greedy and beam rows are also checked against ``model.generate``."""
    prompt = "The quick brown fox"
    strategies = ["greedy", "sample", "top-k", "top-p", "min-p", "typical", "beam"]
    opts = dict(temperature=0.8, top_k=10, top_p=0.8, min_p=0.1, typical_p=0.8, num_beams=3, max_new_tokens=12,
                seed=5)
    result = decoding.compare(prompt, model=llama, strategies=parse_strategy_list(strategies, **opts))
    assert [r.strategy for r in result.results] == strategies
    assert len(result.batched) == 6
    for row, spec in zip(result.results, sampling.parse_strategy_list(strategies, **opts)):
        alone = decoding.generate(prompt, model=llama, settings=settings_for(
            spec.strategy, temperature=spec.temperature if spec.do_sample else None,
            top_k=spec.top_k, top_p=spec.top_p, min_p=spec.min_p, typical_p=spec.typical_p,
            num_beams=spec.num_beams if spec.strategy == "beam" else None, max_new_tokens=12, seed=5,
        ))
        assert row.token_ids == alone.token_ids, spec.label
        assert row.settings == alone.settings
    assert result.results[0].token_ids == _hf_generate(llama, prompt, do_sample=False, max_new_tokens=12)
    assert result.results[-1].token_ids == _hf_generate(llama, prompt, do_sample=False, num_beams=3,
                                                        max_new_tokens=12)


def test_compare_rows_finishing_early_do_not_disturb_the_others(gpt2):
    """Many sampling rows on a random model: some hit EOS early and leave the batch. Consistency only:
    sampled rows can be compared with nothing but llmscope's own ``generate`` (separate RNGs)."""
    specs = [sampling.settings_for("sample", seed=s, max_new_tokens=30, temperature=1.5) for s in range(6)]
    result = decoding.compare("The", model=gpt2, strategies=specs)
    for spec, row in zip(specs, result.results):
        alone = decoding.generate("The", model=gpt2, settings=settings_for("sample", temperature=1.5, seed=spec.seed,
                                                                           max_new_tokens=30))
        assert row.token_ids == alone.token_ids


def test_compare_names_the_rows_that_wrote_the_same_tokens(llama):
    """``coinciding`` groups the rows whose tokens are identical: top-k 1 draws from the argmax alone, so
    it writes what greedy writes (checked against model.generate); the groups are recomputed from the rows."""
    prompt = "The quick brown fox"
    specs = parse_strategy_list("greedy,top-k=1,sample,beam=2", temperature=1.2, max_new_tokens=8, seed=2)
    result = decoding.compare(prompt, model=llama, strategies=specs)
    greedy = _hf_generate(llama, prompt, do_sample=False, max_new_tokens=8)
    by_label = {r.settings.label: r for r in result.results}
    assert list(by_label) == ["greedy", "top-k 1 T=1.2", "sample T=1.2", "beam 2"]
    assert by_label["greedy"].token_ids == by_label["top-k 1 T=1.2"].token_ids == greedy
    assert by_label["top-k 1 T=1.2"].candidates_kept == [1] * 8
    groups: dict[tuple[int, ...], list[str]] = {}
    for r in result.results:
        groups.setdefault(tuple(r.token_ids), []).append(r.settings.label)
    assert result.coinciding == [labels for labels in groups.values() if len(labels) > 1]
    assert {"greedy", "top-k 1 T=1.2"} <= set(result.coinciding[0])
    assert result.to_json()["coinciding"] == result.coinciding


# --------------------------------------------------------------------------------------------
# The real embedded model (slow)


@pytest.mark.slow
def test_demo_greedy_and_beam_equal_model_generate(demo_model):
    import torch

    prompt = "The capital of France is"
    ids = demo_model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    greedy = decoding.generate(prompt, model=demo_model, settings=settings_for(max_new_tokens=8))
    beam = decoding.generate(prompt, model=demo_model, settings=settings_for("beam", num_beams=2, max_new_tokens=6))
    with torch.no_grad():
        ref_greedy = demo_model.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                               max_new_tokens=8, top_k=None, top_p=None)
        ref_beam = demo_model.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=2,
                                             max_new_tokens=6, top_k=None, top_p=None)
    assert greedy.token_ids == ref_greedy[0, ids.shape[-1]:].tolist()
    assert beam.token_ids == ref_beam[0, ids.shape[-1]:].tolist()
    assert greedy.text.strip()


@pytest.mark.slow
def test_demo_compare_row_equals_generate(demo_model):
    """Consistency only: a sampled row equals llmscope's own ``generate`` (its RNG is not transformers')."""
    prompt = "Once upon a time"
    result = decoding.compare(prompt, model=demo_model,
                              strategies=parse_strategy_list("greedy,top-p,top-k", max_new_tokens=8, seed=3))
    alone = decoding.generate(prompt, model=demo_model, settings=settings_for("top-p", max_new_tokens=8, seed=3))
    assert result.results[1].token_ids == alone.token_ids
    assert result.results[1].text == alone.text


def test_prompt_options_are_checked_before_loading():
    # the model does not exist: a load would fail differently
    for call in (decoding.generate, decoding.compare):
        with pytest.raises(UsageError, match="system needs chat=True"):
            call("hi", model="/does/not/exist", system="Be kind.")
