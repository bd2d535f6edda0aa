"""anatomy(): where each part sits in every causal-LM architecture, checked against facts the map does
not read (the config's layer counts and layer types, weight shapes, transformers' own forward pass);
capture() / replace() checked against hand-computed attention and transformers' hidden states."""

from __future__ import annotations

import math

import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from test_architectures_sweep import BUILDS_SINCE, CANNOT_BUILD, MODEL_TYPES, RECURRENT, _build  # noqa: E402
from tiny_architectures import transformers_release  # noqa: E402
from transformers import CONFIG_MAPPING  # noqa: E402

import llmscope  # noqa: E402
from llmscope.forward.anatomy import anatomy, require  # noqa: E402
from llmscope.forward.hooks import capture, replace  # noqa: E402
from llmscope.errors import ExitCode, ModelFormatError  # noqa: E402

# Parts that genuinely do not exist (or have no module of their own), by model type, with the reason.
# Post-norm models: each block ends in its own norm, so nothing sits between the last block and the head.
NO_FINAL_NORM = {
    **dict.fromkeys(["bert", "bert-generation", "big_bird", "camembert", "data2vec-text", "electra", "ernie", "git",
                     "rembert", "roberta", "roc_bert", "roformer", "xlm-roberta", "xmod"], "post-norm BERT layers"),
    **dict.fromkeys(["bart", "bigbird_pegasus", "blenderbot-small", "marian", "mvp", "plbart", "trocr"],
                    "post-norm BART-style decoder layers (only an embedding norm)"),
    "openai-gpt": "post-norm GPT-1 blocks",
    "prophetnet": "post-norm decoder layers (only an embedding norm)",
    "xlnet": "post-norm XLNet layers",
    "xlm": "post-norm; no block modules either",
    "blt": "byte-latent: the norm before the head belongs to the local decoder, not the global blocks",
}
NO_BLOCKS = {"xlm": "attention, FFN and norms sit in four parallel ModuleLists, not in block modules"}
# How many blocks there are, where the config's layer count says something else
BLOCK_COUNT = {
    "longcat_flash": ("num_layers", "each block holds two attention sublayers; num_hidden_layers counts both"),
    "hrm_text": (None, "two looped stacks (H and L) of 16 blocks; num_hidden_layers counts the visits"),
}
NO_ATTENTION_OUTPUT = {
    "jetmoe": "mixture of attention heads: each expert has its own output projection (JetMoeParallelExperts)",
    "xlnet": "its q, k, v, o projections are bare Parameters of the attention module, not modules",
}
# The attention output projection writes the hidden size, except where it is done in two steps
OUTPUT_WIDTH = {"deepseek_v4": "o_a_proj is a grouped low-rank step; o_b_proj then writes the hidden size"}
UNCOUNTED_MOE = {"deepseek_v2": "its defaults leave num_experts_per_tok unset, so llmscope.config.parameters counts no MoE "
                                "layers; transformers still builds a routed MoE block in every layer"}


def _text(config):
    from llmscope.config.values import text_config

    return text_config(config)


def _attention_layers(config, count: int) -> list[bool]:
    """Which layers have softmax self-attention, from the config alone: none in a recurrent model;
    by ``layer_types`` where the config lists them (a hybrid's Mamba / linear-attention / conv / MLP
    layers have none; "hybrid" layers have both); Mllama's cross-attention layers look at images."""
    text = _text(config)
    if text.model_type in RECURRENT:
        return [False] * count
    kinds = list(getattr(text, "layer_types", None) or [])
    if kinds:
        return [("attention" in k and k != "linear_attention") or k.startswith("hybrid") for k in kinds[:count]]
    cross = set(getattr(text, "cross_attention_layers", None) or [])
    return [i not in cross for i in range(count)]


def _out_width(module) -> int:
    if hasattr(module, "out_features"):
        return module.out_features
    if hasattr(module, "nf"):  # GPT-2's Conv1D
        return module.nf
    if not hasattr(module, "weight"):  # Moshi's wraps an nn.Linear; Inkling 2's gates, then projects
        return _out_width([m for m in module.children() if hasattr(m, "weight")][-1])
    return module.weight.shape[0]


def _vocab(config) -> int:
    from llmscope.config.values import vocab_size

    return vocab_size(config)


