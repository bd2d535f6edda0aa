"""``llmscope contributions`` against transformers' own forward pass and an independent recomputation.

The parts must add up to the model's logit (read from transformers' logits, not from llmscope) on tiny models
of six families; a layer's parts must equal what transformers' own hidden states say it wrote, projected
through the final norm written out in the test (RMSNorm and LayerNorm formulas, not the module); a head's
share must equal its slice of the output projection applied to what a hook of the test's own reads.
"""

from __future__ import annotations

import pytest

from conftest import _bpe_tokenizer, _save, cli_error

PROMPT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    """Tiny random-weight models: gpt2 (LayerNorm, biases made non-zero, learned positions), llama (GQA),
    gpt_neox (parallel residual), phi (parallel, one norm), mixtral (experts)."""
    import torch
    from transformers import (GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig,
                              LlamaForCausalLM, MixtralConfig, MixtralForCausalLM, PhiConfig, PhiForCausalLM)

    torch.manual_seed(0)
    tok = _bpe_tokenizer(["<s>", "</s>"], bos="<s>", eos="</s>")
    v = len(tok)
    small = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=v)
    models = {
        "gpt2": GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=128, vocab_size=v)),
        "llama": LlamaForCausalLM(LlamaConfig(**small, num_key_value_heads=2)),
        "gpt_neox": GPTNeoXForCausalLM(GPTNeoXConfig(**small, use_parallel_residual=True)),
        "phi": PhiForCausalLM(PhiConfig(**small)),
        "mixtral": MixtralForCausalLM(MixtralConfig(**small, num_key_value_heads=2, num_local_experts=4,
                                                    num_experts_per_tok=2)),
    }
    with torch.no_grad():  # GPT-2 initialises its biases to zero: give them values, so the bias terms count
        for name, p in models["gpt2"].named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
    root = tmp_path_factory.mktemp("contributions")
    return {name: _save(root / name, m, tok) for name, m in models.items()}


def hf(folder):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def keep(store: dict, key: str):
    """A forward hook that keeps its module's input at the last position (and returns None: changes nothing)."""
    def hook(_module, inputs, _output) -> None:
        store[key] = inputs[0][0, -1].detach().double()

    return hook


def real_logits(ref, ids):
    import torch

    with torch.no_grad():
        return ref(input_ids=torch.tensor([ids])).logits[0, -1].double()


@pytest.mark.parametrize("name", ["gpt2", "llama", "gpt_neox", "phi", "mixtral", "gemma3"])
@pytest.mark.parametrize("by", ["layer", "head"])
def test_parts_add_up_to_the_models_logit(name, by, families, tiny_families):
    import llmscope
    from llmscope import contributions

    folder = tiny_families["gemma3"] if name == "gemma3" else families[name]
    lm = llmscope.load(str(folder), device="cpu", dtype="float32")
    ref = hf(folder)
    ids = lm.tokenizer(PROMPT)["input_ids"]
    logits = real_logits(ref, ids)
    r = contributions(PROMPT, model=lm, by=by)
    assert r.target_id == int(logits.argmax())
    assert r.logit == pytest.approx(float(logits[r.target_id]), abs=1e-5)
    total = r.embedding + r.bias + sum((sum(x.heads) if by == "head" else x.attention) + x.mlp for x in r.layers)
    assert total == pytest.approx(float(logits[r.target_id]), rel=1e-4, abs=1e-5)
    assert r.sum == pytest.approx(total) and r.error < 1e-4
    if by == "head":
        n = lm.config.get_text_config().num_attention_heads
        assert all(len(x.heads) == n for x in r.layers)
    if name == "gpt2":
        assert abs(r.bias) > 1e-3  # the LayerNorm's and the LM head's biases are counted


