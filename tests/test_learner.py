"""What the course teaches, taught right (issue 28): the KV-cache work counted on the model itself,
temperature 0 as greedy everywhere, next-token's knobs meaning what generate's mean, and compare's
rows saying how many tokens each filter kept and which rows coincide."""

from __future__ import annotations

import contextlib
import json

import pytest
import torch

import llmscope
from llmscope.decoding.sampling import parse_strategy_list, settings_for


@contextlib.contextmanager
def attention_rows(model):
    """Per forward pass of MODEL: the attention weights of its first layer, head 0 (queries, keys)."""
    seen: list[torch.Tensor] = []
    attn = model.transformer.h[0].attn

    def keep(_module, _args, output):
        seen.append(output[1][0, 0].detach().clone())

    handle = attn.register_forward_hook(keep)
    try:
        yield seen
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def gpt2_eager(tiny_models):
    return llmscope.load(tiny_models["gpt2"], device="cpu", attn_implementation="eager")


def test_kv_cache_work_is_what_the_attention_really_computed(gpt2_eager):
    """Positions = query rows the layers computed; attention pairs = the nonzero weights of a head
    (a causal mask leaves exact zeros), both read off the model's own attention in each run."""
    lm = gpt2_eager
    n = 12
    with attention_rows(lm.model) as seen:
        result = llmscope.generate("Once upon a time", model=lm, settings=settings_for(max_new_tokens=n),
                                   kv_cache=False)
    c = result.kv_cache_comparison
    assert result.num_tokens == n and c.same_token_ids
    uncached, cached = seen[:n], seen[n:]
    assert len(cached) == n
    p = result.prompt_tokens
    assert [w.shape[0] for w in uncached] == [p + i for i in range(n)]  # the whole text every step
    assert [w.shape[0] for w in cached] == [p] + [1] * (n - 1)  # the prompt once, then one token
    assert c.uncached_positions == sum(w.shape[0] for w in uncached) == n * p + n * (n - 1) // 2
    assert c.cached_positions == sum(w.shape[0] for w in cached) == p + n - 1
    assert c.uncached_attention_pairs == sum(int((w > 0).sum()) for w in uncached)
    assert c.cached_attention_pairs == sum(int((w > 0).sum()) for w in cached)