@pytest.mark.parametrize("model_type", [t for t in MODEL_TYPES if t not in CANNOT_BUILD])
def test_the_map_finds_every_part_of_every_architecture(model_type):
    from torch import nn

    from llmscope.config.parameters import mixture_of_experts

    if model_type in BUILDS_SINCE and transformers_release() < transformers_release(BUILDS_SINCE[model_type]):
        pytest.skip(f"transformers builds {model_type} from its defaults from {BUILDS_SINCE[model_type]} on")
    config = CONFIG_MAPPING[model_type]()
    model = _build(config)
    found = anatomy(model)
    text = _text(config)
    hidden = int(text.hidden_size)

    embedding = found.module(model, found.embedding)
    unembedding = found.module(model, found.unembedding)
    vocab = {_vocab(config), getattr(text, "unpadded_vocab_size", None)}  # Inkling 2 scores the unpadded vocabulary
    assert unembedding.weight.shape[0] in vocab
    assert isinstance(embedding, nn.Embedding) and embedding.num_embeddings >= unembedding.weight.shape[0]
    assert found.tied == (unembedding.weight is embedding.weight)

    if model_type in NO_BLOCKS:
        assert not found.blocks and "blocks" in found.missing
        return
    key = BLOCK_COUNT.get(model_type, ("decoder_layers" if getattr(text, "decoder_layers", None) else
                                       "num_hidden_layers",))[0]
    if key is not None:
        assert len(found.blocks) == getattr(text, key)
    assert [b.name for b in found.blocks] == [f"{found.block_list}.{i}" for i in range(len(found.blocks))]

    if model_type in NO_FINAL_NORM:
        assert found.final_norm is None and "final_norm" in found.missing
    else:
        norm = found.module(model, found.final_norm)
        assert "norm" in type(norm).__name__.lower() and not found.final_norm.startswith(found.block_list + ".")

    expected = _attention_layers(config, len(found.blocks))
    assert [b.attention is not None for b in found.blocks] == expected
    for block in found.blocks:
        if block.attention is None:
            continue
        assert block.attention.startswith(block.name + ".")
        if model_type in NO_ATTENTION_OUTPUT:
            assert block.attention_output is None and "attention_output" in found.missing
            continue
        output = found.module(model, block.attention_output)
        parent = block.attention.rpartition(".")[0]
        assert block.attention_output.startswith(block.attention + ".") or block.attention_output.startswith(
            parent + ".output.")  # BERT: attention.self, then attention.output.dense
        assert (_out_width(output) == hidden) == (model_type not in OUTPUT_WIDTH)

    # a router in every MoE layer the config and the weights declare (llmscope.config.parameters counts expert modules)
    routed = [b for b in found.blocks if b.router]
    assert all(b.router.startswith(b.mlp + ".") for b in routed)
    moe = mixture_of_experts(config, model)
    if model_type in UNCOUNTED_MOE:
        assert moe is None and routed
    else:
        assert len(routed) == (moe.moe_layers if moe else 0)


def test_the_exception_lists_name_real_types():
    for table in (NO_FINAL_NORM, NO_BLOCKS, BLOCK_COUNT, NO_ATTENTION_OUTPUT, OUTPUT_WIDTH, UNCOUNTED_MOE):
        assert set(table) <= set(MODEL_TYPES) - set(CANNOT_BUILD)


def test_require_answers_in_one_line():
    model = _build(CONFIG_MAPPING["mamba"]())
    found = anatomy(model)
    require(found, "embedding", "blocks", "final_norm", "unembedding")
    with pytest.raises(ModelFormatError) as error:
        require(found, "attention", "router")
    assert str(error.value.message) == "mamba has no attention, router"
    assert "\n" not in str(error.value) and error.value.exit_code == ExitCode.ERROR
    jamba = anatomy(_build(CONFIG_MAPPING["jamba"]()))
    require(jamba, "attention")  # some of its layers have attention
    with pytest.raises(ModelFormatError, match="layer 0 of jamba has no attention"):
        require(jamba, "attention", layer=0)


# --------------------------------------------------------------------------------------------
# Real tiny models: the sites hold what transformers computes


@pytest.fixture(scope="module")
def loaded(tiny_models):
    return {name: llmscope.load(str(path), device="cpu", dtype="float32") for name, path in tiny_models.items()}


def _ids(lm, prompt="The quick brown fox jumps"):
    return torch.tensor([lm.tokenizer(prompt)["input_ids"]])


def _by_hand(q, k, v, causal: bool):
    """softmax(q k^T / sqrt(d) + mask) v, heads concatenated: q (batch, heads, T, d), k / v (batch, kv, T, d)."""
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (batch, heads, T, T)
    if causal:
        t = q.shape[2]
        scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v  # (batch, heads, T, d)
    return out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)  # (batch, T, heads * d)