def _final_norm_formula(ref, name, x):
    """The final norm as a linear map with X's statistics, written out here (not through the module)."""
    import torch

    norm = ref.transformer.ln_f if name == "gpt2" else ref.model.norm
    w = norm.weight.detach().double()
    if name == "gpt2":
        sigma = torch.sqrt(x.var(unbiased=False) + norm.eps)
        return lambda v: (v - v.mean()) / sigma * w, norm.bias.detach().double()
    rms = torch.sqrt((x ** 2).mean() + norm.variance_epsilon)
    return lambda v: v / rms * w, torch.zeros_like(w)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_a_layers_parts_are_its_output_minus_its_input_through_the_frozen_norm(name, families):
    import torch

    import llmscope
    from llmscope import contributions

    ref = hf(families[name])
    lm = llmscope.load(str(families[name]), device="cpu", dtype="float32")
    ids = lm.tokenizer(PROMPT)["input_ids"]
    seen = {}
    norm = ref.transformer.ln_f if name == "gpt2" else ref.model.norm
    handle = norm.register_forward_hook(keep(seen, "x"))
    with torch.no_grad():
        out = ref(input_ids=torch.tensor([ids]), output_hidden_states=True)
    handle.remove()
    hs = [h[0, -1].double() for h in out.hidden_states]  # embed, after layer 0, ..., (the last: after the norm)
    linear, _ = _final_norm_formula(ref, name, seen["x"])
    r = contributions(PROMPT, model=lm)
    u = ref.get_output_embeddings().weight.detach().double()[r.target_id]
    assert r.embedding == pytest.approx(float(u @ linear(hs[0])), abs=1e-5)
    written = hs[1] - hs[0]  # layer 0 (hidden_states[1] is layer 0's output: not the last, not normed)
    assert r.layers[0].attention + r.layers[0].mlp == pytest.approx(float(u @ linear(written)), abs=1e-5)
    last = seen["x"] - hs[1]  # the last layer wrote the rest of the residual stream the norm read
    assert r.layers[1].attention + r.layers[1].mlp == pytest.approx(float(u @ linear(last)), abs=1e-5)


def test_a_heads_share_is_its_slice_of_the_output_projection(families):
    import torch

    import llmscope
    from llmscope import contributions

    ref = hf(families["llama"])
    lm = llmscope.load(str(families["llama"]), device="cpu", dtype="float32")
    ids = lm.tokenizer(PROMPT)["input_ids"]
    seen = {}
    o_proj = ref.model.layers[1].self_attn.o_proj
    hooks = [o_proj.register_forward_hook(keep(seen, "z")), ref.model.norm.register_forward_hook(keep(seen, "x"))]
    with torch.no_grad():
        ref(input_ids=torch.tensor([ids]))
    for h in hooks:
        h.remove()
    linear, _ = _final_norm_formula(ref, "llama", seen["x"])
    r = contributions(PROMPT, model=lm, by="head")
    u = ref.get_output_embeddings().weight.detach().double()[r.target_id]
    w = o_proj.weight.detach().double()
    d = w.shape[1] // 4
    for head in range(4):
        share = w[:, head * d:(head + 1) * d] @ seen["z"][head * d:(head + 1) * d]
        assert r.layers[1].heads[head] == pytest.approx(float(u @ linear(share)), abs=1e-6)
    assert sum(r.layers[1].heads) == pytest.approx(r.layers[1].attention, abs=1e-6)  # llama's o_proj has no bias


def test_versus_is_the_difference_of_the_two_logits(families):
    import llmscope
    from llmscope import contributions

    lm = llmscope.load(str(families["llama"]), device="cpu", dtype="float32")
    ref = hf(families["llama"])
    ids = lm.tokenizer(PROMPT)["input_ids"]
    logits = real_logits(ref, ids)
    single = [t for t in ids[1:] if lm.tokenizer(lm.tokenizer.decode([t]), add_special_tokens=False)["input_ids"] == [t]]
    a, b = (lm.tokenizer.decode([t]) for t in single[:2])
    one = contributions(PROMPT, model=lm, target=a)
    two = contributions(PROMPT, model=lm, target=b)
    both = contributions(PROMPT, model=lm, target=a, versus=b)
    assert both.logit == pytest.approx(float(logits[single[0]] - logits[single[1]]), abs=1e-5)
    for x, y, z in zip(both.layers, one.layers, two.layers):
        assert x.attention == pytest.approx(y.attention - z.attention, abs=1e-6)
        assert x.mlp == pytest.approx(y.mlp - z.mlp, abs=1e-6)


