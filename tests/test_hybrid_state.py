"""Hybrid models (Mamba / linear-attention / short-convolution layers beside attention): the state
their layers keep, estimated from the config, against transformers' own cache after a forward pass
on a tiny random-weight model of each, in float32 and bfloat16."""

from __future__ import annotations

import pytest
from tiny_architectures import cache_after_forward, cache_kv_bytes, transformers_release

BASE = dict(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
            head_dim=16, pad_token_id=0)
LINEAR = ["linear_attention", "linear_attention", "linear_attention", "full_attention"]
DELTANET = dict(linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=8, linear_value_head_dim=12,
                linear_conv_kernel_dim=3)
MAMBA2 = dict(mamba_n_heads=4, mamba_d_head=32, mamba_n_groups=2, mamba_d_state=8, mamba_d_conv=3, mamba_chunk_size=8)
KDA = dict(linear_num_heads=2, linear_head_dim=8, linear_conv_kernel_dim=3, num_experts=4, num_experts_per_token=2,
           moe_intermediate_size=32, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16,
           num_expert_group=1, topk_group=1)
INKLING = dict(layer_types=["hybrid", "hybrid_sliding", "hybrid", "hybrid_sliding"], swa_num_attention_heads=4,
               swa_num_key_value_heads=1, swa_head_dim=8, sliding_window_size=8, d_rel=4, rel_extent=16,
               conv_kernel_size=3, n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32)
