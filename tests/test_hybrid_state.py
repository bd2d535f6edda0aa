"""Hybrid models (Mamba / linear-attention / short-convolution layers beside attention): the state
their layers keep, estimated from the config, against transformers' own cache after a forward pass
on a tiny random-weight model of each, in float32 and bfloat16."""

from __future__ import annotations

import pytest

BASE = dict(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
            head_dim=16, pad_token_id=0)
LINEAR = ["linear_attention", "linear_attention", "linear_attention", "full_attention"]
DELTANET = dict(linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=8, linear_value_head_dim=12,
                linear_conv_kernel_dim=3)
MAMBA2 = dict(mamba_n_heads=4, mamba_d_head=32, mamba_n_groups=2, mamba_d_state=8, mamba_d_conv=3, mamba_chunk_size=8)
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
    "lfm2": dict(num_hidden_layers=4, layer_types=["conv", "conv", "full_attention", "conv"], conv_L_cache=3),
}
FAMILY = {"qwen3_5_text": "Gated DeltaNet", "qwen3_next": "Gated DeltaNet", "olmo_hybrid": "Gated DeltaNet",
          "jamba": "Mamba", "zamba": "Mamba", "lfm2": "short convolution"}


def _config(model_type):
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **{**BASE, **TINY[model_type]})


def _cache_states(config, dtype):
    """(shape, dtype) of every conv / recurrent state transformers' cache holds after a forward pass
    of 5 tokens in 2 sequences."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.cache_utils import LinearAttentionCacheLayerMixin

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    with torch.inference_mode():
        out = model(input_ids=torch.randint(1, 100, (2, 5)), use_cache=True)
    found = []
    for layer in out.past_key_values.layers:
        if isinstance(layer, LinearAttentionCacheLayerMixin):
            for states in (layer.conv_states, layer.recurrent_states):
                found += [(tuple(v.shape), str(v.dtype).removeprefix("torch.")) for v in states.values() if v is not None]
    return sorted(found)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("model_type", sorted(TINY))
def test_state_equals_transformers_cache_after_a_forward_pass(model_type, dtype):
    from llmscope.recurrent import recurrent_state_estimate

    config = _config(model_type)
    found = _cache_states(config, dtype)
    estimate = recurrent_state_estimate(config, batch=2, dtype=dtype)
    assert estimate is not None and found
    assert estimate.family == FAMILY.get(model_type, "Mamba2")
    assert sorted([(tuple(t.shape), t.dtype) for t in estimate.tensors] * estimate.layers) == found
    assert estimate.bytes == sum(t.bytes for t in estimate.tensors) * estimate.layers


def test_memory_counts_a_hybrids_state_and_its_attention_layers_cache(tmp_path):
    """memory: the KV cache of the attention layers only, plus the state layers' state, in the total."""
    from llmscope.memory import memory_report

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

    from llmscope.recurrent import recurrent_state_estimate

    for name in ("gpt2", "llama", "mixtral"):
        assert recurrent_state_estimate(AutoConfig.from_pretrained(tiny_models[name])) is None