def test_the_course_example_counts_688_and_37_positions(cli, tiny_models):
    """The lesson's numbers: 6 prompt tokens, 32 new: 6 + 7 + ... + 37 = 688 without the cache, 6 + 31 = 37 with."""
    prompt = "The capital of France"  # 6 tokens for the tiny tokenizer, as the lesson's prompt has for Gemma
    from transformers import AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(tiny_models["gpt2"])(prompt)["input_ids"]) == 6
    result = cli("generate", prompt, "-m", str(tiny_models["gpt2"]), "--no-kv-cache", "-n", "32", "--device", "cpu",
                 "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["num_tokens"] == 32  # the tiny model never stops early here; the numbers need all 32
    c = data["kv_cache_comparison"]
    assert (c["uncached_positions"], c["cached_positions"]) == (688, 37)
    text = cli("generate", prompt, "-m", str(tiny_models["gpt2"]), "--no-kv-cache", "-n", "32", "--device", "cpu")
    words = " ".join(text.stdout.split())
    assert "688 token positions" in words and "with: 37" in words and "18.6x fewer" in words


def test_temperature_zero_is_greedy_in_generate_and_next_token_and_says_so(cli, tiny_models):
    model = str(tiny_models["gpt2"])
    greedy = json.loads(cli("generate", "Once upon", "-m", model, "-n", "6", "--json").stdout)
    zero = cli("generate", "Once upon", "-m", model, "-n", "6", "--strategy", "sample", "--temperature", "0", "--json")
    assert zero.exit_code == 0, zero.stderr
    assert json.loads(zero.stdout)["token_ids"] == greedy["token_ids"]
    assert json.loads(zero.stdout)["strategy"] == "greedy"
    assert "temperature=0 always picks the most likely token" in zero.stderr
    stepped = cli("next-token", "Once upon", "-m", model, "--steps", "6", "--temperature", "0", "--json")
    assert stepped.exit_code == 0, stepped.stderr
    data = json.loads(stepped.stdout)
    assert [s["chosen"]["id"] for s in data["steps"]] == greedy["token_ids"]
    assert data["strategy"] == "greedy" and "temperature=0" in stepped.stderr


def test_next_token_steps_with_temperature_and_top_p_sample_as_generate_does(cli, tiny_models):
    """`--steps 6 --temperature 0.7 --top-p 0.9` no longer steps greedily: it is generate's top-p at T=0.7."""
    model = str(tiny_models["gpt2"])
    knobs = ["--temperature", "0.7", "--top-p", "0.9", "--seed", "3"]
    stepped = json.loads(cli("next-token", "Once upon", "-m", model, "--steps", "6", *knobs, "--json").stdout)
    generated = json.loads(cli("generate", "Once upon", "-m", model, "-n", "6", *knobs, "--json").stdout)
    assert generated["strategy"] == stepped["strategy"] == "top-p"
    ids = [s["chosen"]["id"] for s in stepped["steps"]]
    assert ids == generated["token_ids"][: len(ids)]
    greedy = json.loads(cli("generate", "Once upon", "-m", model, "-n", "6", "--json").stdout)["token_ids"]
    assert ids != greedy  # with this seed sampling leaves the argmax path: the knobs did something


def test_next_token_top_k_is_the_filter_and_rows_the_display(cli, tiny_models, loaded_models):
    model = str(tiny_models["gpt2"])
    data = json.loads(cli("next-token", "Once upon", "-m", model, "--top-k", "3", "--rows", "7", "--json").stdout)
    assert data["rows"] == 7 and len(data["candidates"]) == 7 and data["top_k"] == 3
    assert [c["kept_top_k"] for c in data["candidates"]] == [True] * 3 + [False] * 4
    assert data["sampling_kept"] == 3
    sampled = [c["prob_sampling"] for c in data["candidates"]]
    assert sampled[3:] == [0.0] * 4
    # an independent recomputation: the top 3 of the raw logits, renormalised
    lm = loaded_models["gpt2"]
    ids = torch.tensor([data["input_ids"]])
    with torch.inference_mode():
        logits = lm.model(input_ids=ids).logits[0, -1].float()
    top = torch.topk(logits, 3)
    expected = torch.softmax(top.values, dim=-1).tolist()
    assert [c["id"] for c in data["candidates"][:3]] == top.indices.tolist()
    assert sampled[:3] == pytest.approx(expected, rel=1e-5)


def test_compare_rows_say_what_each_filter_kept_and_which_coincide(tiny_models, loaded_models):
    lm = loaded_models["gpt2"]
    rows = parse_strategy_list("greedy,sample,top-k=5,top-p=0.9", temperature=0.7, max_new_tokens=8, seed=0)
    result = llmscope.compare("Once upon a time", model=lm, strategies=rows)
    by = {r.settings.strategy: r for r in result.results}
    assert by["greedy"].candidates_kept == [1] * by["greedy"].num_tokens
    assert by["top-k"].candidates_kept == [5] * by["top-k"].num_tokens
    vocab = lm.model.config.vocab_size
    assert by["sample"].candidates_kept == [vocab] * by["sample"].num_tokens
    # top-p's counts, recomputed step by step from the model's logits over the text it wrote
    top_p = by["top-p"]
    prompt = lm.tokenizer("Once upon a time")["input_ids"]
    full = torch.tensor([prompt + top_p.token_ids])
    with torch.inference_mode():
        logits = lm.model(input_ids=full).logits[0].float()
    expected = []
    for i in range(top_p.num_tokens):
        probs = torch.softmax(logits[len(prompt) - 1 + i] / 0.7, dim=-1).double()
        ordered = probs.sort(descending=True).values
        before = ordered.cumsum(0) - ordered  # mass of the tokens ranked above each one
        expected.append(int((before < 0.9).sum()))
    assert top_p.candidates_kept == expected
    groups = {tuple(g) for g in result.coinciding}
    texts: dict[tuple[int, ...], list[str]] = {}
    for r in result.results:
        texts.setdefault(tuple(r.token_ids), []).append(r.settings.label)
    assert groups == {tuple(v) for v in texts.values() if len(v) > 1}


def test_compare_marks_coinciding_rows_in_the_terminal(cli, tiny_models):
    """Two rows that must coincide: top-k with k = the whole vocabulary is plain sampling, same seed."""
    model = str(tiny_models["gpt2"])
    from transformers import AutoConfig

    vocab = AutoConfig.from_pretrained(tiny_models["gpt2"]).vocab_size
    result = cli("compare", "Once upon", "-m", model, "--strategies", f"sample,top-k={vocab},greedy", "-n", "6")
    assert result.exit_code == 0, result.stderr
    assert f"sample T=1 and top-k {vocab} wrote the same tokens" in " ".join(result.stdout.split())
    data = json.loads(cli("compare", "Once upon", "-m", model, "--strategies", f"sample,top-k={vocab}", "-n", "6",
                          "--json").stdout)
    assert data["coinciding"] == [["sample T=1", f"top-k {vocab}"]]
    assert data["results"][0]["token_ids"] == data["results"][1]["token_ids"]


def test_layers_shows_the_heads_logits_the_row_taken_and_its_argmax(loaded_models):
    lm = loaded_models["llama"]
    report = llmscope.layer_report("Once upon a time", model=lm)
    ids = torch.tensor([report.input_ids])
    with torch.inference_mode():
        logits = lm.model(input_ids=ids).logits  # the raw API: every row
    h = report.head_output
    assert h.shape == list(logits.shape) == [1, len(report.input_ids), lm.model.config.vocab_size]
    assert h.position == len(report.input_ids) - 1
    assert h.prediction.id == int(torch.argmax(logits[0, -1]))
    assert h.prediction.prob == pytest.approx(float(torch.softmax(logits[0, -1].float(), -1).max()), rel=1e-5)
    assert report.kv_cache.axes == ("batch", "kv_heads", "tokens", "head_dim")
    layer0 = report.kv_cache.layers[0]
    config = lm.model.config
    assert layer0.key_shape == [1, config.num_key_value_heads, len(report.input_ids),
                                config.hidden_size // config.num_attention_heads]


def test_embeddings_context_numbers_layers_as_layers_does(cli, tiny_models, loaded_models):
    """Rows: embed, then layers 0..N-1; the last row is the last layer's own output (not after the final
    norm), checked against a hook on that layer of the same model."""
    model = str(tiny_models["llama"])
    sentences = ["I sat on the river bank.", "I paid at the bank."]
    data = cli("embeddings", "-m", model, "--context", sentences[0], "--context", sentences[1], "--word", "bank",
               "--json").json()
    rows = data["context"]["layers"]
    lm = loaded_models["llama"]
    n = lm.model.config.num_hidden_layers
    assert [r["layer"] for r in rows] == [None] + list(range(n))
    assert [r["hidden_state"] for r in rows] == list(range(n + 1))
    outputs = []
    handle = lm.model.model.layers[-1].register_forward_hook(lambda m, a, out: outputs.append(
        (out[0] if isinstance(out, tuple) else out)[0].double()))
    try:
        vectors = []
        for sentence, info in zip(sentences, data["context"]["sentences"]):
            ids = lm.tokenizer(sentence, return_tensors="pt")["input_ids"]
            with torch.inference_mode():
                lm.model(input_ids=ids)
            vectors.append(outputs[-1][info["positions"]].mean(dim=0))
    finally:
        handle.remove()
    expected = float(torch.nn.functional.cosine_similarity(vectors[0], vectors[1], dim=0))
    assert rows[-1]["cosine"] == pytest.approx(expected, abs=1e-6)


def test_embeddings_layer_takes_embed_or_a_layer_number(cli, tiny_models, loaded_models):
    model = str(tiny_models["llama"])
    n = loaded_models["llama"].model.config.num_hidden_layers
    assert cli("embeddings", "king", "queen", "-m", model, "--layer", "embed").exit_code == 0
    assert cli("embeddings", "king", "queen", "-m", model, "--layer", str(n - 1)).exit_code == 0
    too_deep = cli("embeddings", "king", "queen", "-m", model, "--layer", str(n))
    assert too_deep.exit_code == 2 and f"--layer {n}: this model has layers 0 to {n - 1}" in too_deep.stderr


def _walk_tree(node, path=""):
    """(path, input_shape, output_shape) for every node of an inspect --modules tree (folded runs: their first)."""
    yield path, node["input_shape"], node["output_shape"]
    for child in node["children"]:
        first = child["name"].split("-")[0]
        yield from _walk_tree(child, f"{path}.{first}" if path else first)


@pytest.mark.parametrize("name", ["llama", "mixtral", "gpt2", "bert"])
def test_module_shapes_are_what_a_real_forward_pass_gives(cli, tiny_models, loaded_models, name):
    """inspect --modules runs on fake tensors from the config alone; the same model with real weights, run
    by transformers on 5 real tokens with a hook on every module, must give every module the same shapes."""
    data = cli("inspect", str(tiny_models[name]), "--modules", "--tokens", "5", "--json").json()
    assert data["module_tokens"] == 5 and data["module_shapes_missing"] is None
    model = loaded_models[name].model
    real: dict[str, list] = {}

    def shape(value):
        value = value[0] if isinstance(value, (tuple, list)) else (value.to_tuple()[0] if hasattr(value, "to_tuple")
                                                                   else value)
        return list(value.shape) if hasattr(value, "shape") else None

    handles = []
    for path, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(
            lambda m, a, k, p=path: real.setdefault(p, [None, None]).__setitem__(
                0, shape(a[0] if a else next((v for v in k.values() if hasattr(v, "shape")), None))),
            with_kwargs=True))
        handles.append(module.register_forward_hook(lambda m, a, o, p=path: real.setdefault(p, [None, None])
                                                    .__setitem__(1, shape(o))))
    try:
        with torch.inference_mode():
            model(input_ids=torch.tensor([[5, 6, 7, 8, 9]]), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    compared = 0
    for path, _into, out in _walk_tree(data["modules"]):
        # experts inside a MoE block run as batched_mm on fake tensors, as routed slices for real: skipped
        if "experts" in path or path not in real or real[path][1] is None or out is None:
            continue
        assert out == real[path][1], path
        compared += 1
    assert compared >= 8
    assert data["modules"]["output_shape"] == [1, 5, model.config.vocab_size]


def test_module_shapes_follow_tokens(cli, config_folder):
    folder = config_folder("phi3-mini-4k-instruct")  # Phi-3 Mini's real config: the course's 1 x 6 x 32,064
    six = cli("inspect", str(folder), "--modules", "--json").json()
    assert six["modules"]["output_shape"] == [1, 6, 32064]
    three = cli("inspect", str(folder), "--modules", "--tokens", "3", "--json").json()
    assert three["modules"]["output_shape"] == [1, 3, 32064]
    shown = cli("inspect", str(folder), "--modules")
    assert "qkv_proj: Linear  28,311,552  1×6×3072 → 1×6×9216" in shown.stdout
