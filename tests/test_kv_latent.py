"""Multi-head latent attention (DeepSeek V2/V3 and the models built on it) and DeepSeek sparse
attention: transformers caches MLA's compressed latent and shared RoPE key, not per-head keys and
values, and a sparse-attention layer keeps its indexer's keys beside them. The KV estimate, from the
config alone, against the cache after a forward pass on a tiny random-weight model of each."""

from __future__ import annotations

import pytest
from tiny_architectures import cache_after_forward, cache_kv_bytes

MLA = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
           kv_lora_rank=16, q_lora_rank=24, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16, head_dim=8,
           vocab_size=128, pad_token_id=0, bos_token_id=1, eos_token_id=2, max_position_embeddings=256)
MOE = dict(n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, first_k_dense_replace=1, n_group=1,
           topk_group=1, n_shared_experts=1)
DSA = dict(index_head_dim=16, index_n_heads=2, index_topk=4)
TINY = {
    "deepseek_v3": dict(**MLA, **MOE),
    "minicpm3": {**MLA, "head_dim": 16},
    "deepseek_v32": dict(**MLA, **MOE, **DSA),
    # the second layer reuses the first one's indexer: it keeps no indexer keys
    "glm_moe_dsa": dict(**MLA, **MOE, **DSA, indexer_types=["full", "shared"]),
}


def _config(model_type):
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **TINY[model_type])


@pytest.mark.parametrize("model_type", sorted(TINY))
def test_kv_estimate_equals_transformers_cache(model_type):
    from llmscope.cache import kv_cache_estimate

    config = _config(model_type)
    cache, _ = cache_after_forward(config)
    estimate = kv_cache_estimate(config, context=5, batch=2, dtype="float32")
    assert estimate.bytes == cache_kv_bytes(cache)
    group = estimate.layers[0]
    assert (group.kv_lora_rank, group.qk_rope_head_dim) == (16, 8)
    indexed = [layer.indexer_keys is not None for layer in cache.layers if hasattr(layer, "indexer_keys")]
    assert sum(len(g.layers) for g in estimate.layers if g.indexer_key_dim) == sum(indexed)


def test_memory_shows_the_latent(tmp_path, cli, monkeypatch):
    """memory's table names the latent instead of KV heads; --json carries the config's names."""
    import json

    monkeypatch.setenv("COLUMNS", "160")  # the note on one line

    _config("deepseek_v32").save_pretrained(tmp_path)
    shown = cli("memory", str(tmp_path), "--context", "64", "--memory", "1GiB").stdout
    assert "latent 16 + RoPE key 8" in shown and "indexer keys 16" in shown
    layers = json.loads(cli("memory", str(tmp_path), "--context", "64", "--memory", "1GiB", "--json").stdout)[
        "kv_cache"]["layers"]
    assert [(g["kv_lora_rank"], g["qk_rope_head_dim"], g["indexer_key_dim"]) for g in layers] == [(16, 8, 16)]
