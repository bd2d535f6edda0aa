"""Views that find a model's parts through the anatomy map give transformers' own numbers.

``score`` on a long window runs the decoder, then the LM head a few rows at a time, then the model's
logit scaling: Cohere multiplies by ``logit_scale``, Granite divides by ``logits_scaling``, Gemma 2
soft-caps. Each is checked against ``torch.log_softmax(model(ids).logits)`` from a model transformers
loads itself. ``attention`` hooks the map's attention sites (GPT-Neo's, which the old finder missed),
and ``experts`` numbers the routers by the map's blocks.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from conftest import _bpe_tokenizer  # noqa: E402

import llmscope  # noqa: E402
from llmscope.forward import logprobs as logprobs_module  # noqa: E402
from llmscope.progress import Reporter, set_reporter  # noqa: E402

TEXT = "The cat sat on the mat because it was tired. Paris is the capital of France, and Rome of Italy."
SIZES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=256)
pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def tokenizer():
    return _bpe_tokenizer(["<s>", "</s>"], bos="<s>", eos="</s>")


def _config(family: str, tokenizer, cap: float | None = None):
    """A tiny random-weight config of FAMILY, its logit scaling set away from 1 (Gemma 2's soft-cap
    comes from the raw logits, so that tanh bends them without saturating)."""
    ids = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.eos_token_id, initializer_range=0.2)
    if family == "cohere":
        return transformers.CohereConfig(**SIZES, **ids, logit_scale=0.25)
    if family == "granite":
        return transformers.GraniteConfig(**SIZES, **ids, logits_scaling=4.0)
    return transformers.Gemma2Config(**SIZES, **ids, head_dim=16, final_logit_softcapping=cap)


def _folder(family: str, tokenizer, tmp_path):
    """A saved tiny FAMILY causal LM, whose logit scaling is shown to change its log-probabilities."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_config(family, tokenizer)).eval()
    ids = torch.tensor([tokenizer(TEXT)["input_ids"]])
    with torch.inference_mode():
        raw = model.get_output_embeddings()(model.base_model(ids).last_hidden_state)  # the head alone
        if family == "gemma2":
            model.config.final_logit_softcapping = float(raw.abs().max()) / 2
        scaled = model(ids).logits
    assert not torch.allclose(torch.log_softmax(scaled, -1), torch.log_softmax(raw, -1), atol=1e-3)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return tmp_path


class _Notices(Reporter):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def notice(self, text: str) -> None:
        self.seen.append(text)


@pytest.mark.parametrize("family", ["cohere", "granite", "gemma2"])
def test_the_split_head_path_scales_logits_as_the_model(family, tokenizer, tmp_path, monkeypatch):
    """Decoder, then head in chunks of 3 rows, then the logit scaling: the model's own log-softmax,
    with the model's own forward run only on the first tokens (the check before the split is used)."""
    from transformers import AutoModelForCausalLM

    folder = _folder(family, tokenizer, tmp_path)
    lm = llmscope.load(str(folder), device="cpu")
    vocab = len(tokenizer)
    monkeypatch.setattr(logprobs_module, "FULL_LOGITS_FLOATS", 0)  # every window takes the split path
    monkeypatch.setattr(logprobs_module, "CHUNK_FLOATS", 3 * vocab)
    monkeypatch.setattr(logprobs_module, "BLOCK_FLOATS", 2 * vocab)
    ids = tokenizer(TEXT)["input_ids"]
    whole_text = []  # lengths of the inputs the whole model ran on
    hook = lm.model.register_forward_pre_hook(
        lambda _m, args, kwargs: whole_text.append(int((args[0] if args else kwargs["input_ids"]).shape[-1])),
        with_kwargs=True)
    notices = _Notices()
    old = set_reporter(notices)
    try:
        result = llmscope.score_text(TEXT, lm)
    finally:
        set_reporter(old)
        hook.remove()
    assert notices.seen == [] and max(whole_text, default=0) < len(ids)  # the split path ran for the text

    reference = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()  # transformers alone
    with torch.inference_mode():
        expected = torch.log_softmax(reference(torch.tensor([ids])).logits[0].float(), dim=-1)  # (tokens, vocab)
    assert [t.id for t in result.tokens] == ids and result.windows == 1
    for i, token in enumerate(result.tokens[1:], 1):
        row = expected[i - 1]
        assert token.logprob == pytest.approx(float(row[ids[i]]), abs=1e-5)
        assert token.rank == int((row > row[ids[i]]).sum()) + 1
        assert token.top.id == int(row.argmax())
        assert token.top.prob == pytest.approx(math.exp(float(row.max())), rel=1e-5)
    nll = -float(sum(expected[i - 1, ids[i]] for i in range(1, len(ids)))) / (len(ids) - 1)
    assert result.mean_nll == pytest.approx(nll, rel=1e-5)


