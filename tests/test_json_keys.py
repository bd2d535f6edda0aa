"""Pin the top-level keys of every command's ``--json`` document (issue 14, "One interface for
results"), so that moving code around cannot drop, rename or add a key unnoticed.

Each document is produced through the CLI on a tiny fixture model. Two checks per document:

- ``test_top_level_keys``: the keys other than ``"model"`` are exactly today's keys (order aside).
  A rename (``source`` -> ``model``) or a new key must update the pinned list here, on purpose.
- ``test_model_key``: every document has a top-level ``"model"``, the model's display name.
"""

from __future__ import annotations

import io

import pytest

# name -> (CLI arguments built from the fixture folders and a text file, today's keys + "model",
#          fixture whose display name "model" should hold, marks of the "model" check)
INSPECT = [
    "model", "source", "model_type", "architecture", "kind", "dtype", "num_hidden_layers", "hidden_size",
    "vocab_size", "num_attention_heads", "num_key_value_heads", "attention", "gqa_group_size", "head_dim",
    "intermediate_size", "hidden_act", "mlp", "norm", "qk_norm", "position_encoding", "rope_theta",
    "rope_scaling", "max_position_embeddings", "sliding_window", "layer_types", "tie_word_embeddings", "moe",
    "parameters", "memory", "gguf", "modules", "module_tokens", "module_shapes_missing", "state_space",
    "layer_kinds",
]
MEMORY = [
    "model", "source", "model_type", "architecture", "parameters", "weights", "kv_cache", "recurrent_state",
    "transient_bytes",
    "transient", "needed_bytes", "budget", "fits", "headroom_bytes", "max_context", "max_position_embeddings",
    "placement", "context", "batch", "mode", "attn_implementation", "transient_peak", "transient_shapes",
    "measured_bytes", "measured_ratio", "measurement",
]
TOKENIZE = [
    "model", "text", "ids", "tokens", "pieces", "offsets", "special_tokens_mask", "added_special_tokens",
    "num_tokens", "num_characters", "characters_per_token", "add_special_tokens", "chat", "messages", "warnings",
]
TOKENIZE_COMPARE = ["model", "text", "num_characters", "models"]
TOKENIZE_IDS = ["model", "ids", "tokens", "pieces", "special_tokens_mask", "text"]
TOKENIZE_VOCAB = [
    "model", "tokenizer_class", "is_fast", "vocab_size", "total_size", "added_tokens", "model_type",
    "byte_level", "byte_fallback", "normalizer", "pre_tokenizer", "post_processor", "decoder", "special_tokens",
    "adds_bos", "adds_eos", "model_max_length", "has_chat_template",
]
NEXT_TOKEN = [
    "model", "candidates", "entropy", "entropy_bits", "shown", "kind", "prompt", "input_ids", "dtype",
    "strategy", "temperature", "top_k", "top_p", "min_p", "typical_p", "seed", "rows", "warnings",
]
NEXT_TOKEN_RESHAPED = [*NEXT_TOKEN, "top_k_kept", "top_p_kept", "sampling_kept", "entropy_temperature"]
NEXT_TOKEN_STEPS = [*NEXT_TOKEN, "steps", "generated_text", "stop_reason"]
LAYERS = [
    "model", "kind", "prompt", "input_ids", "tokens", "dtype", "position", "final_norm", "lm_head", "softcapping",
    "layers", "final_check", "kv_cache", "head_output", "warnings",
]
GENERATE = [
    "model", "strategy", "label", "text", "token_ids", "tokens", "num_tokens", "prompt", "prompt_tokens", "chat",
    "settings", "stop_reason", "time_to_first_token", "total_time", "tokens_per_second", "mean_logprob",
    "perplexity", "distinct_1", "distinct_2", "repetition", "kv_cache", "kv_cache_comparison", "candidates_kept",
    "warnings",
]
COMPARE = ["model", "prompt", "chat", "results", "batched", "batch_time", "total_time", "coinciding", "warnings"]
ATTENTION = ["model", "tokens", "layer", "head", "weights", "kind", "warnings"]
ATTENTION_TOKEN = [*ATTENTION, "query", "ranking"]
ATTENTION_ALL = [*ATTENTION, "layers"]
ATTENTION_WALK = ["model", "tokens", "walk", "queries", "views", "views_note", "warnings"]
HEADS = ["model", "tokens", "token_texts", "probe", "seed", "heads", "warnings"]
HEADS_LINK = [*HEADS, "query", "key", "ranking"]
WHY = ["model", "prompt", "text", "method", "by", "target", "target_ids", "versus", "versus_ids", "f", "f_baseline",
       "gap", "converged", "n_steps", "baseline", "baseline_id", "units", "check", "dtype", "steps", "warnings"]
