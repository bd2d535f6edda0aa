"""Issue 20: multimodal wrappers, state-space / recurrent models and per-layer attributes in
inspect and memory, each checked against transformers on a tiny random-weight model."""

from __future__ import annotations

import json

import pytest
from tiny_architectures import gemma4_text_config, mamba_config

from llmscope.config.architecture import inspect_model
from llmscope.memory.report import memory_report
from llmscope.config.state import recurrent_state_estimate

# --------------------------------------------------------------------------------------------
# Multimodal: the language model's shape, the towers and projector as their own rows


def test_multimodal_wrapper_is_described_by_its_language_model(tiny_families):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_families["gemma3"])
    text = model.config.get_text_config()
    report = inspect_model(str(tiny_families["gemma3"]))
    assert report.model_type == "gemma3" and report.architecture == "Gemma3ForConditionalGeneration"
    assert (report.hidden_size, report.num_hidden_layers) == (text.hidden_size, text.num_hidden_layers)
    assert (report.num_attention_heads, report.num_key_value_heads, report.head_dim) == (2, 1, 16)
    assert report.layer_types == ["sliding_attention", "full_attention"]

    def numel(prefix: str) -> int:
        return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))

    p = report.parameters
    assert p.total == model.num_parameters()
    assert p.vision == numel("model.vision_tower.") > 0
    assert p.projector == numel("model.multi_modal_projector.") > 0
    assert p.audio == 0
    # the language model's rows add up to the language model
    language = p.embeddings + p.attention + p.mlp + p.norms + p.lm_head + p.other
    assert language == numel("model.language_model.") + numel("lm_head.") * (not report.tie_word_embeddings)


def test_multimodal_memory_counts_every_resident_part(tiny_families):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_families["gemma3"])
    report = memory_report(str(tiny_families["gemma3"]), context=16, dtype="float32", memory="1GiB")
    assert report.parameters.total == model.num_parameters()
    assert report.weights.bytes == 4 * model.num_parameters()
    assert [g.layer_type for g in report.kv_cache.layers] == ["sliding_attention", "full_attention"]


def test_cli_inspect_json_has_the_tower_rows(cli, tiny_families):
    result = cli("inspect", str(tiny_families["gemma3"]), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["parameters"]["vision"] > 0 and data["parameters"]["projector"] > 0
    assert data["hidden_size"] == 32


# --------------------------------------------------------------------------------------------
# State-space and recurrent models: no attention rows, a fixed-size state instead of a KV cache


def _cache_tensors(model_type: str, out) -> list:
    """The tensors transformers' own cache holds after a forward pass, whatever its form."""
    if model_type == "rwkv":
        return list(out.state)
    cache = out.cache_params
    if model_type == "xlstm":
        return [t for layer in cache.rnn_state.values() for t in layer]
    return [t for layer in cache.layers for states in (layer.conv_states, layer.recurrent_states)
            for t in states.values()]


RECURRENT_CONFIGS = {
    "mamba": lambda: mamba_config(64),
    "falcon_mamba": lambda: __import__("transformers").FalconMambaConfig(
        hidden_size=32, num_hidden_layers=2, state_size=8, vocab_size=64),
    "mamba2": lambda: __import__("transformers").Mamba2Config(
        hidden_size=32, num_hidden_layers=2, state_size=8, num_heads=8, head_dim=8, n_groups=2, expand=2,
        vocab_size=64),
    "rwkv": lambda: __import__("transformers").RwkvConfig(
        hidden_size=32, num_hidden_layers=3, attention_hidden_size=32, intermediate_size=64, vocab_size=64),
    "xlstm": lambda: __import__("transformers").xLSTMConfig(
        hidden_size=128, num_hidden_layers=2, num_heads=2, vocab_size=64),
}


@pytest.mark.parametrize("model_type", sorted(RECURRENT_CONFIGS))
@pytest.mark.parametrize("batch", [1, 3])
def test_recurrent_state_is_what_transformers_caches(model_type, batch):
    import torch
    from transformers import AutoModelForCausalLM

    config = RECURRENT_CONFIGS[model_type]()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    with torch.no_grad():
        out = model(input_ids=torch.randint(0, 64, (batch, 7)), use_cache=True)  # (batch, tokens)
    held = _cache_tensors(model_type, out)
    estimate = recurrent_state_estimate(config, batch=batch, dtype="float32")
    assert estimate.bytes == sum(t.numel() * t.element_size() for t in held)
    if model_type != "rwkv":  # RWKV keeps all layers in one tensor per kind: (batch, hidden, layers)
        assert sorted(tuple(t.shape) for t in held) == sorted(
            tuple(x.shape) for x in estimate.tensors for _ in range(estimate.layers)
        )
    else:
        assert [tuple(t.shape) for t in held] == [(*x.shape, estimate.layers) for x in estimate.tensors]


def test_mamba_inspect_shows_the_state_not_attention(tiny_families):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_families["mamba"])
    report = inspect_model(str(tiny_families["mamba"]))
    assert report.attention == "none" and report.num_attention_heads is None and report.head_dim is None
    s = report.state_space
    assert (s.family, s.state_size, s.conv_kernel, s.expand) == ("Mamba", 8, 4, 2)
    assert s.intermediate_size == config.intermediate_size == 64
    assert report.memory.kv_cache is None and report.memory.recurrent_state is not None
    assert report.parameters.attention == 0 and report.parameters.recurrent > 0