def _hook_counts(modules) -> list[int]:
    return [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in modules]


def test_attention_reads_gpt_neo_through_its_attention_sites(tokenizer, tmp_path):
    """GPT-Neo's attention sits one level down (attn.attention): the map finds it, the hooks read its
    weights (transformers' own output_attentions, every layer) and come off."""
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    torch.manual_seed(0)
    config = GPTNeoConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=2, num_heads=4,
                          attention_types=[[["global", "local"], 1]], window_size=4, max_position_embeddings=128,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    GPTNeoForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    lm = llmscope.load(str(tmp_path), device="cpu")
    sites = [block.attn.attention for block in lm.model.transformer.h]
    before = _hook_counts(sites)
    asked = []  # output_attentions of each forward pass: the hooks, not every layer's weights returned
    hook = lm.model.register_forward_pre_hook(lambda _m, _a, kwargs: asked.append(kwargs.get("output_attentions")),
                                              with_kwargs=True)
    try:
        result = llmscope.attention_weights(TEXT, model=lm, layer=1, token="Paris", top=3)
    finally:
        hook.remove()
    assert asked == [False] and _hook_counts(sites) == before
    reference = GPTNeoForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    ids = torch.tensor([tokenizer(TEXT)["input_ids"]])
    with torch.no_grad():
        attentions = reference(ids, output_attentions=True).attentions  # layers x (1, heads, query, key)
    torch.testing.assert_close(torch.tensor(result.weights), attentions[1][0].mean(dim=0))  # local: window of 4
    query = result.query.position
    for layer, ranking in enumerate(result.ranking):
        row = attentions[layer][0, :, query].mean(dim=0)  # (key,)
        assert [t.position for t in ranking.top] == torch.topk(row, 3).indices.tolist()


def test_experts_numbers_each_router_by_its_block(tiny_models):
    """Qwen2-MoE with a dense first layer: the routed layers are named by their place in the model,
    and each token's experts are the top-k of that layer's gate, computed here."""
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    torch.manual_seed(0)
    folder = str(tiny_models["llama"])
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    config = Qwen2MoeConfig(hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
                            shared_expert_intermediate_size=16, num_hidden_layers=3, num_attention_heads=4,
                            num_key_value_heads=2, num_experts=4, num_experts_per_tok=2, vocab_size=len(tok),
                            mlp_only_layers=[0], norm_topk_prob=True)
    model = Qwen2MoeForCausalLM(config).eval()
    from llmscope.loading.resolve import resolve

    lm = llmscope.LoadedModel(model=model, tokenizer=tok, source=resolve(folder), device="cpu", dtype="float32")
    inputs = {}
    hooks = [model.model.layers[i].mlp.register_forward_hook(
        lambda _m, args, _out, i=i: inputs.setdefault(i, args[0].reshape(-1, 32))) for i in (1, 2)]
    try:
        result = llmscope.expert_routing(TEXT, model=lm)
    finally:
        for hook in hooks:
            hook.remove()
    assert [layer.layer for layer in result.layers] == [1, 2] and result.method == "router"
    for layer in result.layers:
        gate = model.model.layers[layer.layer].mlp.gate.weight  # (experts, hidden)
        probs = torch.softmax(inputs[layer.layer] @ gate.T, dim=-1)  # (tokens, experts)
        top, index = torch.topk(probs, 2, dim=-1)
        assert [t.experts for t in layer.tokens] == index.tolist()
        torch.testing.assert_close(torch.tensor([t.weights for t in layer.tokens]), top / top.sum(-1, keepdim=True))