CONTRIBUTIONS = ["model", "prompt", "tokens", "by", "target", "target_id", "versus", "versus_id", "logit",
                 "logit_before_softcap", "sum", "error", "embedding", "bias", "layers", "dtype", "warnings"]
PATCH = ["model", "clean_prompt", "corrupt_prompt", "noise", "site", "metric", "target", "target_id", "versus",
         "versus_id", "clean", "corrupt", "tokens", "grid", "raw", "check", "seed", "dtype", "warnings"]
EXPERTS = ["model", "tokens", "num_experts", "num_experts_per_tok", "layers", "parameters", "warnings"]
PACK = [
    "model", "source", "seq_len", "separator", "separator_ids", "documents", "empty_documents", "tokens",
    "shortest", "longest", "mean", "long_documents", "chunks", "padded", "packed",
]
SCORE = [
    "model", "text", "num_tokens", "window", "stride", "windows", "tokens", "scored", "total_nll", "mean_nll",
    "perplexity", "bits_per_byte", "bytes", "dtype",
]
SCORE_COMPARE = ["model", "text", "bytes", "models", "disagreements"]
EMBEDDINGS = ["model", "words", "similarity", "neighbors", "analogy", "context", "projection", "warnings"]
REPORT = ["model", "prompt", "inspect", "tokens", "next_token", "layers", "attention"]

CASES = {
    "inspect": (lambda m, f: ["inspect", m["gpt2"]], INSPECT, "gpt2", []),
    "memory": (lambda m, f: ["memory", m["gpt2"], "--memory", "1GiB"], MEMORY, "gpt2", []),
    "memory --gpus": (
        lambda m, f: ["memory", m["mixtral"], "--gpus", "2x1GiB", "--cpu", "1GiB"], MEMORY, "mixtral",
        [],
    ),
    "tokenize": (lambda m, f: ["tokenize", "Hello world", "-m", m["gpt2"]], TOKENIZE, "gpt2", []),
    "tokenize --compare": (
        lambda m, f: ["tokenize", "Hello world", "-m", m["gpt2"], "-c", m["llama"]], TOKENIZE_COMPARE, "gpt2",
        [],
    ),
    "tokenize --ids": (lambda m, f: ["tokenize", "--ids", "1,2,3", "-m", m["gpt2"]], TOKENIZE_IDS, "gpt2", []),
    "tokenize --vocab": (lambda m, f: ["tokenize", "--vocab", "-m", m["gpt2"]], TOKENIZE_VOCAB, "gpt2", []),
    "next-token": (lambda m, f: ["next-token", "Hello world", "-m", m["gpt2"]], NEXT_TOKEN, "gpt2", []),
    "next-token --temperature --top-p": (
        lambda m, f: ["next-token", "Hello world", "-m", m["gpt2"], "--temperature", "0.7", "--top-p", "0.9"],
        NEXT_TOKEN_RESHAPED, "gpt2", [],
    ),
    "next-token --steps": (
        lambda m, f: ["next-token", "Hello world", "-m", m["gpt2"], "--steps", "3"], NEXT_TOKEN_STEPS, "gpt2", [],
    ),
    "next-token --interactive": (
        lambda m, f: ["next-token", "Hello world", "-m", m["gpt2"], "--interactive"], NEXT_TOKEN_STEPS, "gpt2",
        [],
    ),
    "layers": (lambda m, f: ["layers", "Hello world", "-m", m["gpt2"]], LAYERS, "gpt2", []),
    "generate": (lambda m, f: ["generate", "Hello world", "-m", m["gpt2"], "-n", "3"], GENERATE, "gpt2", []),
    "compare": (
        lambda m, f: ["compare", "Hello world", "-m", m["gpt2"], "-n", "3", "-S", "greedy,sample"], COMPARE,
        "gpt2", [],
    ),
    "attention": (lambda m, f: ["attention", "Hello world", "-m", m["gpt2"]], ATTENTION, "gpt2", []),
    "attention --token": (
        lambda m, f: ["attention", "Hello world", "-m", m["gpt2"], "--token", "1"], ATTENTION_TOKEN, "gpt2",
        [],
    ),
    "attention --all-layers": (
        lambda m, f: ["attention", "Hello world", "-m", m["gpt2"], "--all-layers"], ATTENTION_ALL, "gpt2", [],
    ),
    "attention --walk": (
        lambda m, f: ["attention", "Hello world", "-m", m["gpt2"], "--walk"], ATTENTION_WALK, "gpt2", [],
    ),
    "heads": (lambda m, f: ["heads", "-m", m["gpt2"]], HEADS, "gpt2", []),
    "heads --query": (
        lambda m, f: ["heads", "Hello world", "-m", m["gpt2"], "--query", "world", "--key", "Hello"], HEADS_LINK,
        "gpt2", [],
    ),
    "why": (lambda m, f: ["why", "Hello world", "-m", m["gpt2"], "--steps", "4"], WHY, "gpt2", []),
    "why --generate": (lambda m, f: ["why", "Hello world", "-m", m["llama"], "--generate", "2", "--method",
                                     "grad-x-input"], WHY, "llama", []),
    "contributions": (lambda m, f: ["contributions", "Hello world", "-m", m["llama"], "--by", "head"], CONTRIBUTIONS,
                      "llama", []),
    "patch": (lambda m, f: ["patch", "the cat sat", "--corrupt", "the tan sat", "-m", m["gpt2"]], PATCH, "gpt2", []),
    "experts": (lambda m, f: ["experts", "Hello world", "-m", m["mixtral"]], EXPERTS, "mixtral", []),
    "pack": (lambda m, f: ["pack", f, "-n", "8", "-m", m["gpt2"]], PACK, "gpt2", []),
    "score": (lambda m, f: ["score", "Hello world", "-m", m["llama"]], SCORE, "llama", []),
    "score --compare-model": (
        lambda m, f: ["score", "Hello world", "-m", m["gpt2"], "--compare-model", m["llama"]], SCORE_COMPARE, "gpt2",
        [],
    ),
    "embeddings": (
        lambda m, f: ["embeddings", "cat", "dog", "mat", "-m", m["llama"], "--analogy", "cat - dog + mat", "--plot",
                      "--word", "cat", "--context", "The cat sat.", "--context", "A cat."], EMBEDDINGS, "llama", [],
    ),
    "embeddings (words only)": (lambda m, f: ["embeddings", "cat", "dog", "-m", m["gpt2"]], EMBEDDINGS, "gpt2", []),
    "report": (lambda m, f: ["report", "Hello world", "-m", m["gpt2"]], REPORT, "gpt2", []),
}


