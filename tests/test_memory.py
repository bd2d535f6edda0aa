"""llmscope.memory: KV cache bytes against transformers' own cache, exact weight bytes, placement, budgets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmscope.errors import UsageError
from llmscope.memory.report import memory_report, parse_gpus, parse_size

CONFIGS = Path(__file__).parent / "data" / "configs"
GiB = 2**30


# --------------------------------------------------------------------------------------------
# Sizes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24GiB", 24 * 2**30),
        ("80GB", 80 * 10**9),
        ("512MiB", 512 * 2**20),
        ("100MB", 100 * 10**6),
        ("1.5GiB", 3 * 2**29),
        (" 2 gib ", 2 * 2**30),
        ("4G", 4 * 2**30),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "24", "24XB", "0GiB", "-1GiB", "GiB", "1..5GB"])
def test_parse_size_refuses(text):
    with pytest.raises(UsageError):
        parse_size(text)


def test_parse_gpus():
    assert parse_gpus("2x80GiB") == [80 * GiB, 80 * GiB]
    assert parse_gpus("24GiB,48GiB") == [24 * GiB, 48 * GiB]
    for bad in ("0x80GiB", "2x", "x80GiB", "2y80GiB"):
        with pytest.raises(UsageError):
            parse_gpus(bad)


# --------------------------------------------------------------------------------------------
# KV cache: predicted bytes == bytes of every layer of transformers' own cache after a forward pass


def _shrunk(tmp_path: Path, name: str, config_dict: dict, **changes) -> Path:
    """A published config shrunk in hidden size, FFN and vocabulary only (cache geometry kept)."""
    folder = tmp_path / name
    folder.mkdir()
    config_dict = {**config_dict, **changes}
    (folder / "config.json").write_text(json.dumps(config_dict))
    return folder


def _published(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


def _truth(folder: Path, tokens: int, batch: int, dtype: str = "float32") -> list[int]:
    """Run the model on random weights over ``tokens`` tokens; bytes held per cache layer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype)).eval()
    ids = torch.randint(0, config.vocab_size, (batch, tokens))  # (batch, tokens)
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
    return [
        layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
        for layer in out.past_key_values.layers
    ]


def _predicted(folder: Path, tokens: int, batch: int) -> tuple[list[int], object]:
    report = memory_report(str(folder), context=tokens, batch=batch, dtype="float32", memory="1TiB")
    kv = report.kv_cache
    per_layer = [0] * report.num_hidden_layers
    for group in kv.layers:
        for index in group.layers:
            per_layer[index] = group.bytes // len(group.layers)
    return per_layer, kv


def _gemma3_config() -> dict:
    """Gemma 3 270M's published config: the embedded model's, as transformers reads it."""
    from llmscope import loading
    from llmscope.loading.resolve import resolve

    return loading.load_config(resolve(None)).to_dict()


def test_kv_cache_mha_gpt2(tmp_path):
    # GPT-2's head_dim is n_embd / n_head, so n_embd stays; only FFN (n_inner) and vocab shrink.
    folder = _shrunk(tmp_path, "gpt2", _published("gpt2"), n_inner=64, vocab_size=300)
    truth = _truth(folder, tokens=40, batch=2)
    predicted, kv = _predicted(folder, tokens=40, batch=2)
    assert len(truth) == 12
    assert predicted == truth
    assert kv.bytes == sum(truth)
    assert [g.layer_type for g in kv.layers] == ["full_attention"]
    assert kv.layers[0].num_key_value_heads == 12


def test_kv_cache_gqa_mixtral(tmp_path):
    # 32 query heads, 8 key/value heads of 128: head_dim pinned so the hidden size can shrink.
    folder = _shrunk(
        tmp_path, "mixtral", _published("mixtral-8x7b-v0.1"),
        hidden_size=64, head_dim=128, intermediate_size=32, vocab_size=300,
    )
    truth = _truth(folder, tokens=24, batch=3)
    predicted, kv = _predicted(folder, tokens=24, batch=3)
    assert len(truth) == 32
    assert predicted == truth
    assert kv.layers[0].num_key_value_heads == 8 and kv.layers[0].head_dim == 128


