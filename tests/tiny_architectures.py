"""Tiny random-weight models of the families issue 20 adds: a Mamba, a Gemma 3 multimodal wrapper
(vision tower + projector + text model) and a Gemma 4 text model whose layers differ (per-layer
configs). conftest.py registers the ``tiny_families`` fixture for every test module.

Each folder holds the model and the tiny llama fixture's tokenizer (from tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest


def transformers_release(text: str | None = None) -> tuple[int, ...]:
    """(major, minor) of TEXT ("5.24"), or of the installed transformers: for tables that name the release
    that changed a model type (CI runs them on the oldest transformers allowed too)."""
    import transformers

    return tuple(int(part) for part in (text or transformers.__version__).split(".")[:2])


def mamba_config(vocab_size: int, **overrides):
    from transformers import MambaConfig

    return MambaConfig(**{
        "hidden_size": 32, "num_hidden_layers": 2, "state_size": 8, "expand": 2, "conv_kernel": 4,
        "vocab_size": vocab_size, **overrides,
    })


def gemma3_config(vocab_size: int):
    from transformers import Gemma3Config

    text = {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "head_dim": 16, "vocab_size": vocab_size, "max_position_embeddings": 256,
        "sliding_window": 8, "layer_types": ["sliding_attention", "full_attention"],
    }
    vision = {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
        "image_size": 32, "patch_size": 8,
    }
    return Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)


def gemma4_text_config(vocab_size: int):
    from transformers import Gemma4TextConfig

    return Gemma4TextConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=2, num_key_value_heads=1,
        head_dim=16, global_head_dim=32, vocab_size=vocab_size, vocab_size_per_layer_input=vocab_size,
        hidden_size_per_layer_input=8, max_position_embeddings=256, sliding_window=8,
        layer_types=["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
    )


@pytest.fixture(scope="session")
def tiny_families(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{'mamba', 'gemma3', 'gemma4_text'} -> folder of a tiny random-weight model with a tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Gemma3ForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    vocab = len(tokenizer)
    root = tmp_path_factory.mktemp("tiny-families")
    torch.manual_seed(0)
    models = {
        "mamba": AutoModelForCausalLM.from_config(mamba_config(vocab)),
        "gemma3": Gemma3ForConditionalGeneration(gemma3_config(vocab)),
        "gemma4_text": AutoModelForCausalLM.from_config(gemma4_text_config(vocab)),
    }
    folders = {}
    for name, model in models.items():
        model.config.bos_token_id, model.config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        folders[name] = root / name
    return folders


def cache_after_forward(config, dtype: str = "float32", tokens: int = 5):
    """transformers' cache (and the model) after a forward pass of ``tokens`` tokens in 2 sequences
    of a random-weight model built from ``config``."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    with torch.inference_mode():
        out = model(input_ids=torch.randint(3, 100, (2, tokens)), use_cache=True)
    return (out.get("cache") or out.get("past_key_values")), model  # 5.24 renamed the field


def cache_kv_bytes(cache) -> int:
    """Bytes of what a cache's attention layers keep: keys and values (once where they are one
    tensor, as in DeepSeek V4), a sparse-attention layer's indexer keys, and DeepSeek V4's compressed
    entries and compressor buffers."""
    import torch

    seen: dict[int, torch.Tensor] = {}
    for layer in cache.layers:
        found = [getattr(layer, name, None) for name in ("keys", "values", "indexer_keys")]
        for name in ("compressed_kv", "buffer_kv", "buffer_gate", "overlap_kv", "overlap_gate"):
            found += list((getattr(layer, name, None) or {}).values())
        seen.update((id(t), t) for t in found if isinstance(t, torch.Tensor))
    return sum(t.numel() * t.element_size() for t in seen.values())
