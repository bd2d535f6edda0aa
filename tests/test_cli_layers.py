"""``llmscope layers`` through main(): JSON, rendering, bad values."""

from __future__ import annotations

import pytest
import torch


def test_json(cli, tiny_models):
    r = cli("layers", "The cat sat", "-m", tiny_models["llama"], "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    assert len(data["layers"]) == 3
    row = data["layers"][-1]
    assert set(row) >= {"shape", "norm", "delta_norm", "lens"}
    assert set(row["lens"]) == {"token", "id", "prob"}
    assert "grid" not in data
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32)
    with torch.no_grad():
        out = model(torch.tensor([data["input_ids"]]), use_cache=True)
    probs = torch.softmax(out.logits[0, -1], -1)
    assert row["lens"]["id"] == int(probs.argmax())
    layer = out.past_key_values.layers[0]
    assert data["kv_cache"]["layers"][0]["key_shape"] == list(layer.keys.shape)


def test_all_tokens_grid_renders(cli, tiny_models):
    r = cli("layers", "The cat sat", "-m", tiny_models["gpt2"], "--all-tokens")
    assert r.exit_code == 0, r.stderr
    assert "Logit lens at every position" in r.stdout and "KV cache" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    r = cli("layers", "The cat sat", "-m", tiny_models["gpt2"], "--all-tokens", "--json")
    data = r.json()
    assert len(data["grid"]) == 3 and len(data["grid"][0]) == len(data["input_ids"])


@pytest.mark.parametrize("args, words", [([""], "empty"), (["x", "--system", "s"], "--chat"), (["x", "--top", "0"], "top")])
def test_bad_values(cli, args, words):
    r = cli("layers", *args, "-m", "/nonexistent/model")
    assert r.exit_code == 2 and words in r.stderr and "Traceback" not in r.stderr


def test_too_long(cli, tiny_models):
    r = cli("layers", "the cat " * 100, "-m", tiny_models["gpt2"])
    assert r.exit_code == 2 and "context" in r.stderr and "Traceback" not in r.stderr