def test_kv_cache_gqa_tiny_llama(tiny_models):
    truth = _truth(tiny_models["llama"], tokens=30, batch=1)
    predicted, _ = _predicted(tiny_models["llama"], tokens=30, batch=1)
    assert predicted == truth


def test_kv_cache_every_layer_slides_phi3(tmp_path):
    # Phi-3-mini-4k: every layer slides (over 2047 tokens); the window is shrunk to 16 here so a
    # short forward pass goes past it. MHA, 32 heads of 96 (head_dim pinned, hidden shrunk).
    folder = _shrunk(
        tmp_path, "phi3", _published("phi3-mini-4k-instruct"),
        hidden_size=64, head_dim=96, intermediate_size=32, vocab_size=300, sliding_window=16,
        pad_token_id=0, eos_token_id=1, bos_token_id=1,
    )
    truth = _truth(folder, tokens=40, batch=2)
    predicted, kv = _predicted(folder, tokens=40, batch=2)
    assert predicted == truth
    assert [g.layer_type for g in kv.layers] == ["sliding_attention"]
    assert kv.layers[0].tokens_kept == 15 < 40
    # and under the window every token is kept
    assert _predicted(folder, tokens=10, batch=2)[0] == _truth(folder, tokens=10, batch=2)


def test_phi3_published_window_at_4096(config_folder):
    kv = memory_report(str(config_folder("phi3-mini-4k-instruct")), context=4096, memory="1TiB").kv_cache
    assert [g.tokens_kept for g in kv.layers] == [2046]  # DynamicSlidingWindowLayer keeps window - 1


def test_kv_cache_gemma3_local_and_global_layers(tmp_path):
    # Gemma 3 270M: 15 sliding layers over 512 tokens, 3 full layers; 1 KV head of 256.
    config = _gemma3_config()
    folder = _shrunk(tmp_path, "gemma3", config, hidden_size=64, intermediate_size=32, vocab_size=300)
    window = config["sliding_window"]
    truth = _truth(folder, tokens=window + 20, batch=2)
    predicted, kv = _predicted(folder, tokens=window + 20, batch=2)
    assert predicted == truth
    kinds = {g.layer_type: g for g in kv.layers}
    assert set(kinds) == {"sliding_attention", "full_attention"}
    assert kinds["sliding_attention"].tokens_kept == window - 1
    assert kinds["full_attention"].tokens_kept == window + 20


def test_kv_cache_dtype_and_none_for_encoders(config_folder):
    folder = str(config_folder("gpt2"))
    bf16 = memory_report(folder, context=100, memory="1TiB", dtype="float32", kv_dtype="bfloat16")
    f32 = memory_report(folder, context=100, memory="1TiB", dtype="float32")
    assert bf16.kv_cache.dtype == "bfloat16"
    assert 2 * bf16.kv_cache.bytes == f32.kv_cache.bytes
    assert bf16.weights.bytes == f32.weights.bytes
    bert = memory_report(str(config_folder("bert-base-uncased")), memory="1TiB")
    assert bert.kv_cache is None and bert.kind == "masked"


def test_inspect_shows_the_same_kv_cache(config_folder):
    from llmscope.config.architecture import inspect_model

    folder = str(config_folder("phi3-mini-4k-instruct"))
    inspected = inspect_model(folder).memory.kv_cache
    assert memory_report(folder, context=inspected.context, memory="1TiB").kv_cache == inspected


# --------------------------------------------------------------------------------------------
# Weights: exact parameters (tied once) x dtype size


def _meta_parameters(name: str) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    config = AutoConfig.from_pretrained(CONFIGS / f"{name}.json")
    cls = AutoModelForMaskedLM if name.startswith("bert") else AutoModelForCausalLM
    with torch.device("meta"):
        model = cls.from_config(config)
    model.tie_weights()
    return sum(p.numel() for p in model.parameters())  # parameters() yields a tied tensor once


