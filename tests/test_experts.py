"""llmscope.forward.experts: the router's choices, checked against top-k of router logits computed here."""

from __future__ import annotations

import pytest
import torch

from llmscope import loading
from llmscope.config.parameters import count_parameters, mixture_of_experts
from llmscope.errors import LlmscopeError, UsageError
from llmscope.forward.experts import experts
from llmscope.loading.model import LoadSpec

PROMPT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def tiny_mixtral(tiny_models):
    return loading.load(str(tiny_models["mixtral"]), device="cpu", dtype="float32")


def _independent_routing(lm, prompt):
    """Per layer: (weights, experts) from the gate weight applied to the MoE block's input."""
    inputs = {}
    hooks = [
        layer.mlp.register_forward_hook(lambda mod, inp, out, i=i: inputs.__setitem__(i, inp[0].detach()))
        for i, layer in enumerate(lm.model.model.layers)
    ]
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
    try:
        with torch.no_grad():
            lm.model(ids)
    finally:
        for h in hooks:
            h.remove()
    k = lm.config.num_experts_per_tok
    out = {}
    for i, layer in enumerate(lm.model.model.layers):
        hidden = inputs[i][0]  # (tokens, hidden)
        logits = hidden @ layer.mlp.gate.weight.T  # (tokens, experts)
        probs = torch.softmax(logits.float(), dim=-1)
        top, idx = torch.topk(probs, k, dim=-1)
        out[i] = (top / top.sum(dim=-1, keepdim=True), idx)  # Mixtral renormalises the top-k
    return ids, out


def test_chosen_experts_match_router_logits_computed_independently(tiny_mixtral):
    result = experts(PROMPT, model=tiny_mixtral)
    ids, reference = _independent_routing(tiny_mixtral, PROMPT)
    assert result.method == "router"
    assert [layer.layer for layer in result.layers] == list(range(tiny_mixtral.config.num_hidden_layers))
    assert result.num_experts == 4 and result.num_experts_per_tok == 2
    for layer in result.layers:
        weights, idx = reference[layer.layer]
        assert len(layer.tokens) == ids.shape[1]
        for p, t in enumerate(layer.tokens):
            assert t.experts == idx[p].tolist()  # topk orders by weight, as we do
            torch.testing.assert_close(torch.tensor(t.weights), weights[p])
            assert abs(sum(t.weights) - 1) < 1e-5
        counts = torch.bincount(idx.reshape(-1), minlength=4).tolist()
        assert layer.load == counts
        assert sum(layer.load) == 2 * ids.shape[1]


def test_parameters_match_architecture_counts(tiny_mixtral):
    result = experts(PROMPT, model=tiny_mixtral)
    moe = mixture_of_experts(tiny_mixtral.config, tiny_mixtral.model)
    counts = count_parameters(tiny_mixtral.model, moe)
    total = sum(p.numel() for p in tiny_mixtral.model.parameters())
    assert result.parameters.total == counts.total == total
    assert result.parameters.active == counts.active
    per_expert = sum(p.numel() for p in tiny_mixtral.model.model.layers[0].mlp.experts.parameters()) // 4
    assert result.parameters.per_expert == per_expert
    unused = sum(c == 0 for layer in result.layers for c in layer.load)
    assert result.parameters.prompt == total - unused * per_expert
    assert result.parameters.active <= result.parameters.prompt <= result.parameters.total


def test_loads_from_a_folder(tiny_models):
    result = experts("Hello", model=LoadSpec(model=str(tiny_models["mixtral"]), device="cpu"))
    assert result.layers and result.tokens


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_dense_model_is_refused_before_loading(tiny_models, name):
    with pytest.raises(LlmscopeError) as info:
        experts("Hello", model=LoadSpec(model=str(tiny_models[name]), device="cpu"))
    assert "dense" in str(info.value)
    assert not isinstance(info.value, UsageError)  # exit 1: the model said no


def test_dense_loaded_model_is_refused(tiny_models):
    lm = loading.load(str(tiny_models["llama"]), device="cpu")
    with pytest.raises(LlmscopeError, match="dense"):
        experts("Hello", model=lm)


def test_empty_prompt(tiny_mixtral):
    with pytest.raises(UsageError):
        experts("", model=tiny_mixtral)


def test_qwen2_moe_without_renormalisation_and_a_dense_layer(tiny_models):
    """Qwen2-MoE with norm_topk_prob=False keeps raw softmax weights; layer 1 is a plain MLP."""
    from transformers import AutoTokenizer, Qwen2MoeConfig, Qwen2MoeForCausalLM

    from llmscope.loading.resolve import resolve

    torch.manual_seed(0)
    config = Qwen2MoeConfig(
        hidden_size=32, intermediate_size=64, moe_intermediate_size=16, shared_expert_intermediate_size=32,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=400, num_experts=6,
        num_experts_per_tok=2, norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[1],
    )
    folder = str(tiny_models["llama"])
    lm = loading.LoadedModel(
        model=Qwen2MoeForCausalLM(config).eval(), tokenizer=AutoTokenizer.from_pretrained(folder),
        source=resolve(folder), device="cpu", dtype="float32",
    )
    captured = {}
    block = lm.model.model.layers[0].mlp
    hook = block.register_forward_hook(lambda mod, inp, out: captured.setdefault("x", inp[0].detach()))
    result = experts(PROMPT, model=lm)
    hook.remove()
    assert [layer.layer for layer in result.layers] == [0]
    hidden = captured["x"].reshape(-1, 32)  # (tokens, hidden)
    probs = torch.softmax(hidden @ block.gate.weight.T, dim=-1)  # (tokens, experts)
    top, idx = torch.topk(probs, 2, dim=-1)
    got_idx = torch.tensor([t.experts for t in result.layers[0].tokens])
    got_w = torch.tensor([t.weights for t in result.layers[0].tokens])
    assert torch.equal(got_idx, idx)
    torch.testing.assert_close(got_w, top)  # not renormalised: sums are below 1
    assert torch.all(got_w.sum(dim=-1) < 1)
    assert result.num_experts == 6


def test_recomputing_from_router_logits_gives_the_routers_own_choice(tiny_mixtral, monkeypatch):
    """A router whose output has an unusual shape is read from its logits instead: same experts, same weights."""
    from llmscope.forward import experts as experts_module

    direct = experts(PROMPT, model=tiny_mixtral)
    assert direct.method == "router"
    monkeypatch.setattr(experts_module, "_router_choice", lambda output, n_tokens: None)
    recomputed = experts(PROMPT, model=tiny_mixtral)
    assert recomputed.method == "recomputed"
    assert [layer.load for layer in recomputed.layers] == [layer.load for layer in direct.layers]
    for a, b in zip(recomputed.layers, direct.layers):
        assert [t.experts for t in a.tokens] == [t.experts for t in b.tokens]
        torch.testing.assert_close(
            torch.tensor([t.weights for t in a.tokens]), torch.tensor([t.weights for t in b.tokens])
        )


def test_the_json_names_the_model(tiny_mixtral):
    from llmscope.render import to_jsonable

    data = to_jsonable(experts(PROMPT, model=tiny_mixtral))
    assert data["model"] == tiny_mixtral.source.display_name
    assert list(data)[0] == "model"
