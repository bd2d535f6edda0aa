"""Every causal-LM architecture transformers registers: inspect and memory answer, from the config alone.

Each model type's config class is built with its defaults, the model is built on the meta device by
llmscope's own builder (which is transformers' ``from_config``), and llmscope's parameter total must
equal transformers' own count (``num_parameters()``, shared tensors once). Types that transformers
itself cannot build from their defaults are listed with the reason, and the test checks that they
still fail, so the list cannot go stale.
"""

from __future__ import annotations

import warnings

import pytest

transformers = pytest.importorskip("transformers")

from tiny_architectures import transformers_release  # noqa: E402
from transformers import CONFIG_MAPPING  # noqa: E402
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES  # noqa: E402

# model type -> why transformers (5.24) cannot build it from its config class's defaults
CANNOT_BUILD = {
    "cohere_compass_text": "KeyError 'full_attention': its default layer_types are not a known kind",
    "dbrx": "DbrxAttentionConfig has no rope_theta by default",
    "dots1": "a None default reaches torch.empty()",
    "gemma3n": "its vision tower (TimmWrapperModel) needs Pillow and timm, not dependencies of llmscope",
    "gemma4_assistant": "its own validator refuses its defaults (hidden_size_per_layer_input must be 0)",
    "hunyuan_v1_dense": "default rope parameters are None (None ** float)",
    "hunyuan_v1_moe": "default rope parameters are None (None ** float)",
    "lfm2_moe": "a None default is subscripted",
    "ministral": "default rope parameters are None (None ** float)",
    "musicgen": "MusicgenConfig has no dropout without its sub-configs",
    "musicgen_melody": "MusicgenMelodyConfig has no dropout without its sub-configs",
    "nemotron": "head_dim defaults to None (int // None)",
    "qwen4_exp": "head sizes default to None (None // None)",
    "qwen4_exp_text": "head sizes default to None (None // None)",
    "reformer": "ReformerModelWithLMHead needs is_decoder=True, which its default config does not set",
}
# model type -> the first release that builds it from its defaults (CI runs the sweep on the oldest allowed too)
BUILDS_SINCE = {"gemma4_unified_assistant": "5.24"}
RECURRENT = {"mamba", "mamba2", "falcon_mamba", "rwkv", "xlstm"}
MODEL_TYPES = sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def _build(config):
    from llmscope import loading

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return loading.build_meta_model(config)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_inspect_and_memory_count_what_transformers_counts(model_type):
    from llmscope.config.architecture import architecture_report
    from llmscope.memory.report import report_from_meta
    from llmscope.memory.placement import DeviceBudget

    if model_type in BUILDS_SINCE and transformers_release() < transformers_release(BUILDS_SINCE[model_type]):
        pytest.skip(f"transformers builds {model_type} from its defaults from {BUILDS_SINCE[model_type]} on")
    if model_type in CANNOT_BUILD:
        try:
            _build(CONFIG_MAPPING[model_type]())
        except Exception:
            pytest.skip(f"transformers cannot build {model_type} from its defaults: {CANNOT_BUILD[model_type]}")
        pytest.fail(f"transformers now builds {model_type}: remove it from CANNOT_BUILD")
    config = CONFIG_MAPPING[model_type]()
    meta = _build(config)
    expected = meta.num_parameters()  # transformers' own count, shared tensors once

    report = architecture_report(config, meta, source=model_type)
    assert report.parameters.total == expected
    memory = report_from_meta(
        config, meta, source=model_type, context=256, batch=1, dtype="bfloat16", kv_dtype="bfloat16",
        budget=[DeviceBudget("memory", 2**60, "given")], allow_longer=False,
    )
    assert memory.parameters.total == expected
    assert memory.weights.bytes == 2 * expected
    if model_type in RECURRENT:
        assert report.attention == "none" and report.state_space is not None
        assert memory.kv_cache is None and memory.recurrent_state is not None
    else:  # a hybrid's Mamba / linear-attention layers: every one estimated, none silently left out
        from llmscope.config.state import hybrid_state_layers

        layers = len(hybrid_state_layers(config))
        assert (memory.recurrent_state.layers if memory.recurrent_state else 0) == layers
        assert (report.memory.recurrent_state.layers if report.memory.recurrent_state else 0) == layers
        assert memory.kv_cache is not None


def test_the_sweep_covers_the_types_the_issue_counts():
    """189 causal-LM types in transformers 5.23 (16 not buildable, 173 swept); 196 in 5.24 (15, 181)."""
    assert set(CANNOT_BUILD) <= set(MODEL_TYPES)
    assert len(MODEL_TYPES) - len(CANNOT_BUILD) >= 173