@pytest.mark.parametrize("name", ["gpt2", "phi3-mini-4k-instruct", "bert-base-uncased"])
@pytest.mark.parametrize(("dtype", "size"), [("bfloat16", 2), ("float32", 4)])
def test_weight_bytes_are_exact(config_folder, name, dtype, size):
    report = memory_report(str(config_folder(name)), dtype=dtype, memory="1TiB", context=128)
    exact = _meta_parameters(name)
    assert report.parameters.total == exact
    assert report.weights.bytes == exact * size
    assert report.weights.file_bytes is None and report.weights.bits_per_weight is None


def test_moe_sized_by_all_experts(config_folder):
    raw = _published("mixtral-8x7b-v0.1")
    report = memory_report(str(config_folder("mixtral-8x7b-v0.1")), memory="1TiB", context=128)
    exact = _meta_parameters("mixtral-8x7b-v0.1")
    idle_experts = raw["num_local_experts"] - raw["num_experts_per_tok"]
    one_expert = 3 * raw["hidden_size"] * raw["intermediate_size"]  # w1, w2, w3
    assert report.parameters.total == exact
    assert report.weights.bytes == 2 * exact  # every expert resident
    assert report.parameters.active == exact - idle_experts * one_expert * raw["num_hidden_layers"]
    assert report.parameters.num_experts == 8 and report.parameters.num_experts_per_tok == 2


def test_transient_counts_the_logits(config_folder, tmp_path):
    raw = _published("gpt2")
    report = memory_report(str(config_folder("gpt2")), context=200, batch=3, memory="1TiB", mode="forward",
                           dtype="float32")  # every position's logits: generate keeps the last (test_transient)
    assert report.transient["logits"] == 3 * 200 * raw["vocab_size"] * 4  # (batch, tokens, vocab) float32
    assert report.transient_bytes >= report.transient["logits"]
    # the total: exact weights, the bytes of a real cache after 200 tokens x 3, and the transient peak
    kv = sum(_truth(_shrunk(tmp_path, "gpt2-shrunk", raw, n_inner=64, vocab_size=300), tokens=200, batch=3))
    assert report.needed_bytes == _meta_parameters("gpt2") * 4 + kv + report.transient_bytes


# --------------------------------------------------------------------------------------------
# Verdict and the longest context


def test_fits_headroom_and_max_context(config_folder, tmp_path):
    folder = str(config_folder("phi3-mini-4k-instruct"))
    # What 256 tokens need, computed here: the exact parameters in bfloat16, and the bytes of a real
    # bfloat16 cache after 256 tokens (the published cache geometry, hidden size shrunk).
    shrunk = _shrunk(tmp_path, "phi3", _published("phi3-mini-4k-instruct"), hidden_size=64, head_dim=96,
                     intermediate_size=32, vocab_size=300, pad_token_id=0, eos_token_id=1, bos_token_id=1)
    weights, kv = _meta_parameters("phi3-mini-4k-instruct") * 2, sum(_truth(shrunk, 256, 1, "bfloat16"))
    report = memory_report(folder, context=256, memory="8GiB")
    needed = weights + kv + report.transient_bytes  # (the transient peak is checked in test_transient)
    assert 7 * GiB < needed < 8 * GiB
    assert report.headroom_bytes == 8 * GiB - needed and report.fits
    assert memory_report(folder, context=256, memory=needed).fits  # not a byte to spare
    short = memory_report(folder, context=256, memory=needed - 1)
    assert not short.fits and short.headroom_bytes == -1

    report = memory_report(folder, context=1024, memory="8GiB")
    longest = report.max_context
    assert 0 < longest < 4096
    at = memory_report(folder, context=longest, memory="8GiB")
    beyond = memory_report(folder, context=longest + 1, memory="8GiB")
    assert at.fits and at.needed_bytes <= 8 * GiB
    assert not beyond.fits and beyond.needed_bytes > 8 * GiB