def test_mamba_memory_state_does_not_grow_with_the_context(tiny_families):
    short = memory_report(str(tiny_families["mamba"]), context=8, dtype="float32", memory="1GiB")
    long = memory_report(str(tiny_families["mamba"]), context=1024, dtype="float32", memory="1GiB")
    assert short.kv_cache is None
    assert short.recurrent_state.bytes == long.recurrent_state.bytes > 0
    assert short.needed_bytes == (
        short.weights.bytes + short.recurrent_state.bytes + sum(short.transient.values())
    )


def test_cli_mamba_renders_and_json(cli, tiny_families):
    shown = cli("inspect", str(tiny_families["mamba"]))
    assert shown.exit_code == 0, shown.output
    assert "state size" in shown.stdout and "recurrent state" in shown.stdout
    memory = cli("memory", str(tiny_families["mamba"]), "--memory", "1GiB", "--json")
    assert memory.exit_code == 0, memory.output
    data = json.loads(memory.stdout)
    assert data["kv_cache"] is None and data["recurrent_state"]["family"] == "Mamba"
    assert "recurrent state" in cli("memory", str(tiny_families["mamba"]), "--memory", "1GiB").stdout


# --------------------------------------------------------------------------------------------
# Per-layer attributes: a per-kind table, the KV cache per kind of layer


def test_per_layer_head_dim_table_and_kv_cache(tiny_families):
    import torch
    from transformers import AutoModelForCausalLM

    folder = tiny_families["gemma4_text"]
    report = inspect_model(str(folder))
    kinds = {k.layer_type: k for k in report.layer_kinds}
    assert kinds["sliding_attention"].layers == [0, 1, 2] and kinds["sliding_attention"].head_dim == 16
    assert kinds["full_attention"].layers == [3] and kinds["full_attention"].head_dim == 32
    assert report.head_dim == 16  # the most common

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert report.parameters.total == model.num_parameters()
    tokens = 20  # beyond the sliding window of 8
    with torch.no_grad():
        out = model(input_ids=torch.randint(0, 64, (1, tokens)), use_cache=True)
    held = sum(
        layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
        for layer in out.past_key_values.layers
    )
    memory = memory_report(str(folder), context=tokens, dtype="float32", memory="1GiB")
    assert memory.kv_cache.bytes == held
    assert {(g.layer_type, g.head_dim) for g in memory.kv_cache.layers} == {
        ("sliding_attention", 16), ("full_attention", 32)
    }


def test_per_layer_lists_are_read_per_layer():
    """Gemma 3n's intermediate_size is a list, one per layer; Gemma 4's head_dim raises in transformers."""
    from transformers import CONFIG_MAPPING

    from llmscope.config.values import config_value, layer_kinds

    gemma3n = CONFIG_MAPPING["gemma3n_text"](intermediate_size=[64, 64, 128], num_hidden_layers=3,
                                              layer_types=["sliding_attention"] * 2 + ["full_attention"])
    assert config_value(gemma3n, "intermediate_size") == 64
    assert [(k.layers, k.intermediate_size) for k in layer_kinds(gemma3n)] == [([0, 1], 64), ([2], 128)]
    gemma4 = gemma4_text_config(64)
    with pytest.raises(RuntimeError):
        gemma4.head_dim  # noqa: B018 - transformers' AmbiguousGlobalPerLayerAttributeError
    assert config_value(gemma4, "head_dim") == 16


# --------------------------------------------------------------------------------------------
# The commands that run a model, on a tiny model of each family, against transformers directly


