"""``llmscope generate`` through main(): streaming, JSON, rendering, --no-kv-cache, bad values."""

from __future__ import annotations

import pytest
import torch

from llmscope import loading

PROMPT = "The cat sat on"


def _reference(folder, prompt, **kwargs):
    """transformers called directly on the same folder."""
    lm = loading.load(folder, device="cpu")
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), pad_token_id=lm.tokenizer.eos_token_id,
                                **kwargs)
    return lm, out[0, ids.shape[-1]:].tolist()


def test_json_greedy_matches_model_generate(cli, tiny_models):
    folder = str(tiny_models["llama"])
    r = cli("generate", PROMPT, "-m", folder, "--device", "cpu", "--max-new-tokens", "10", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    for key in ("text", "token_ids", "strategy", "tokens_per_second", "time_to_first_token", "mean_logprob",
                "perplexity", "stop_reason", "num_tokens", "settings", "tokens"):
        assert key in data
    assert data["strategy"] == "greedy" and data["stop_reason"] in ("eos", "length")
    lm, expected = _reference(folder, PROMPT, do_sample=False, max_new_tokens=10)
    assert data["token_ids"] == expected
    assert data["text"] == lm.tokenizer.decode(expected, skip_special_tokens=True)
    assert PROMPT not in r.stdout.split('"text"')[0]  # JSON only: nothing streamed before the document


def test_same_seed_same_json(cli, tiny_models):
    args = ("generate", PROMPT, "-m", str(tiny_models["gpt2"]), "--device", "cpu", "--strategy", "top-k",
            "--top-k", "5", "--seed", "4", "--max-new-tokens", "12", "--json")
    first, second = cli(*args), cli(*args)
    assert first.exit_code == 0, first.stderr
    assert first.json()["token_ids"] == second.json()["token_ids"]
    assert first.json()["settings"]["top_k"] == 5
    assert first.json()["candidates_kept"] == [5] * first.json()["num_tokens"]  # each draw among the top 5


def test_streams_text_then_stats_at_80_columns(cli, tiny_models, tmp_path):
    folder = str(tiny_models["llama"])
    html = tmp_path / "gen.html"
    r = cli("generate", PROMPT, "-m", folder, "--device", "cpu", "--max-new-tokens", "8", "--show-probs",
            "--export", html)
    assert r.exit_code == 0, r.stderr
    lm, expected = _reference(folder, PROMPT, do_sample=False, max_new_tokens=8)
    text = lm.tokenizer.decode(expected, skip_special_tokens=True)
    assert r.stdout.startswith(PROMPT + text)  # streamed once, the prompt first
    assert r.stdout.count(text) == 1
    for needle in ("tokens/s", "first token", "perplexity", "mean log-prob", "stop:", "colour"):
        assert needle in r.stdout
    assert all(len(line) <= 80 for line in r.stdout.splitlines()[1:])
    assert "perplexity" in html.read_text()


def test_beam_prints_text_after(cli, tiny_models):
    folder = str(tiny_models["gpt2"])
    r = cli("generate", PROMPT, "-m", folder, "--device", "cpu", "--strategy", "beam", "--num-beams", "3",
            "--max-new-tokens", "6", "--json")
    assert r.exit_code == 0, r.stderr
    _, expected = _reference(folder, PROMPT, do_sample=False, num_beams=3, max_new_tokens=6)
    assert r.json()["token_ids"] == expected
    assert r.json()["time_to_first_token"] is None


def test_no_kv_cache_reports_the_speedup(cli, tiny_models):
    """The work each way is exact (positions and attention scores computed, from the prompt length and
    the tokens written); the wall times are whatever the machine gives, faster or (busy) not."""
    shown = cli("generate", PROMPT, "-m", str(tiny_models["llama"]), "--device", "cpu", "--max-new-tokens", "6",
                "--no-kv-cache")
    assert shown.exit_code == 0, shown.stderr
    r = cli("generate", PROMPT, "-m", str(tiny_models["llama"]), "--device", "cpu", "--max-new-tokens", "6",
            "--no-kv-cache", "--json")
    c = r.json()["kv_cache_comparison"]
    assert "KV cache work" in shown.stdout and "KV cache time" in shown.stdout and "with the cache" in shown.stdout
    assert f"{c['uncached_positions'] / c['cached_positions']:.1f}x" in shown.stdout
    assert f"{c['uncached_attention_pairs']:,} vs {c['cached_attention_pairs']:,}" in shown.stdout
    assert r.json()["kv_cache"] is False and c["same_token_ids"] is True and c["speedup"] > 0
    p, n = r.json()["prompt_tokens"], r.json()["num_tokens"]
    # without the cache every pass computes the whole sequence; with it, the prompt once then one token
    assert c["uncached_positions"] == sum(p + i for i in range(n)) and c["cached_positions"] == p + n - 1
    assert c["uncached_attention_pairs"] == sum((p + i) * (p + i + 1) // 2 for i in range(n))
    assert c["cached_attention_pairs"] == p * (p + 1) // 2 + sum(p + i for i in range(1, n))


def test_temperature_zero_is_greedy_and_says_so(cli, tiny_models):
    folder = str(tiny_models["llama"])
    r = cli("generate", PROMPT, "-m", folder, "--device", "cpu", "--strategy", "top-p", "--temperature", "0",
            "--max-new-tokens", "10", "--json")
    assert r.exit_code == 0, r.stderr
    assert "temperature=0 always picks the most likely token: top-p runs as greedy" in r.stderr
    data = r.json()
    assert data["strategy"] == "greedy" and data["candidates_kept"] == [1] * data["num_tokens"]
    assert data["warnings"] == ["temperature=0 always picks the most likely token: top-p runs as greedy"]
    _, expected = _reference(folder, PROMPT, do_sample=False, max_new_tokens=10)
    assert data["token_ids"] == expected


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--top-p", "0"], "--top-p"),
        (["--top-p", "1.01"], "--top-p"),
        (["--temperature", "-1"], "--temperature"),
        (["--top-k", "0"], "--top-k"),
        (["--max-new-tokens", "0"], "--max-new-tokens"),
        (["--num-beams", "0"], "--num-beams"),
        (["--strategy", "wild"], "unknown strategy"),
        (["--strategy", "greedy", "--top-k", "5"], "--top-k 5 has no effect with --strategy greedy"),
        (["--temperature", "1e-9"], "--temperature 1e-09: must be 0 or at least 0.0001"),
        (["--system", "Be kind."], "--system needs --chat"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_bad_values_exit_2_before_loading(cli, args, needle):
    # the model does not exist: reaching the loader would give exit 1, not 2
    r = cli("generate", "hi", "-m", "/no/such/model", *args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_masked_model_is_refused(cli, tiny_models):
    r = cli("generate", "hi", "-m", str(tiny_models["bert"]), "--device", "cpu")
    assert r.exit_code == 2 and "masked language model" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_demo_model_cli(cli):
    r = cli("generate", "The capital of France is", "--max-new-tokens", "6", "--device", "cpu", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    assert data["num_tokens"] >= 1 and data["text"].strip()
    assert data["model"]


def test_two_bos_tokens_warn_on_stderr_and_in_json(cli, tiny_models):
    folder = str(tiny_models["llama"])
    r = cli("generate", "<s>Hello", "-m", folder, "--device", "cpu", "-n", "3", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    assert len(data["warnings"]) == 1 and "two" in data["warnings"][0]
    assert "Warning:" in r.stderr
    clean = cli("generate", "Hello", "-m", folder, "--device", "cpu", "-n", "3", "--json")
    assert clean.json()["warnings"] == [] and "Warning" not in clean.stderr