def test_max_context_capped_at_the_model_maximum(config_folder):
    folder = str(config_folder("gpt2"))
    report = memory_report(folder, memory="1TiB")
    assert report.kv_cache.context == 1024  # default: max_position_embeddings
    assert report.max_context == 1024
    longer = memory_report(folder, memory="1TiB", context=5000, allow_longer=True)
    assert longer.kv_cache.context == 5000 and longer.max_context > 5000


def test_too_small_for_one_token(config_folder):
    report = memory_report(str(config_folder("gpt2")), memory="100MiB")
    assert not report.fits and report.max_context == 0


def test_no_budget_uses_this_machine(config_folder):
    import psutil
    import torch

    report = memory_report(str(config_folder("gpt2")), context=16)
    assert report.budget_from_machine
    if not torch.cuda.is_available():
        assert [b.device for b in report.budget] == ["cpu"]
        assert abs(report.budget[0].bytes - psutil.virtual_memory().available) < GiB
        assert report.placement is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"context": 0},
        {"context": -5},
        {"batch": 0},
        {"memory": "lots"},
        {"gpus": "2x"},
        {"cpu": "0GiB"},
        {"memory": "24GiB", "gpus": "2x24GiB"},
        {"context": 2000},  # beyond gpt2's 1024 without allow_longer
        {"dtype": "int3"},
    ],
)
def test_bad_values_refused(config_folder, kwargs):
    with pytest.raises(UsageError):
        memory_report(str(config_folder("gpt2")), **kwargs)


# --------------------------------------------------------------------------------------------
# Placement: accelerate's plan with the KV cache reserved