@pytest.mark.parametrize("name", ["mamba", "gemma3", "gemma4_text"])
def test_runtime_commands_match_transformers(cli, tiny_families, name):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = str(tiny_families[name])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    text = "The cat sat"
    ids = tokenizer(text)["input_ids"]
    inputs = torch.tensor([ids])  # (1, tokens)
    with torch.no_grad():
        probs = model(inputs).logits[0, -1].float().softmax(-1)  # (vocab,)
        expected = model.generate(inputs, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.eos_token_id,
                                  eos_token_id=[])[0, len(ids):].tolist()
    run = {"-m": folder, "--json": None}
    args = [a for k, v in run.items() for a in (k, v) if a is not None]

    tokenized = cli("tokenize", text, *args)
    assert tokenized.exit_code == 0, tokenized.output
    assert tokenized.json()["ids"] == ids

    predicted = cli("next-token", text, *args)
    assert predicted.exit_code == 0, predicted.output
    top = predicted.json()["candidates"][0]
    assert top["id"] == int(probs.argmax()) and top["prob"] == pytest.approx(float(probs.max()), rel=1e-4)

    stepped = cli("next-token", text, *args, "--steps", "4", "--strategy", "greedy")
    assert stepped.exit_code == 0, stepped.output
    assert [s["chosen"]["id"] for s in stepped.json()["steps"]][: len(expected)] == expected[:4]

    generated = cli("generate", text, *args, "-n", "4")
    assert generated.exit_code == 0, generated.output
    assert generated.json()["token_ids"] and generated.json()["token_ids"] == expected[: len(generated.json()["token_ids"])]

    compared = cli("compare", text, *args, "-n", "4", "--strategies", "greedy,beam")
    assert compared.exit_code == 0, compared.output
    greedy = compared.json()["results"][0]
    assert greedy["strategy"] == "greedy" and greedy["token_ids"] == generated.json()["token_ids"]

    layered = cli("layers", text, *args)
    assert layered.exit_code == 0, layered.output
    report = layered.json()
    assert len(report["layers"]) == model.config.get_text_config().num_hidden_layers + 1
    assert report["layers"][-1]["lens"]["id"] == int(probs.argmax())  # the lens at the last layer: the output


def test_attention_on_a_model_without_attention_says_so(cli, tiny_families, one_error_line):
    result = cli("attention", "The cat", "-m", str(tiny_families["mamba"]))
    line = one_error_line(result, 1)
    assert "has no attention layers" in line and "gpt2" in line


def test_experts_on_a_dense_model_says_so(cli, tiny_families, one_error_line):
    result = cli("experts", "The cat", "-m", str(tiny_families["gemma3"]))
    line = one_error_line(result, 1)
    assert "dense model" in line and "Mixtral" in line


# --------------------------------------------------------------------------------------------
# Hybrids: only the attention layers hold keys and values


HYBRID_CONFIGS = {
    "qwen3_5_text": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=2,
                         num_key_value_heads=1, head_dim=16, vocab_size=64, linear_num_key_heads=2,
                         linear_num_value_heads=2, linear_key_head_dim=8, linear_value_head_dim=8),
    "jamba": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=2,
                  num_key_value_heads=1, vocab_size=64, attn_layer_period=2, attn_layer_offset=1,
                  expert_layer_period=2, expert_layer_offset=1, num_experts=2, mamba_d_state=4, mamba_expand=2,
                  mamba_dt_rank=4, use_mamba_kernels=False),
}


@pytest.mark.parametrize("model_type", sorted(HYBRID_CONFIGS))
def test_hybrid_kv_cache_counts_only_attention_layers(model_type):
    import torch
    from transformers import CONFIG_MAPPING, AutoModelForCausalLM

    from llmscope.config.kv_cache import kv_cache_estimate

    config = CONFIG_MAPPING[model_type](**HYBRID_CONFIGS[model_type])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    with torch.no_grad():
        cache = model(input_ids=torch.randint(0, 64, (1, 9)), use_cache=True).past_key_values
    attention = [i for i, layer in enumerate(cache.layers) if getattr(layer, "keys", None) is not None]
    held = sum(cache.layers[i].keys.numel() * 4 + cache.layers[i].values.numel() * 4 for i in attention)
    estimate = kv_cache_estimate(config, context=9, dtype="float32")
    assert 0 < len(attention) < config.num_hidden_layers
    assert estimate.bytes == held
    assert [i for g in estimate.layers for i in g.layers] == attention