@pytest.mark.slow
def test_embedded_eiffel_tower(demo_model):
    from llmscope import contributions

    r = contributions("The Eiffel Tower is in", model=demo_model, target=" Paris", versus=" London", by="head")
    assert r.error < 1e-4 and r.logit > 0
    tok = demo_model.tokenizer
    import torch

    ids = tok("The Eiffel Tower is in")["input_ids"]
    with torch.no_grad():
        logits = demo_model.model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    paris, london = (tok(t, add_special_tokens=False)["input_ids"][0] for t in (" Paris", " London"))
    assert r.logit == pytest.approx(float(logits[paris] - logits[london]), abs=1e-4)


@pytest.mark.parametrize(("args", "words"), [
    (["--by", "neuron"], "unknown unit"),
    (["--target", " cat", "--versus", " cat"], "is the target itself"),
    (["--target", ""], "target is empty"),
])
def test_bad_options_before_the_load(cli, one_error_line, args, words):
    assert words in cli_error(cli, one_error_line, "contributions", PROMPT, "-m", "/nonexistent/model", *args)


def test_a_target_of_several_tokens_names_them(cli, one_error_line, families):
    line = cli_error(cli, one_error_line, "contributions", PROMPT, "-m", families["llama"], "--target", " catmat")
    assert "tokens (" in line and "not one" in line


def test_post_norm_model_is_refused(cli, one_error_line, tiny_models):
    line = one_error_line(cli("contributions", "the cat", "-m", tiny_models["bert"]), 1)
    assert "post-norm" in line


def test_terminal_view_prints_the_check(cli, families):
    out = cli("contributions", PROMPT, "-m", families["gpt2"], "--by", "head")
    assert out.exit_code == 0, out.stderr
    assert "check: |sum - logit|" in out.stdout and "the parts add up" in out.stdout
    assert "Top 10 heads" in out.stdout


def test_capture_last_keeps_the_last_position_of_what_capture_sees(families):
    import torch

    import llmscope
    from llmscope.forward.anatomy import anatomy
    from llmscope.forward.hooks import capture, capture_last

    lm = llmscope.load(str(families["llama"]), device="cpu", dtype="float32")
    parts = anatomy(lm.model)
    blocks = [parts.module(lm.model, b.name) for b in parts.blocks]
    ids = torch.tensor([lm.tokenizer(PROMPT)["input_ids"]])
    with capture(blocks) as whole, capture_last(blocks) as last, torch.no_grad():
        lm.model(input_ids=ids)
    for i in range(len(blocks)):
        assert last[i].shape == (lm.config.hidden_size,) and last[i].dtype == torch.float64
        assert torch.equal(last[i], whole[i][0, -1].double())


def test_work_that_cannot_fit_is_one_line_exit_1(cli, one_error_line, families, monkeypatch):
    monkeypatch.setenv("LLMSCOPE_MAX_WORK_BYTES", "1KiB")
    line = one_error_line(cli("contributions", PROMPT, "-m", families["llama"]), 1)
    assert "contributions on" in line


