"""``attention --walk``: one head recomputed by hand matches the model, on every kind of attention.

Each family is a tiny random-weight model saved offline. The references are transformers' own: the
weights ``output_attentions=True`` returns from a model transformers loads itself, and the output
projection's output read by a hook on that model. The walk's own check must agree with them.
"""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from conftest import _bpe_tokenizer, _wordpiece_tokenizer  # noqa: E402

from llmscope.errors import UsageError  # noqa: E402
from llmscope.forward.walk import walk  # noqa: E402

PROMPT = "The cat sat on the mat because it was tired and the dog"
SIZES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=256)
pytestmark = pytest.mark.usefixtures("one_thread")


def _config(family: str, ids: dict):
    t = transformers
    if family == "llama":
        return t.LlamaConfig(**SIZES, **ids)
    if family == "gemma2":
        return t.Gemma2Config(**SIZES, **ids, head_dim=16, query_pre_attn_scalar=24, attn_logit_softcapping=3.0,
                              sliding_window=4, layer_types=["sliding_attention", "full_attention"])
    if family == "gemma3":
        return t.Gemma3TextConfig(**SIZES, **ids, head_dim=16, sliding_window=4,
                                  layer_types=["sliding_attention", "full_attention"])
    if family == "qwen3":
        return t.Qwen3Config(**SIZES, **ids, head_dim=16)
    if family == "gpt_oss":
        return t.GptOssConfig(**SIZES, **ids, head_dim=16, num_local_experts=4, num_experts_per_tok=2,
                              sliding_window=4, layer_types=["sliding_attention", "full_attention"])
    if family == "deepseek_v3":
        return t.DeepseekV3Config(**{**SIZES, "num_key_value_heads": 4}, **ids, q_lora_rank=None, kv_lora_rank=16, qk_rope_head_dim=8,
                                  qk_nope_head_dim=8, v_head_dim=8, n_routed_experts=4, num_experts_per_tok=2,
                                  first_k_dense_replace=1, moe_intermediate_size=32, n_group=1, topk_group=1)
    if family == "phi3":
        return t.Phi3Config(**SIZES, **ids, partial_rotary_factor=0.5)
    if family == "gpt2":
        return t.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=256, **ids)
    if family == "bloom":
        return t.BloomConfig(hidden_size=64, n_layer=2, n_head=4, **ids)
    raise AssertionError(family)