TINY = {  # each a real transformers model type, shrunk; every one mixes state layers with attention
    "qwen3_5_text": dict(num_hidden_layers=4, layer_types=LINEAR, **DELTANET),
    "qwen3_next": dict(num_hidden_layers=4, layer_types=LINEAR, **DELTANET, num_experts=4, num_experts_per_tok=2,
                       moe_intermediate_size=32, shared_expert_intermediate_size=32),
    "olmo_hybrid": dict(num_hidden_layers=4, layer_types=LINEAR, **{**DELTANET, "linear_num_value_heads": 2,
                                                                     "linear_value_head_dim": 16}),
    "jamba": dict(num_hidden_layers=4, attn_layer_period=4, attn_layer_offset=2, expert_layer_period=2,
                  expert_layer_offset=1, num_experts=4, num_experts_per_tok=2, mamba_d_state=8, mamba_d_conv=3,
                  mamba_expand=2, mamba_dt_rank=8),
    "bamba": dict(num_hidden_layers=4, attn_layer_indices=[2], mamba_expand=2, **MAMBA2),
    "falcon_h1": dict(num_hidden_layers=3, mamba_d_ssm=48, **{**MAMBA2, "mamba_d_head": 12}),
    "granitemoehybrid": dict(num_hidden_layers=4, layer_types=["mamba", "mamba", "attention", "mamba"],
                             num_local_experts=4, num_experts_per_tok=2, shared_intermediate_size=32, **MAMBA2),
    "nemotron_h": dict(num_hidden_layers=4, layers_block_type=["mamba", "attention", "mamba", "moe"],
                       mamba_num_heads=4, mamba_head_dim=32, n_groups=2, ssm_state_size=8, conv_kernel=3,
                       chunk_size=8, n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                       moe_shared_expert_intermediate_size=32, n_group=1, topk_group=1),
    "zamba": dict(num_hidden_layers=6, num_key_value_heads=4, n_mamba_heads=2, mamba_d_state=8, mamba_d_conv=3,
                  mamba_expand=2, mamba_dt_rank=8, attn_layer_period=2, attn_layer_offset=1),
    "zamba2": dict(num_hidden_layers=4, layers_block_type=["mamba", "hybrid", "mamba", "mamba"], n_mamba_heads=4,
                   mamba_headdim=32, mamba_ngroups=2, mamba_d_state=8, mamba_d_conv=3, mamba_expand=2, chunk_size=8,
                   hybrid_layer_ids=[1], attention_head_dim=16),
    "qwen4_exp_text": dict(  # with PLE layers (their own conv and token-id states) and an indexed attention layer
        num_hidden_layers=4, layer_types=["linear_attention", "linear_attention", "linear_attention", "indexed_attention"],
        **DELTANET, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, shared_expert_intermediate_size=32,
        eos_token_id=1, hc_count=2, hc_lowrank=8, ple_layer_ids=[1, 3], ple_embed_dim=32, ple_conv_kernel_size=3,
        ngram_size=3, heads_per_ngram=2, ngram_vocab_size_base=1000, make_ngram_vocab_size_divisible_by=8,
        split_ngram_parts=4, indexer_n_heads=2, indexer_kv_heads=1, indexer_head_dim=16, indexer_budget=4,
        indexer_compress_ratio=2),
    "lfm2": dict(num_hidden_layers=4, layer_types=["conv", "conv", "full_attention", "conv"], conv_L_cache=3),
    "lfm3": dict(num_hidden_layers=4, layer_types=["conv", "sliding_attention", "full_attention", "conv"],
                 conv_L_cache=3, sliding_window=8),
    "bailing_hybrid": dict(num_hidden_layers=4, layer_group_size=2, first_k_dense_replace=1, **KDA),
    "kimi_linear": dict(num_hidden_layers=4, layer_types=["linear_attention", "full_attention", "linear_attention",
                                                          "linear_attention"], **KDA),
    "minimax": dict(num_hidden_layers=4, num_local_experts=4, block_size=2,  # 5 tokens: three blocks
                    layer_types=["linear_attention", "full_attention", "linear_attention", "linear_attention"]),
    "recurrent_gemma": dict(num_hidden_layers=3, lru_width=32, conv1d_width=3, attention_window_size=8,
                            num_key_value_heads=1),  # lru_width != hidden_size: the state is the LRU's width
    "inkling_text": dict(num_hidden_layers=4, **INKLING, n_shared_experts=1),
    "inkling2_text": dict(num_hidden_layers=4, **INKLING, n_layers_per_attn_res_block=2),
    "inkling2_loop_text": dict(  # layers 2 (sliding) and 3 (full) visited 3 times: 10 cache layers, 5 of them sliding
        num_hidden_layers=6, **{**INKLING, "layer_types": ["hybrid", "hybrid", "hybrid_sliding", "hybrid",
                                                           "hybrid_sliding", "hybrid_sliding"]},
        n_layers_per_attn_res_block=2, loop_layer_index_start=2, loop_layer_index_end=4, loop_num_passes=3,
        loop_gate_rank=8),
    "zaya": dict(num_hidden_layers=2, num_experts=4, moe_intermediate_size=32, router_hidden_size=16, cca_time0=2,
                 cca_time1=3),  # a conv state of (2 - 1) + (3 - 1) inputs
}
FAMILY = {"qwen3_5_text": "Gated DeltaNet", "qwen3_next": "Gated DeltaNet", "qwen4_exp_text": "Gated DeltaNet", "olmo_hybrid": "Gated DeltaNet",
          "jamba": "Mamba", "zamba": "Mamba", "lfm2": "short convolution", "lfm3": "short convolution",
          "bailing_hybrid": "KDA", "kimi_linear": "KDA", "minimax": "lightning attention", "recurrent_gemma": "RG-LRU",
          "inkling_text": "short convolution", "inkling2_text": "short convolution",
          "inkling2_loop_text": "short convolution", "zaya": "CCA"}
# transformers' own forward pass fails for these in this dtype (not llmscope), before the release named:
# nothing to compare with there (CI runs these on the oldest transformers allowed too)
FORWARD_FAILS = {("inkling2_text", "bfloat16"): ("Inkling2 mixes float32 and bfloat16 in a matmul", "5.24")}


def _config(model_type):
    from transformers import CONFIG_MAPPING, AutoConfig

    if model_type not in CONFIG_MAPPING:
        pytest.skip(f"this transformers has no {model_type}")
    return AutoConfig.for_model(model_type, **{**BASE, **TINY[model_type]})


