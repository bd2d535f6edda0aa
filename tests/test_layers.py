"""layers(): hidden states, the logit lens (last layer = the model's own next-token distribution), and
the KV cache, each against transformers called directly."""

from __future__ import annotations

import pytest
import torch

import llmscope
from llmscope.errors import UsageError
from llmscope.forward.layers import layers


@pytest.fixture(scope="module")
def loaded(tiny_models):
    return {name: llmscope.load(str(path), device="cpu", dtype="float32") for name, path in tiny_models.items()}


@pytest.mark.parametrize("name", ["gpt2", "llama", "mixtral"])
def test_hidden_states_lens_and_cache_match_transformers(loaded, name):
    lm = loaded[name]
    prompt = "The quick brown fox"
    report = layers(prompt, model=lm, all_tokens=True)
    ids = torch.tensor([lm.tokenizer(prompt)["input_ids"]])
    with torch.no_grad():
        out = lm.model(ids, output_hidden_states=True, use_cache=True)
    n = lm.config.num_hidden_layers
    assert len(report.layers) == n + 1 == len(out.hidden_states)
    for row, h in zip(report.layers[:-1], out.hidden_states[:-1]):
        assert row.shape == list(h.shape)
        assert row.norm == pytest.approx(float(h[0, -1].norm()), rel=1e-5)
    # last layer: its lens prediction is the model's own next token, with the model's probability
    probs = torch.softmax(out.logits[0, -1], -1)
    assert report.layers[-1].lens.id == int(probs.argmax())
    assert report.layers[-1].lens.prob == pytest.approx(float(probs.max()), abs=1e-5)
    assert report.final_check < 1e-5
    assert len(report.grid) == n + 1 and all(len(r) == ids.shape[1] for r in report.grid)
    assert [cell.id for cell in report.grid[-1]] == out.logits[0].argmax(dim=-1).tolist()  # at every position
    # a middle layer through the lens by hand
    norm = lm.model.transformer.ln_f if name == "gpt2" else lm.model.model.norm
    mid = out.hidden_states[1][0, -1]
    with torch.no_grad():
        lens = torch.softmax(lm.model.get_output_embeddings()(norm(mid)), -1)
    assert report.layers[1].lens.id == int(lens.argmax())
    assert report.layers[1].lens.prob == pytest.approx(float(lens.max()), abs=1e-5)
    # KV cache from the returned cache's tensors
    cache = report.kv_cache
    assert len(cache.layers) == n
    expected = 0
    for layer, ours in zip(out.past_key_values.layers, cache.layers):
        assert ours.key_shape == list(layer.keys.shape) and ours.value_shape == list(layer.values.shape)
        expected += layer.keys.numel() * 4 + layer.values.numel() * 4
    assert cache.bytes == expected


def test_masked_lm_lens_at_the_mask(loaded):
    lm = loaded["bert"]
    prompt = "The cat [MASK] on the mat."
    report = layers(prompt, model=lm)
    ids = lm.tokenizer(prompt)["input_ids"]
    assert report.position == ids.index(lm.tokenizer.mask_token_id)
    assert report.kv_cache is None
    with torch.no_grad():
        probs = torch.softmax(lm.model(torch.tensor([ids])).logits[0, report.position], -1)
    assert report.layers[-1].lens.id == int(probs.argmax())
    assert report.layers[-1].lens.prob == pytest.approx(float(probs.max()), abs=1e-5)
    assert report.final_check < 1e-5


def test_errors(loaded):
    with pytest.raises(UsageError, match="empty"):
        layers("", model=loaded["gpt2"])
    with pytest.raises(UsageError, match="context"):
        layers("the cat " * 100, model=loaded["gpt2"])


@pytest.mark.slow
def test_demo_model_last_layer_is_next_token(demo_model):
    prompt = "The capital of France is"
    report = layers(prompt, model=demo_model)
    ids = torch.tensor([demo_model.tokenizer(prompt)["input_ids"]])
    with torch.no_grad():
        probs = torch.softmax(demo_model.model(ids).logits[0, -1].float(), -1)
    assert report.layers[-1].lens.id == int(probs.argmax())
    assert report.layers[-1].lens.prob == pytest.approx(float(probs.max()), abs=1e-5)
    config = demo_model.config
    assert len(report.kv_cache.layers) == config.num_hidden_layers
    assert report.kv_cache.layers[0].key_shape[1] == config.num_key_value_heads