def test_mixtral_experts_are_the_chosen_experts_weighted_outputs(families):
    """Each chosen expert's share against the test's own MoE arithmetic: the router's softmax, its top 2
    renormalised, the expert's SwiGLU from its own weight slices, through the final norm's formula."""
    import torch

    import llmscope
    from llmscope import contributions

    ref = hf(families["mixtral"])
    lm = llmscope.load(str(families["mixtral"]), device="cpu", dtype="float32")
    ids = lm.tokenizer(PROMPT)["input_ids"]
    seen = {}
    moe = ref.model.layers[1].mlp
    hooks = [moe.register_forward_hook(keep(seen, "x")), ref.model.norm.register_forward_hook(keep(seen, "final"))]
    with torch.no_grad():
        ref(input_ids=torch.tensor([ids]))
    for h in hooks:
        h.remove()
    x = seen["x"]
    probs = torch.softmax(moe.gate.weight.detach().double() @ x, -1)
    weights, chosen = probs.topk(2)
    weights = weights / weights.sum()
    linear, _ = _final_norm_formula(ref, "mixtral", seen["final"])
    r = contributions(PROMPT, model=lm)
    u = ref.get_output_embeddings().weight.detach().double()[r.target_id]
    experts = r.layers[1].experts
    assert [e["expert"] for e in experts] == chosen.tolist()
    gate_up, down = moe.experts.gate_up_proj.detach().double(), moe.experts.down_proj.detach().double()
    for e, w in zip(experts, weights.tolist()):
        gate, up = (gate_up[e["expert"]] @ x).chunk(2)
        out = w * (down[e["expert"]] @ (torch.nn.functional.silu(gate) * up))
        assert e["weight"] == pytest.approx(w, abs=1e-6)
        assert e["share"] == pytest.approx(float(u @ linear(out)), abs=1e-6)
    assert sum(e["share"] for e in experts) == pytest.approx(r.layers[1].mlp, abs=1e-6)
    assert r.error < 1e-4


def test_a_shared_expert_is_its_own_part(tmp_path):
    import torch
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    import llmscope
    from llmscope import contributions

    torch.manual_seed(0)
    tok = _bpe_tokenizer(["<s>", "</s>"], bos="<s>", eos="</s>")
    model = Qwen2MoeForCausalLM(Qwen2MoeConfig(
        hidden_size=64, intermediate_size=128, moe_intermediate_size=32, shared_expert_intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
        vocab_size=len(tok), decoder_sparse_step=1, mlp_only_layers=[]))
    lm = llmscope.load(str(_save(tmp_path / "qwen2-moe", model, tok)), device="cpu", dtype="float32")
    r = contributions(PROMPT, model=lm)
    assert r.error < 1e-4
    for layer in r.layers:
        names = [e["expert"] for e in layer.experts]
        assert names[-1] == "shared" and len(names) == 3
        assert sum(e["share"] for e in layer.experts) == pytest.approx(layer.mlp, abs=1e-6)


def test_a_final_softcap_is_applied_after_the_sum_and_named(tmp_path, cli):
    """Gemma 2 soft-caps its logits: the parts add up to the logit before the cap, and the cap of the sum is the
    model's own logit."""
    import math

    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM

    import llmscope
    from llmscope import contributions

    torch.manual_seed(0)
    tok = _bpe_tokenizer(["<s>", "</s>"], bos="<s>", eos="</s>")
    config = Gemma2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, head_dim=16, vocab_size=len(tok), final_logit_softcapping=0.05)
    folder = _save(tmp_path / "gemma2", Gemma2ForCausalLM(config), tok)
    lm = llmscope.load(str(folder), device="cpu", dtype="float32")
    r = contributions(PROMPT, model=lm)
    logits = real_logits(hf(folder), lm.tokenizer(PROMPT)["input_ids"])
    assert r.logit == pytest.approx(float(logits[r.target_id]), abs=1e-6)
    assert r.logit_before_softcap is not None and abs(r.logit_before_softcap) > abs(r.logit)  # the cap bites
    assert r.sum == pytest.approx(r.logit_before_softcap, rel=1e-4)
    assert 0.05 * math.tanh(r.sum / 0.05) == pytest.approx(r.logit, rel=1e-4)
    out = cli("contributions", PROMPT, "-m", folder)
    assert "before its final soft-cap" in out.stdout
