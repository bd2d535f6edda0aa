"""Caches that are not num_key_value_heads x head_dim keys and values. Multi-head latent attention
(DeepSeek V2/V3 and the models built on it): transformers caches the compressed latent and shared
RoPE key; a DeepSeek sparse-attention layer keeps its indexer's keys beside them; Falcon-7B's
multi-query attention caches one head, and Falcon-40B's new decoder architecture every query head.
A looped model (Dory) keeps a cache per pass through its looped layers: more cache layers than layers.
The KV estimate, from the config alone, against the cache after a forward pass on a tiny
random-weight model of each."""

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


FALCON = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=128, alibi=False)
FALCONS = {  # name: (config, KV heads of the attention, heads transformers caches)
    "falcon-7b style": (dict(**FALCON, multi_query=True, new_decoder_architecture=False), 1, 1),
    "falcon-40b style": (dict(**FALCON, num_kv_heads=2, new_decoder_architecture=True), 2, 4),
    "falcon-rw style": (dict(**FALCON, multi_query=False, new_decoder_architecture=False), 4, 4),
}


V4 = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=16, q_lora_rank=24,
          n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, vocab_size=128, index_n_heads=2,
          index_head_dim=8, index_topk=4, qk_rope_head_dim=8, o_groups=2, o_lora_rank=16, sliding_window=4,
          num_nextn_predict_layers=0, mlp_layer_types=["moe", "moe"],
          compress_rates={"compressed_sparse_attention": 2, "heavily_compressed_attention": 8},
          layer_types=["heavily_compressed_attention", "compressed_sparse_attention"])


@pytest.mark.parametrize("tokens", [3, 21, 40])  # before the first HCA entry, with buffers left over, none left
def test_deepseek_v4s_compressed_cache(tokens):
    """DeepSeek V4: one tensor for keys and values over the window, plus an entry per compress_rate
    tokens (and a CSA layer's indexer entries) and the compressor's buffers."""
    from transformers import AutoConfig

    from llmscope.config.kv_cache import kv_cache_estimate

    config = AutoConfig.for_model("deepseek_v4", **V4)
    cache, _ = cache_after_forward(config, tokens=tokens)
    estimate = kv_cache_estimate(config, context=tokens, batch=2, dtype="float32")
    assert estimate.bytes == cache_kv_bytes(cache)
    assert sorted(g.compress_rate for g in estimate.layers) == [2, 8]
    window = sum(layer.keys.numel() * layer.keys.element_size() for layer in cache.layers)
    assert sum(g.compressed_bytes for g in estimate.layers) == cache_kv_bytes(cache) - window


# layers 1-3 (sliding, sliding, full) looped 3 times, layers 0, 4 and 5 (sliding) once; 12 tokens, more than
# the window: a sliding layer keeps 7, the full one all 12
DORY = dict(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            vocab_size=128, pad_token_id=0, num_hidden_layers=6, n_input_layers=1, n_output_layers=2,
            n_recurrent_loops=3, sliding_window=8)
LOOPED = {  # name: (model type, config, cache layers transformers holds after a forward pass)
    "dory per_loop": ("dory", dict(**DORY, recurrent_kv_cache_mode="per_loop"), 12),  # 6 + 2 copies of 1-3
    "dory last_loop": ("dory", dict(**DORY, recurrent_kv_cache_mode="last_loop"), 6),  # the last loop writes
}


def _needs(model_type):
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        pytest.skip(f"this transformers has no {model_type}")


