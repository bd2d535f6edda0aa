"""The KV cache is really used: what each forward pass is fed, counted on the model itself.

A decode loop that silently lost its cache (transformers 5.24 renamed ``past_key_values`` to ``cache``)
still writes the right tokens, only slower: the token count per forward pass is what tells them apart.
These run on whatever transformers is installed (CI also runs them on the oldest release pyproject allows).
"""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch

import llmscope
from llmscope.decoding.sampling import parse_strategy_list, settings_for
from llmscope.loading import model_calls


@contextlib.contextmanager
def fed_tokens(model):
    """The number of token positions each forward of MODEL receives, in order."""
    fed: list[int] = []

    def count(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        fed.append(int(ids.shape[-1]))

    handle = model.register_forward_pre_hook(count, with_kwargs=True)
    try:
        yield fed
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def loaded(tiny_models, tiny_families):
    return {name: llmscope.load(folder, device="cpu") for name, folder in
            {**tiny_models, "mamba": tiny_families["mamba"]}.items() if name != "bert"}


def _prompt_length(lm, prompt):
    return len(lm.tokenizer(prompt)["input_ids"])


@pytest.mark.parametrize("name", ["gpt2", "llama", "mixtral"])
def test_generate_feeds_the_prompt_once_then_one_token_per_pass(loaded, name):
    lm = loaded[name]
    prompt = "Once upon a time"
    with fed_tokens(lm.model) as fed:
        result = llmscope.generate(prompt, model=lm, settings=settings_for(max_new_tokens=6))
    n = len(result.token_ids)
    assert n >= 2
    assert fed == [_prompt_length(lm, prompt)] + [1] * (n - 1)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_without_the_cache_every_pass_runs_the_whole_sequence(loaded, name):
    lm = loaded[name]
    prompt = "Once upon a time"
    p = _prompt_length(lm, prompt)
    with fed_tokens(lm.model) as fed:
        result = llmscope.generate(prompt, model=lm, settings=settings_for(max_new_tokens=5), kv_cache=False)
    n = len(result.token_ids)
    # the uncached run (p, p+1, ... tokens), then the cached run it is compared with (p, 1, 1, ...)
    assert fed == [p + i for i in range(n)] + [p] + [1] * (n - 1)
    assert result.kv_cache_comparison.same_token_ids


def test_next_token_steps_and_compare_use_the_cache(loaded):
    lm = loaded["llama"]
    prompt = "The cat sat"
    p = _prompt_length(lm, prompt)
    with fed_tokens(lm.model) as fed:
        result = llmscope.predict_next_token(prompt, model=lm, steps=4)
    assert len(result.steps) == 4
    assert fed == [p, 1, 1, 1, 1]  # each step's token is fed to show the distribution after it
    with fed_tokens(lm.model) as fed:  # sampled steps, the distribution reshaped: no extra forward pass
        llmscope.predict_next_token(prompt, model=lm, steps=4, settings=settings_for("top-p", temperature=0.8, seed=1))
    assert fed == [p, 1, 1, 1, 1]
    with fed_tokens(lm.model) as fed:
        llmscope.compare(prompt, model=lm, strategies=parse_strategy_list("greedy,sample", max_new_tokens=4))
    assert fed[0] == p and set(fed[1:]) == {1}  # the prompt once for both rows, then one token each pass


def test_a_recurrent_model_runs_the_whole_sequence_and_says_so(loaded):
    from llmscope.progress import Reporter, set_reporter

    class Notes(Reporter):
        def __init__(self):
            self.lines = []

        def notice(self, text):
            self.lines.append(text)

    lm = loaded["mamba"]
    assert not model_calls.takes_kv_cache(lm.model)
    notes = Notes()
    old = set_reporter(notes)
    try:
        with fed_tokens(lm.model) as fed:
            result = llmscope.generate("The cat sat", model=lm, settings=settings_for(max_new_tokens=3))
    finally:
        set_reporter(old)
    p = _prompt_length(lm, "The cat sat")
    assert fed == [p + i for i in range(len(result.token_ids))]
    assert any("keeps no KV cache" in line for line in notes.lines)


@pytest.mark.parametrize("name", ["gpt2", "llama", "mixtral"])
def test_the_cache_goes_in_and_comes_back_without_a_warning(loaded, name):
    """The keyword chosen is one the installed transformers takes without a deprecation warning, and the
    returned cache is the one handed in, holding every token."""
    lm = loaded[name]
    assert model_calls.takes_kv_cache(lm.model)
    cache = model_calls.new_cache(lm.model)
    ids = torch.tensor([[3, 4, 5, 6]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.inference_mode():
            out = lm.model(input_ids=ids, **model_calls.cache_kwargs(lm.model, cache))
        back = model_calls.returned_cache(lm.model, out)
    assert back is cache and back.get_seq_length() == 4