def _document(name: str, cli, tiny_models, tmp_path, monkeypatch) -> dict:
    args, _, _, _ = CASES[name]
    text = tmp_path / "docs.txt"
    text.write_text("The cat sat on the mat.\nThe dog was not amused.\n", encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))  # --interactive: stop at the first question
    result = cli(*(str(a) for a in args(tiny_models, text)), "--json")
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize("name", list(CASES))
def test_top_level_keys(name, cli, tiny_models, tmp_path, monkeypatch):
    document = _document(name, cli, tiny_models, tmp_path, monkeypatch)
    pinned = CASES[name][1]
    assert len(pinned) == len(set(pinned)), "a pinned key is listed twice"
    assert sorted(set(document) - {"model"}) == sorted(set(pinned) - {"model"})


@pytest.mark.parametrize("name", [pytest.param(n, marks=CASES[n][3]) for n in CASES])
def test_model_key(name, cli, tiny_models, tmp_path, monkeypatch):
    from llmscope.loading.resolve import resolve

    document = _document(name, cli, tiny_models, tmp_path, monkeypatch)
    assert "model" in CASES[name][1]
    assert document.get("model") == resolve(str(tiny_models[CASES[name][2]])).display_name


def test_every_command_has_a_pinned_document():
    from test_startup import COMMANDS

    assert sorted({name.split()[0] for name in CASES}) == sorted(COMMANDS)


def test_report_sections_are_the_commands_own_documents(cli, tiny_models, tmp_path, monkeypatch):
    """``report`` holds each view's document under its own key, with the keys that view's command gives
    (the logit lens with every position's grid, the attention of every layer)."""
    document = _document("report", cli, tiny_models, tmp_path, monkeypatch)
    sections = {"inspect": INSPECT, "tokens": TOKENIZE, "next_token": NEXT_TOKEN, "layers": [*LAYERS, "grid"],
                "attention": ATTENTION_ALL}
    assert {key: sorted(document[key]) for key in sections} == {key: sorted(keys) for key, keys in sections.items()}