def _heads(x, n):
    return x.view(x.shape[0], x.shape[1], n, -1).transpose(1, 2)  # (batch, heads, T, d)


@pytest.mark.parametrize("name", ["llama", "mixtral"])
def test_llama_output_projection_input_is_the_heads_outputs(loaded, name):
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    lm = loaded[name]
    found = anatomy(lm.model)
    block = found.blocks[1]
    layer = lm.model.model.layers[1]
    ids = _ids(lm)
    with capture(layer.input_layernorm) as normed, capture(found.module(lm.model, block.attention_output),
                                                           "input") as heads, \
            capture(found.module(lm.model, block.attention)) as attention, torch.no_grad():
        lm.model(ids)
    x = normed.value  # (1, T, hidden): what the attention reads
    config = lm.config
    with torch.no_grad():
        attn = layer.self_attn
        q, k, v = (_heads(p(x), n) for p, n in ((attn.q_proj, config.num_attention_heads),
                                                  (attn.k_proj, config.num_key_value_heads),
                                                  (attn.v_proj, config.num_key_value_heads)))
        cos, sin = lm.model.model.rotary_emb(x, torch.arange(ids.shape[1])[None])
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        expected = _by_hand(q, k, v, causal=True)
        torch.testing.assert_close(heads.value, expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(attn.o_proj(heads.value), attention.value, rtol=1e-5, atol=1e-6)


def test_gpt2_output_projection_input_is_the_heads_outputs(loaded):
    lm = loaded["gpt2"]
    found = anatomy(lm.model)
    assert found.positional_embedding == "transformer.wpe" and found.tied
    block = found.blocks[0]
    attn = lm.model.transformer.h[0].attn
    with capture(lm.model.transformer.h[0].ln_1) as normed, \
            capture(found.module(lm.model, block.attention_output), "input") as heads, torch.no_grad():
        lm.model(_ids(lm))
    with torch.no_grad():
        q, k, v = (_heads(t, lm.config.n_head) for t in attn.c_attn(normed.value).split(lm.config.n_embd, dim=2))
        torch.testing.assert_close(heads.value, _by_hand(q, k, v, causal=True), rtol=1e-4, atol=1e-5)


def test_bert_output_projection_input_is_the_heads_outputs(loaded):
    lm = loaded["bert"]
    found = anatomy(lm.model)
    assert found.head == "cls" and found.final_norm is None and "final_norm" in found.missing
    layer = lm.model.bert.encoder.layer[0]
    block = found.blocks[0]
    with capture(lm.model.bert.embeddings) as x, \
            capture(found.module(lm.model, block.attention_output), "input") as heads, torch.no_grad():
        lm.model(_ids(lm, "the cat sat on the mat"))
    s = layer.attention.self
    n = lm.config.num_attention_heads
    with torch.no_grad():
        q, k, v = (_heads(p(x.value), n) for p in (s.query, s.key, s.value))
        torch.testing.assert_close(heads.value, _by_hand(q, k, v, causal=False), rtol=1e-4, atol=1e-5)
    with pytest.raises(ModelFormatError) as error:
        require(found, "final_norm")
    assert error.value.message == "bert has no final norm"


@pytest.mark.parametrize("name", ["gpt2", "llama", "mixtral"])
def test_blocks_and_final_norm_hold_transformers_hidden_states(loaded, name):
    lm = loaded[name]
    found = anatomy(lm.model)
    blocks = [found.module(lm.model, b.name) for b in found.blocks]
    norm = found.module(lm.model, found.final_norm)
    with capture(blocks) as out, capture(norm, "input") as into_norm, torch.no_grad():
        result = lm.model(_ids(lm), output_hidden_states=True)
    hidden = result.hidden_states  # embeddings, then each block; the last one after the final norm
    assert len(blocks) == len(hidden) - 1
    for i in range(len(blocks) - 1):
        torch.testing.assert_close(out[i], hidden[i + 1], rtol=0, atol=0)
    torch.testing.assert_close(into_norm.value, out[len(blocks) - 1], rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(norm(into_norm.value), hidden[-1], rtol=1e-6, atol=1e-6)
        logits = found.module(lm.model, found.head)(hidden[-1])
    torch.testing.assert_close(found.scale_logits(logits), result.logits, rtol=1e-6, atol=1e-6)


def test_mixtral_router_is_what_transformers_returns(loaded):
    lm = loaded["mixtral"]
    found = anatomy(lm.model)
    routers = [found.module(lm.model, b.router) for b in found.blocks]
    with capture(routers) as logits, torch.no_grad():
        out = lm.model(_ids(lm), output_router_logits=True)
    for i, expected in enumerate(out.router_logits):
        torch.testing.assert_close(logits[i], expected)


def _hooks(*modules) -> list[int]:
    """The hooks on each module (transformers adds its own output-recording hooks once, and keeps them)."""
    return [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in modules]


def test_replace_changes_the_output_and_always_removes_its_hooks(loaded):
    lm = loaded["llama"]
    found = anatomy(lm.model)
    mlp = found.module(lm.model, found.blocks[0].mlp)
    attention = found.module(lm.model, found.blocks[0].attention)
    ids = _ids(lm)
    with torch.no_grad():
        before = lm.model(ids, output_hidden_states=True).logits
        baseline = _hooks(mlp, attention)
        with replace(mlp, torch.zeros_like), capture(attention) as attn:
            assert _hooks(mlp, attention) == [baseline[0] + 1, baseline[1] + 1]
            after = lm.model(ids, output_hidden_states=True)
    assert _hooks(mlp, attention) == baseline
    assert not torch.allclose(before, after.logits)
    # with the MLP zeroed, layer 0 adds only its attention output to the residual stream
    torch.testing.assert_close(after.hidden_states[1], after.hidden_states[0] + attn.value)
    for exception in (RuntimeError("inside"), KeyboardInterrupt()):
        with pytest.raises(type(exception)):
            with replace(mlp, torch.zeros_like), capture([mlp, attention], "input"):
                assert _hooks(mlp, attention) == [baseline[0] + 2, baseline[1] + 1]
                raise exception
        assert _hooks(mlp, attention) == baseline
    with torch.no_grad():
        assert torch.equal(lm.model(ids, output_hidden_states=True).logits, before)


def test_a_replaced_block_output_is_what_transformers_returns(loaded):
    """transformers records hidden states with hooks of its own, installed on first use: a replacement
    runs before them, so ``output_hidden_states`` shows the patched residual stream."""
    lm = loaded["llama"]
    found = anatomy(lm.model)
    block = found.module(lm.model, found.blocks[0].name)
    ids = _ids(lm)
    with torch.no_grad():
        lm.model(ids, output_hidden_states=True)  # transformers' recording hooks are now on the blocks
        with replace(block, torch.zeros_like), capture(block) as seen:
            out = lm.model(ids, output_hidden_states=True)
    assert torch.count_nonzero(out.hidden_states[1]) == 0 and torch.count_nonzero(seen.value) == 0


def test_replace_an_input(loaded):
    lm = loaded["llama"]
    found = anatomy(lm.model)
    norm = found.module(lm.model, found.final_norm)
    baseline = _hooks(norm)
    with replace(norm, torch.zeros_like, "input"), torch.no_grad():
        logits = lm.model(_ids(lm)).logits
    assert _hooks(norm) == baseline
    assert torch.count_nonzero(logits) == 0  # RMSNorm(0) = 0, and the head has no bias


def test_gemma_embedding_scale_is_the_one_transformers_applies():
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=16, layer_types=None)
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config).eval()
    found = anatomy(model)
    assert found.embed_scale == pytest.approx(math.sqrt(64))
    assert found.embed_scale_site == found.embedding == "model.embed_tokens"
    assert anatomy(_build(config)).embed_scale == found.embed_scale  # a meta build reads the same factor
    ids = torch.tensor([[1, 5, 7, 42]])
    embed = found.module(model, found.embedding)
    with capture(found.module(model, found.blocks[0].name), "input") as first, torch.no_grad():
        model(ids)
        torch.testing.assert_close(embed(ids), embed.weight[ids] * found.embed_scale, rtol=0, atol=0)
    torch.testing.assert_close(first.value, embed.weight[ids] * found.embed_scale, rtol=0, atol=0)


@pytest.mark.parametrize(("model_type", "extra"), [
    ("cohere", {"logit_scale": 0.25}), ("granite", {"logits_scaling": 8.0}),
    ("gemma2", {"final_logit_softcapping": 3.0}),
])
def test_logit_scaling_is_the_one_transformers_applies(model_type, extra):
    from transformers import AutoModelForCausalLM

    config = CONFIG_MAPPING[model_type](vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, head_dim=16, **extra)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    found = anatomy(model)
    ids = torch.tensor([[1, 5, 7, 42]])
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        raw = found.module(model, found.head)(out.hidden_states[-1])
    assert not torch.allclose(raw, out.logits)
    torch.testing.assert_close(found.scale_logits(raw), out.logits, rtol=1e-5, atol=1e-5)
