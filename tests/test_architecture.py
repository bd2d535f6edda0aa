"""inspect's facts: exact parameter counts on published configs, shapes, attention kinds, KV cache."""

from __future__ import annotations

import pytest

import llmscope
from llmscope.config.architecture import inspect_model


def test_gpt2_published_config_counts_tied_weights_once(config_folder):
    report = inspect_model(str(config_folder("gpt2")))
    assert report.parameters.total == 124_439_808
    assert report.tie_word_embeddings is True
    assert (report.num_hidden_layers, report.hidden_size, report.num_attention_heads) == (12, 768, 12)
    assert report.attention == "MHA" and report.position_encoding == "learned absolute"
    assert report.norm == "LayerNorm" and report.mlp.startswith("MLP")
    assert report.max_position_embeddings == 1024 and report.intermediate_size == 3072


def test_phi3_mini_published_config(config_folder):
    # Its config carries an auto_map, but transformers implements Phi-3: no --trust-remote-code needed.
    report = inspect_model(str(config_folder("phi3-mini-4k-instruct")))
    assert report.parameters.total == 3_821_079_552
    assert report.model_type == "phi3" and report.mlp == "SwiGLU" and report.norm == "RMSNorm"
    assert report.position_encoding == "RoPE" and report.rope_theta == 10000.0
    assert report.dtype == "bfloat16" and report.tie_word_embeddings is False
    assert report.parameters.lm_head == 32064 * 3072
    # every layer slides over 2047 tokens: transformers' sliding cache keeps 2046 of 4096
    kv = report.memory.kv_cache
    assert kv.context == 4096 and [g.tokens_kept for g in kv.layers] == [2046]


def test_mixtral_published_config_total_and_active(config_folder):
    report = inspect_model(str(config_folder("mixtral-8x7b-v0.1")))
    assert report.parameters.total == 46_702_792_704
    assert report.parameters.active == 12_879_925_248
    assert report.moe.num_experts == 8 and report.moe.num_experts_per_tok == 2
    assert report.attention == "GQA" and report.gqa_group_size == 4
    assert report.memory.weights["bfloat16"] == 2 * 46_702_792_704


def test_bert_inspects_as_masked_lm(config_folder):
    report = inspect_model(str(config_folder("bert-base-uncased")))
    assert report.kind == "masked" and report.architecture == "BertForMaskedLM"
    assert report.memory.kv_cache is None  # encoder-only: nothing cached


@pytest.mark.parametrize("name", ["gpt2", "llama", "mixtral", "bert"])
def test_meta_count_equals_real_checkpoint(tiny_models, name):
    """The meta-device count equals the parameters of the real saved model, tied weights once."""
    import math

    from safetensors import safe_open

    folder = tiny_models[name]
    report = inspect_model(str(folder))
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        stored = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    assert report.parameters.total == stored
    parts = report.parameters
    assert parts.total == sum(
        (parts.embeddings, parts.attention, parts.mlp, parts.experts, parts.router, parts.norms, parts.lm_head, parts.other)
    )


def test_attention_kinds_from_tiny_models(tiny_models):
    assert inspect_model(str(tiny_models["llama"])).attention == "GQA"
    assert inspect_model(str(tiny_models["gpt2"])).attention == "MHA"


def test_kv_cache_estimate_matches_a_real_cache(tiny_models):
    """Bytes predicted for N tokens equal the bytes of the cache transformers returns."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"])
    ids = torch.arange(3, 40).unsqueeze(0)
    cache = model(ids, use_cache=True).past_key_values
    real = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
    estimate = llmscope.kv_cache_estimate(model.config, context=ids.shape[1], dtype="float32")
    assert estimate.bytes == real


def test_module_tree_folds_repeated_blocks(config_folder):
    report = inspect_model(str(config_folder("phi3-mini-4k-instruct")), modules=True)
    model = report.modules.children[0]
    layers = next(c for c in model.children if c.name == "layers")
    (block,) = layers.children
    assert block.name == "0-31" and block.count == 32 and block.class_name == "Phi3DecoderLayer"


@pytest.mark.slow
def test_embedded_gemma_for_real():
    report = inspect_model(None)
    assert report.parameters.total == 268_098_176
    assert report.model_type == "gemma3_text" and report.attention == "MQA"
    assert report.layer_types.count("full_attention") == 3
    assert report.gguf is not None and report.gguf.file_type == "Q4_K_M"
    assert sum(t.elements for t in report.gguf.types) == 268_098_176  # tied: stored once in the file