@pytest.mark.parametrize("name", sorted(LOOPED))
def test_looped_layers_keep_a_cache_per_pass(name):
    """Dory's forward (per_loop) appends a copy of its recurrent layers' cache layers for each loop
    after the first: the estimate counts each, with its layer's window, at the cache's own index."""
    from transformers import AutoConfig

    _needs(LOOPED[name][0])

    from llmscope.config.kv_cache import kv_cache_estimate

    model_type, values, cache_layers = LOOPED[name]
    config = AutoConfig.for_model(model_type, **values)
    cache, _ = cache_after_forward(config, tokens=12)
    assert len(cache.layers) == cache_layers
    estimate = kv_cache_estimate(config, context=12, batch=2, dtype="float32")
    assert estimate.bytes == cache_kv_bytes(cache)
    windows = [getattr(layer, "sliding_window", None) for layer in cache.layers]
    assert {g.sliding_window: g.layers for g in estimate.layers} == {
        w: [i for i, x in enumerate(windows) if x == w] for w in windows}


def test_a_looped_layers_cache_copies_are_placed_with_it(tmp_path):
    """The device plan holds every cache layer, the copies of a looped layer where that layer runs."""
    from transformers import AutoConfig

    from llmscope.memory.report import memory_report

    _needs("dory")
    model_type, values, _ = LOOPED["dory per_loop"]
    AutoConfig.for_model(model_type, **values, max_position_embeddings=4096).save_pretrained(tmp_path)
    report = memory_report(str(tmp_path), gpus="2x1GiB", cpu="1GiB", context=2048)
    assert report.placement and sum(p.kv_cache_bytes for p in report.placement) == report.kv_cache.bytes


def _config(model_type):
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **TINY[model_type])


def test_mllamas_cross_attention_layers_keep_no_prompt_tokens():
    """Mllama given text only: its cross-attention layers (here the second) cache nothing."""
    from transformers import AutoConfig

    from llmscope.config.kv_cache import kv_cache_estimate

    config = AutoConfig.for_model("mllama", text_config=dict(
        hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=128, pad_token_id=0, cross_attention_layers=[1]), vision_config=dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_global_layers=1, attention_heads=2,
        image_size=28, patch_size=14, intermediate_layers_indices=[0]))
    cache, _ = cache_after_forward(config)
    estimate = kv_cache_estimate(config, context=5, batch=2, dtype="float32")
    assert estimate.bytes == cache_kv_bytes(cache) and [g.layers for g in estimate.layers] == [[0, 2]]


def test_cpmants_prompt_tokens_are_cached():
    """CPM-Ant: heads of dim_head (not hidden_size / heads), and prompt_length learned tokens cached
    ahead of every sequence."""
    from transformers import AutoConfig

    from llmscope.config.kv_cache import kv_cache_estimate

    config = AutoConfig.for_model("cpmant", hidden_size=64, num_attention_heads=4, dim_head=8, dim_ff=96,
                                  num_hidden_layers=2, prompt_length=3)
    cache, _ = cache_after_forward(config)
    estimate = kv_cache_estimate(config, context=5, batch=2, dtype="float32")
    assert estimate.bytes == cache_kv_bytes(cache) and estimate.layers[0].tokens_kept == 8


@pytest.mark.parametrize("name", sorted(FALCONS))
def test_falcons_kv_heads(name, tmp_path):
    from transformers import FalconConfig

    from llmscope.config.architecture import inspect_model
    from llmscope.config.kv_cache import kv_cache_estimate

    overrides, kv_heads, cached_heads = FALCONS[name]
    config = FalconConfig(**overrides)
    cache, _ = cache_after_forward(config)
    assert tuple(cache.layers[0].keys.shape) == (2, cached_heads, 5, 16)
    assert kv_cache_estimate(config, context=5, batch=2, dtype="float32").bytes == cache_kv_bytes(cache)
    config.save_pretrained(tmp_path)
    report = inspect_model(str(tmp_path))
    assert report.num_key_value_heads == kv_heads
    assert report.attention == {1: "MQA", 2: "GQA", 4: "MHA"}[kv_heads]


@pytest.mark.parametrize("model_type", sorted(TINY))
def test_kv_estimate_equals_transformers_cache(model_type):
    from llmscope.config.kv_cache import kv_cache_estimate

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
