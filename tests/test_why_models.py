"""``llmscope why`` on Gemma's scaled embedding (a tiny Gemma 3 and the real embedded Gemma 3 270M) and on a
mixture of experts: f, occlusion and the integrated-gradients gap against transformers' own forward pass."""

from __future__ import annotations

import math

import pytest


def logprob_ids(model, ids: list[int], continuation: list[int]) -> float:
    """log p(continuation | ids) from token ids through the model's own forward pass (no llmscope code)."""
    import torch

    full = torch.tensor([ids + continuation[:-1]], device=model.device)
    with torch.no_grad():
        logits = model(input_ids=full).logits[0, -len(continuation):].double()
    logp = torch.log_softmax(logits, dim=-1)
    return float(sum(logp[k, t] for k, t in enumerate(continuation)))


@pytest.mark.parametrize("family", ["gemma3", "mixtral"])
def test_f_and_occlusion_through_the_scaled_embedding_and_experts(family, tiny_families, tiny_models):
    import torch
    from transformers import AutoModelForCausalLM

    import llmscope
    from llmscope import why

    folder = tiny_families["gemma3"] if family == "gemma3" else tiny_models["mixtral"]
    lm = llmscope.load(str(folder), device="cpu", dtype="float32")
    embed = lm.model.get_input_embeddings()
    if family == "gemma3":  # the scale lives in the embedding module: its output is weight[ids] * sqrt(hidden)
        ids = torch.tensor([[5, 6]])
        hidden = lm.model.config.get_text_config().hidden_size
        assert torch.allclose(embed(ids), embed.weight[ids] * math.sqrt(hidden), rtol=1e-3)
    ref = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    prompt = "the cat sat on the mat"
    ids = lm.tokenizer(prompt)["input_ids"]
    r = why(prompt, model=lm, target=" cat", method="occlusion", by="token", baseline="zero")
    assert r.check < 1e-5
    assert r.f == pytest.approx(logprob_ids(ref, ids, r.target_ids), abs=1e-5)
    special = {i for i, t in enumerate(ids) if t == lm.tokenizer.bos_token_id}
    inputs = embed(torch.tensor([ids + r.target_ids[:-1]])).detach()
    for u in r.units:
        if u.special:
            assert set(u.positions) <= special
            continue
        e = inputs.clone()
        e[0, list(u.positions)] = 0
        with torch.no_grad():
            logits = ref(inputs_embeds=e).logits[0, -len(r.target_ids):].double()
        logp = torch.log_softmax(logits, -1)
        occluded = float(sum(logp[k, t] for k, t in enumerate(r.target_ids)))
        assert u.attribution == pytest.approx(r.f - occluded, abs=1e-5)


@pytest.mark.slow
def test_embedded_paris(demo_model):
    from llmscope import why

    tok = demo_model.tokenizer
    prompt = "The capital of France is"
    ids = tok(prompt)["input_ids"]
    paris = tok(" Paris", add_special_tokens=False)["input_ids"]
    london = tok(" London", add_special_tokens=False)["input_ids"]
    f = logprob_ids(demo_model.model, ids, paris)
    ig = why(prompt, model=demo_model, target=" Paris")
    assert ig.n_steps == 32 and ig.baseline == "<pad>" and ig.units[0].special and ig.units[0].text == "<bos>"
    assert ig.f == pytest.approx(f, abs=1e-4)
    pad = tok.pad_token_id
    fb = logprob_ids(demo_model.model, [ids[0]] + [pad] * (len(ids) - 1), paris)  # BOS held, the rest the pad
    assert ig.f_baseline == pytest.approx(fb, abs=1e-4)
    total = sum(u.attribution for u in ig.units if u.attribution is not None)
    assert ig.gap == pytest.approx(total - (f - fb), abs=1e-3)
    assert ig.converged == (abs(ig.gap) <= 0.05 * abs(f - fb))
    occ = why(prompt, model=demo_model, target=" Paris", method="occlusion")
    for u in occ.units[1:]:
        without = [pad if i in u.positions else t for i, t in enumerate(ids)]
        assert u.attribution == pytest.approx(f - logprob_ids(demo_model.model, without, paris), abs=1e-4)
    versus = why(prompt, model=demo_model, target=" Paris", versus=" London", method="grad-x-input")
    assert versus.f == pytest.approx(f - logprob_ids(demo_model.model, ids, london), abs=1e-4)
    assert versus.f > 0  # the trained model prefers Paris
    assert max((u for u in versus.units if u.attribution is not None), key=lambda u: u.attribution).text.strip() in {
        "France", "capital"}