FAMILIES = ["llama", "gemma2", "gemma3", "qwen3", "gpt_oss", "deepseek_v3", "phi3", "gpt2", "bloom"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """family -> a saved tiny model with its tokenizer (BERT: a masked LM and a WordPiece tokenizer)."""
    root = tmp_path_factory.mktemp("walk")
    bpe = _bpe_tokenizer(["<s>", "</s>"], bos="<s>", eos="</s>")
    ids = dict(vocab_size=len(bpe), bos_token_id=bpe.bos_token_id, eos_token_id=bpe.eos_token_id,
               pad_token_id=bpe.eos_token_id, initializer_range=0.2)
    made = {}
    for family in FAMILIES:
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(_config(family, ids))
        model.save_pretrained(root / family)
        bpe.save_pretrained(root / family)
        made[family] = root / family
    wordpiece = _wordpiece_tokenizer()
    torch.manual_seed(0)
    bert = transformers.BertForMaskedLM(transformers.BertConfig(
        vocab_size=len(wordpiece), hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128))
    bert.save_pretrained(root / "bert")
    wordpiece.save_pretrained(root / "bert")
    made["bert"] = root / "bert"
    return made


def _reference(folder, family: str, layer: int, head: int, query: int):
    """transformers' own: the eager weights of LAYER's HEAD at QUERY, and the output projection's output there."""
    auto = transformers.AutoModelForMaskedLM if family == "bert" else transformers.AutoModelForCausalLM
    model = auto.from_pretrained(folder, attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    if family == "gpt2":
        proj = model.transformer.h[layer].attn.c_proj
    elif family == "bloom":
        proj = model.transformer.h[layer].self_attention.dense
    elif family == "bert":
        proj = model.bert.encoder.layer[layer].attention.output.dense
    else:
        proj = model.model.layers[layer].self_attn.o_proj
    seen = []
    handle = proj.register_forward_hook(lambda _m, _a, out: seen.append(out[0].detach()))
    try:
        with torch.inference_mode():
            out = model(input_ids=ids, output_attentions=True)
    finally:
        handle.remove()
    return out.attentions[layer][0, head, query].double(), seen[0][query].double(), ids.shape[-1]


@pytest.mark.parametrize("family", [*FAMILIES, "bert"])
def test_the_walk_is_the_models_own_attention(folders, family):
    layer, head = 1, 3
    w = walk(PROMPT, model=str(folders[family]), layer=layer, head=head, token="it")
    weights, projected, tokens = _reference(folders[family], family, layer, head, w.query.position)
    assert len(w.query.keys) == tokens
    assert [k.weight for k in w.query.keys] == pytest.approx(weights.tolist(), abs=1e-5)
    assert w.query.attention_output_norm == pytest.approx(float(torch.linalg.vector_norm(projected)), rel=1e-5)
    assert w.check.weights_max_abs_error < 1e-5 and w.check.output_max_abs_error < 1e-4
    masked = [k.masked for k in w.query.keys]
    if family == "bert":
        assert not any(masked) and not w.causal  # bidirectional: every key seen
    else:
        assert masked == [j > w.query.position for j in range(tokens)]  # causal (layer 1 is a full layer)
    for k in w.query.keys:
        assert k.weighted_value_norm == pytest.approx(k.weight * k.value_norm)
        if k.masked:
            assert k.weight == 0 and k.scaled == float("-inf")


@pytest.mark.parametrize("family", FAMILIES)
def test_the_walk_names_what_each_family_does(folders, family):
    w = walk(PROMPT, model=str(folders[family]), layer=0, head=3, token="it")
    config = transformers.AutoConfig.from_pretrained(folders[family])
    kv = 4 if family in ("gpt2", "deepseek_v3", "bloom") else 2  # MLA: a key per head, from one latent
    assert (w.num_heads, w.num_key_value_heads, w.kv_head) == (4, kv, 3 // (4 // kv))
    assert w.heads_sharing == ([3] if kv == 4 else [2, 3])
    assert w.positions == {"gpt2": "absolute", "bloom": "alibi"}.get(family, "rope")
    if family == "bloom":  # ALiBi (Press et al.): with n heads, head h's slope is 2 ** (-8 / n * (h + 1))
        assert w.alibi_slope == pytest.approx(2 ** (-8 / 4 * (3 + 1)), rel=1e-5)
    assert w.qk_norm == (family in ("gemma3", "qwen3"))
    if family == "gemma2":
        assert w.softcap == 3.0 and w.scale == pytest.approx(24 ** -0.5) and "query_pre_attn_scalar" in w.scale_source
    if family in ("gemma2", "gemma3", "gpt_oss"):  # layer 0 slides over 4 tokens
        assert w.window == 4
        assert [k.masked for k in w.query.keys] == [not (w.query.position - 4 < j <= w.query.position)
                                                    for j in range(len(w.query.keys))]
    if family == "gpt_oss":
        assert 0 < w.query.sink_weight < 1
        assert sum(k.weight for k in w.query.keys) == pytest.approx(1 - w.query.sink_weight)
    else:
        assert w.query.sink_weight is None
        assert sum(k.weight for k in w.query.keys) == pytest.approx(1.0)
    if family == "phi3":
        assert w.rotary_dims == 8 and w.head_dim == 16
    if family == "deepseek_v3":
        assert w.head_dim == config.qk_nope_head_dim + config.qk_rope_head_dim and w.rotary_dims == 8
    if w.positions == "rope" and w.query.query_norm_before_rope is not None:
        # a rotation keeps norms; YaRN (gpt-oss) also multiplies cos and sin by its attention factor
        factor = w.rope_attention_scaling or 1.0
        assert w.query.query_norm == pytest.approx(w.query.query_norm_before_rope * factor, rel=1e-5)
        assert (factor != 1.0) == (family == "gpt_oss")


def test_the_walk_on_the_embedded_model(demo_model, cli):
    result = cli("attention", "The cat sat on the mat because it was tired", "--walk", "--token", "it", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)["walk"]
    assert data["query"]["token"] == " it" and data["positions"] == "rope" and data["qk_norm"]
    assert data["scale"] == pytest.approx(256 ** -0.5)  # Gemma 3's query_pre_attn_scalar
    assert data["check"]["weights_max_abs_error"] < 1e-5 and data["check"]["output_max_abs_error"] < 1e-4
    assert math.isclose(sum(k["weight"] for k in data["keys"]), 1.0, rel_tol=1e-6)
    text = cli("attention", "The cat sat on the mat because it was tired", "--walk", "--token", "it")
    words = " ".join(text.stdout.split())
    assert "check: recomputed weights" in words and "MQA" in words


def test_walk_refuses_what_it_cannot_do(folders, cli):
    with pytest.raises(UsageError, match="head=9: this model has 4 attention heads"):
        walk(PROMPT, model=str(folders["llama"]), head=9)
    both = cli("attention", "hi", "-m", str(folders["llama"]), "--walk", "--all-layers")
    assert both.exit_code == 2 and "--walk follows one head of one layer" in both.stderr
    missing = cli("attention", PROMPT, "-m", str(folders["llama"]), "--walk", "--token", "zebra")
    assert missing.exit_code == 2 and "--token 'zebra' is not a word of the prompt" in missing.stderr


def test_a_layer_without_softmax_attention_names_one_that_has_it(tmp_path, cli):
    """LFM2 mixes short convolutions with attention layers: walking a convolution layer says which layer can."""
    bpe = _bpe_tokenizer(["<s>", "</s>"], bos="<s>", eos="</s>")
    config = transformers.Lfm2Config(vocab_size=len(bpe), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                     layer_types=["conv", "conv", "full_attention", "conv"], conv_L_cache=3,
                                     bos_token_id=bpe.bos_token_id, eos_token_id=bpe.eos_token_id)
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    bpe.save_pretrained(tmp_path)
    refused = cli("attention", PROMPT, "-m", str(tmp_path), "--walk", "--layer", "0")
    assert refused.exit_code == 1
    assert "layer 0 of lfm2 has no softmax attention to walk (layer 2 has: --layer 2)" in refused.stderr
    walked = cli("attention", PROMPT, "-m", str(tmp_path), "--walk", "--layer", "2", "--json")
    assert walked.exit_code == 0, walked.stderr
    assert json.loads(walked.stdout)["walk"]["check"]["weights_max_abs_error"] < 1e-5