def _cache_states(config, dtype):
    """(shape, dtype) of every conv / recurrent state transformers keeps after a forward pass of 5
    tokens in 2 sequences: in its cache's state layers, MiniMaxCache's linear_cache, and (where the
    model keeps them on its blocks, as RecurrentGemma does) on the modules."""
    import torch
    from transformers.cache_utils import LinearAttentionCacheLayerMixin

    cache, model = cache_after_forward(config, dtype)
    tensors = []
    for layer in getattr(cache, "layers", []):
        if isinstance(layer, LinearAttentionCacheLayerMixin):
            tensors += [*layer.conv_states.values(), *layer.recurrent_states.values()]
    tensors += [v for v in getattr(cache, "linear_cache", []) if isinstance(v, torch.Tensor)]
    for module in model.modules():
        tensors += [getattr(module, name) for name in ("conv1d_state", "recurrent_states")
                    if isinstance(getattr(module, name, None), torch.Tensor)]
    return sorted((tuple(v.shape), str(v.dtype).removeprefix("torch.")) for v in tensors if v is not None)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("model_type", sorted(TINY))
def test_state_equals_transformers_cache_after_a_forward_pass(model_type, dtype):
    from llmscope.config.state import recurrent_state_estimate

    reason, fixed_in = FORWARD_FAILS.get((model_type, dtype), (None, None))
    if reason and transformers_release() < transformers_release(fixed_in):
        pytest.skip(f"transformers' own forward fails before {fixed_in}: {reason}")
    config = _config(model_type)
    found = _cache_states(config, dtype)
    estimate = recurrent_state_estimate(config, batch=2, dtype=dtype)
    assert estimate is not None and found
    assert estimate.family == FAMILY.get(model_type, "Mamba2")
    held = sorted(x for t in estimate.tensors for x in [(tuple(t.shape), t.dtype)] * t.layers)
    assert held == found
    assert estimate.bytes == sum(t.bytes * t.layers for t in estimate.tensors)


@pytest.mark.parametrize("model_type", sorted(set(TINY) - {"recurrent_gemma"}))  # its forward returns no cache
def test_kv_cache_of_the_attention_layers_equals_transformers_cache(model_type):
    """Only the attention layers keep keys and values, each with its own heads (Inkling's sliding
    layers have swa_ ones); Inkling2-Loop's looped layers once per pass."""
    from llmscope.config.kv_cache import kv_cache_estimate

    config = _config(model_type)
    cache, _ = cache_after_forward(config)
    assert kv_cache_estimate(config, context=5, batch=2, dtype="float32").bytes == cache_kv_bytes(cache)


def test_memory_counts_a_hybrids_state_and_its_attention_layers_cache(tmp_path):
    """memory: the KV cache of the attention layers only, plus the state layers' state, in the total."""
    from llmscope.memory.report import memory_report

    config = _config("qwen3_5_text")
    config.save_pretrained(tmp_path)
    report = memory_report(str(tmp_path), context=64, memory="1GiB")
    assert [g.layers for g in report.kv_cache.layers] == [[3]]  # the one full-attention layer
    state = report.recurrent_state
    assert state.layers == 3 and state.family == "Gated DeltaNet"
    assert report.needed_bytes == (report.weights.bytes + report.kv_cache.bytes + state.bytes
                                   + report.transient_bytes)


def test_inspect_shows_both_for_a_hybrid(tmp_path, cli):
    import json

    _config("jamba").save_pretrained(tmp_path)
    memory = json.loads(cli("inspect", str(tmp_path), "--json").stdout)["memory"]
    assert memory["recurrent_state"]["family"] == "Mamba" and memory["recurrent_state"]["layers"] == 3
    assert [g["layers"] for g in memory["kv_cache"]["layers"]] == [[2]]  # attn_layer_offset 2, period 4
    shown = cli("inspect", str(tmp_path)).stdout
    assert "recurrent state" in shown and "KV cache at" in shown


def test_attention_only_models_keep_no_state(tiny_models):
    from transformers import AutoConfig

    from llmscope.config.state import recurrent_state_estimate

    for name in ("gpt2", "llama", "mixtral"):
        assert recurrent_state_estimate(AutoConfig.from_pretrained(tiny_models[name])) is None