def _check_plan(report, folder: Path) -> dict[str, list[int]]:
    """Every layer once, every device inside its budget, weights per device recomputed here."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    placement = report.placement
    assert placement is not None
    layers = sorted(i for p in placement for i in p.layers)
    assert layers == list(range(report.num_hidden_layers))
    budgets = {b.device: b.bytes for b in report.budget}
    for p in placement:
        assert p.bytes == p.weights_bytes + p.kv_cache_bytes + p.transient_bytes
        if p.device != "disk":
            assert p.bytes <= budgets[p.device], p
    # the weights recomputed from the module names accelerate assigned
    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    owner = {m: p.device for p in placement for m in p.modules}
    per_device: dict[str, int] = {}
    for name, param in model.named_parameters():
        key = max((m for m in owner if m == "" or name == m or name.startswith(m + ".")), key=len)
        per_device[owner[key]] = per_device.get(owner[key], 0) + param.numel() * 2
    assert per_device == {p.device: p.weights_bytes for p in placement if p.weights_bytes}
    assert sum(p.kv_cache_bytes for p in placement) == report.kv_cache.bytes
    assert sum(p.transient_bytes for p in placement) == report.transient_bytes
    return {p.device: p.layers for p in placement}


def test_placement_all_on_gpus_when_they_have_room(config_folder):
    folder = config_folder("mixtral-8x7b-v0.1")
    report = memory_report(str(folder), gpus="2x80GiB", cpu="64GiB", context=4096)
    plan = _check_plan(report, folder)
    assert set(plan) == {"cuda:0", "cuda:1"}
    assert report.fits


def test_placement_spills_to_cpu_then_disk(config_folder):
    folder = config_folder("mixtral-8x7b-v0.1")
    report = memory_report(str(folder), gpus="2x24GiB", cpu="64GiB", context=4096, batch=4)
    plan = _check_plan(report, folder)
    assert set(plan) == {"cuda:0", "cuda:1", "cpu"}
    assert report.fits
    # offloaded layers run on the first GPU, so their KV cache is held there
    assert next(p for p in report.placement if p.device == "cpu").kv_cache_bytes == 0

    small = memory_report(str(folder), gpus="2x16GiB", cpu="32GiB", context=4096)
    plan = _check_plan(small, folder)
    assert "disk" in plan and not small.fits


def test_placement_reserves_the_kv_cache(config_folder):
    folder = config_folder("mixtral-8x7b-v0.1")
    short = memory_report(str(folder), gpus="2x48GiB", cpu="64GiB", context=128)
    long = memory_report(str(folder), gpus="2x48GiB", cpu="64GiB", context=32768, batch=2)
    _check_plan(short, folder)
    _check_plan(long, folder)
    gpu_layers = lambda r: sum(len(p.layers) for p in r.placement if p.device.startswith("cuda"))  # noqa: E731
    assert long.kv_cache.bytes == 8 * GiB
    assert gpu_layers(short) == 32
    assert gpu_layers(long) < gpu_layers(short)
    assert long.fits  # with layers on the CPU


def test_placement_when_the_cache_alone_is_too_big(config_folder):
    # 32k tokens x 8 sequences: KV cache and logits outgrow the first GPU whatever the layers do.
    folder = config_folder("mixtral-8x7b-v0.1")
    report = memory_report(str(folder), gpus="2x48GiB", cpu="64GiB", context=32768, batch=8)
    assert sorted(i for p in report.placement for i in p.layers) == list(range(32))
    assert not report.fits


# --------------------------------------------------------------------------------------------
# GGUF and the embedded model


def test_gguf_weights_of_the_embedded_model():
    from llmscope.loading import gguf_cache
    from llmscope.loading.resolve import resolve

    report = memory_report(None, context=1024, memory="4GiB")
    summary = gguf_cache.gguf_summary(resolve(None))
    assert report.weights.file_bytes == summary["file_bytes"]
    elements = sum(t["elements"] for t in summary["types"].values())
    stored = sum(t["bytes"] for t in summary["types"].values())
    assert report.weights.bits_per_weight == pytest.approx(8 * stored / elements)
    assert 4 < report.weights.bits_per_weight < 16
    assert report.weights.bytes == 2 * report.parameters.total
    assert report.fits


@pytest.mark.slow
def test_embedded_model_cache_matches_its_forward_pass(demo_model):
    import torch

    config = demo_model.config
    tokens = config.sliding_window + 8
    report = memory_report(demo_model, context=tokens, batch=1, dtype="float32", memory="8GiB")
    ids = torch.randint(0, config.vocab_size, (1, tokens))  # (batch, tokens)
    with torch.no_grad():
        out = demo_model.model(input_ids=ids, use_cache=True, logits_to_keep=1)
    truth = sum(
        layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
        for layer in out.past_key_values.layers
    )
    assert report.kv_cache.bytes == truth
    assert report.parameters.total == sum(p.numel() for p in demo_model.model.parameters())


def test_memory_with_cpu_spill_is_planned(config_folder):
    folder = config_folder("phi3-mini-4k-instruct")
    report = memory_report(str(folder), memory="4GiB", cpu="16GiB")
    plan = _check_plan(report, folder)
    assert set(plan) == {"memory", "cpu"} and plan["memory"] and plan["cpu"]
    assert report.fits
    # the KV cache of the offloaded layers is held where they run: the first device
    assert next(p for p in report.placement if p.device == "memory").kv_cache_bytes == report.kv_cache.bytes


def test_max_context_over_several_devices_is_planned_per_device(config_folder):
    """With several devices the longest context is the longest one whose placement fits: each
    device must hold its own layers' KV cache, so the summed budgets are not the test."""
    folder = str(config_folder("phi3-mini-4k-instruct"))
    gpus = "2x4GiB"
    report = memory_report(folder, context=1024, gpus=gpus)
    longest = report.max_context
    assert 0 < longest < 4096
    at = memory_report(folder, context=longest, gpus=gpus)
    beyond = memory_report(folder, context=longest + 1, gpus=gpus)
    assert at.fits and not beyond.fits
    _check_plan(at, Path(folder))


def test_weights_that_spill_to_disk_fit_no_context(config_folder):
    folder = str(config_folder("mixtral-8x7b-v0.1"))
    report = memory_report(folder, context=1, gpus="2x46GiB")  # 87 GiB of bfloat16 weights; 92 GiB in all
    assert any(p.device == "disk" for p in report.placement)
    assert not report.fits and report.max_context == 0
