"""``llmscope next-token`` through main(): JSON keys, rendering, interactive input, bad values."""

from __future__ import annotations

import io

import pytest
import torch


def _probs(folder, ids):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        return torch.softmax(model(torch.tensor([ids])).logits[0, -1], -1), model


def test_json_candidates(cli, tiny_models):
    r = cli("next-token", "The cat sat", "-m", tiny_models["gpt2"], "--rows", "4", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    assert len(data["candidates"]) == 4 and data["rows"] == 4
    assert data["strategy"] == "greedy" and data["top_k"] is None  # --rows filters nothing
    assert set(data["candidates"][0]) >= {"token", "id", "prob", "logprob"}
    probs, _ = _probs(tiny_models["gpt2"], data["input_ids"])
    assert [c["id"] for c in data["candidates"]] == torch.topk(probs, 4).indices.tolist()
    assert data["candidates"][0]["prob"] == pytest.approx(float(probs.max()), abs=1e-5)
    assert "entropy" in data and "steps" not in data


def test_json_steps_equal_generate(cli, tiny_models):
    r = cli("next-token", "Once upon", "-m", tiny_models["llama"], "--steps", "4", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    assert len(data["steps"]) == 4
    assert set(data["steps"][0]) >= {"chosen", "candidates"}
    assert set(data["steps"][0]["chosen"]) >= {"token", "id", "prob", "logprob"}
    _, model = _probs(tiny_models["llama"], data["input_ids"])
    ids = torch.tensor([data["input_ids"]])
    expected = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=4)
    assert [s["chosen"]["id"] for s in data["steps"]] == expected[0, ids.shape[1]:].tolist()


def test_table_renders_at_80_columns(cli, tiny_models):
    r = cli("next-token", "The cat sat", "-m", tiny_models["gpt2"], "-t", "0.7", "-p", "0.5", "--show", " dog")
    assert r.exit_code == 0, r.stderr
    assert "Next token" in r.stdout and "T=0.7" in r.stdout and "top-p 0.5" in r.stdout and "·dog" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80


def test_interactive_pick_type_and_stop(cli, tiny_models, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("2\n the mat\n\n"))
    r = cli("next-token", "The cat sat on", "-m", tiny_models["llama"], "--interactive", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    steps = data["steps"]
    assert len(steps) == 2
    assert steps[0]["chosen"]["id"] == steps[0]["candidates"][1]["id"]  # rank 2
    assert steps[1]["chosen"]["typed"] is True and steps[1]["chosen"]["token"] == " the mat"
    assert data["stop_reason"] == "stopped"


def test_interactive_ends_on_eof(cli, tiny_models, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("1\n"))
    r = cli("next-token", "The cat", "-m", tiny_models["gpt2"], "-i")
    assert r.exit_code == 0, r.stderr
    assert "Step 2" in r.stdout and "Steps" in r.stdout


def test_masked_lm(cli, tiny_models):
    r = cli("next-token", "The cat [MASK] on the mat.", "-m", tiny_models["bert"], "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    assert data["kind"] == "masked" and len(data["masks"]) == 1
    assert data["candidates"] == data["masks"][0]["candidates"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["x", "--rows", "0"], "--rows 0"),
        (["x", "-r", "-2"], "--rows -2"),
        (["x", "--top-k", "0"], "--top-k 0"),
        (["x", "--top-p", "1.5"], "--top-p 1.5"),
        (["x", "--min-p", "2"], "--min-p 2"),
        (["x", "--typical-p", "0"], "--typical-p 0"),
        (["x", "--repetition-penalty", "0"], "--repetition-penalty 0"),
        (["x", "--temperature", "-1"], "--temperature -1.0: must be 0 or more"),
        (["x", "--strategy", "beam"], "--strategy beam: stepping picks one token at a time"),
        (["x", "--strategy", "telepathy"], "unknown strategy 'telepathy'"),
        (["x", "--strategy", "greedy", "--top-k", "5"], "--top-k 5 has no effect with --strategy greedy"),
        (["x", "--steps", "-1"], "--steps -1"),
        (["x", "--interactive", "--steps", "2"], "--interactive and --steps do not go together"),
        (["", ], "empty"),
        (["x", "--system", "hi"], "--chat"),
    ],
)
def test_bad_values_exit_2_before_loading(cli, args, words):
    r = cli("next-token", *args, "-m", "/nonexistent/model")
    assert r.exit_code == 2
    assert words in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_model_errors_are_one_line(cli, tiny_models):
    r = cli("next-token", "The cat sat", "-m", tiny_models["bert"])
    assert r.exit_code == 2 and "[MASK]" in r.stderr and "Traceback" not in r.stderr
    r = cli("next-token", "hi", "-m", tiny_models["gpt2"], "--chat")
    assert r.exit_code == 2 and "chat template" in r.stderr
    r = cli("next-token", "the cat " * 100, "-m", tiny_models["gpt2"])
    assert r.exit_code == 2 and "context" in r.stderr


@pytest.mark.slow
def test_demo_model_cli(cli, demo_model):
    r = cli("next-token", "The capital of France is", "--device", "cpu", "--dtype", "float32", "--json", "-r", "3")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    with torch.no_grad():
        probs = torch.softmax(demo_model.model(torch.tensor([data["input_ids"]])).logits[0, -1], -1)
    assert data["candidates"][0]["id"] == int(probs.argmax())
    assert data["candidates"][0]["prob"] == pytest.approx(float(probs.max()), abs=1e-5)


@pytest.mark.parametrize("options", [
    ["--strategy", "greedy"],
    ["--strategy", "sample"],
    ["--strategy", "top-k", "--top-k", "3", "--temperature", "1.4"],
    ["--temperature", "0.7", "--top-p", "0.9"],  # no --strategy: top-p sampling at T=0.7, as generate infers
    ["--strategy", "min-p", "--min-p", "0.2"],
    ["--strategy", "typical", "--typical-p", "0.5", "--repetition-penalty", "1.3"],
], ids=" ".join)
def test_steps_write_what_generate_writes(cli, tiny_models, options):
    # One sampling path: the same options and seed give the same tokens in next-token --steps and generate.
    folder = str(tiny_models["llama"])
    stepped = cli("next-token", "Once upon", "-m", folder, *options, "--seed", "3", "--steps", "12", "--json")
    written = cli("generate", "Once upon", "-m", folder, *options, "--seed", "3", "-n", "12", "--json")
    assert stepped.exit_code == 0 and written.exit_code == 0, stepped.stderr + written.stderr
    assert [s["chosen"]["id"] for s in stepped.json()["steps"]] == written.json()["token_ids"]
    assert stepped.json()["strategy"] == written.json()["strategy"]


def test_temperature_zero_is_greedy_and_says_so(cli, tiny_models):
    """--temperature 0 always picks the most likely token: greedy steps (those of model.generate), the
    model's own distribution shown, and a notice on stderr."""
    folder = str(tiny_models["llama"])
    r = cli("next-token", "Once upon", "-m", folder, "--temperature", "0", "--steps", "4", "--json")
    assert r.exit_code == 0, r.stderr
    assert "temperature=0 always picks the most likely token: greedy" in r.stderr
    data = r.json()
    assert data["strategy"] == "greedy" and data["temperature"] == 1.0 and "sampling_kept" not in data
    assert any("temperature=0" in w for w in data["warnings"])
    _, model = _probs(folder, data["input_ids"])
    ids = torch.tensor([data["input_ids"]])
    expected = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=4)
    assert [s["chosen"]["id"] for s in data["steps"]] == expected[0, ids.shape[1]:].tolist()


def test_top_k_is_the_filter_and_rows_the_display(cli, tiny_models):
    """--top-k filters what sampling draws from (each row says kept or cut); --rows only says how many
    candidates are shown."""
    folder = str(tiny_models["gpt2"])
    r = cli("next-token", "The cat sat", "-m", folder, "--top-k", "3", "--rows", "6", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    assert data["strategy"] == "top-k" and data["top_k"] == 3 and data["rows"] == 6
    probs, _ = _probs(folder, data["input_ids"])
    assert [c["id"] for c in data["candidates"]] == torch.topk(probs, 6).indices.tolist()
    assert [c["kept_top_k"] for c in data["candidates"]] == [True] * 3 + [False] * 3
    kept = probs[torch.topk(probs, 3).indices]
    assert [c["prob_sampling"] for c in data["candidates"]] == pytest.approx(
        (kept / kept.sum()).tolist() + [0.0] * 3, abs=1e-5)
    assert data["top_k_kept"] == data["sampling_kept"] == 3
    table = cli("next-token", "The cat sat", "-m", folder, "--top-k", "3", "--rows", "6")
    assert table.exit_code == 0, table.stderr
    assert "top-k 3" in table.stdout and "cut" in table.stdout and "sampling draws from 3 tokens" in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 80


def test_two_bos_tokens_warn(cli, tiny_models):
    r = cli("next-token", "<s>Hello", "-m", tiny_models["llama"], "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    assert data["input_ids"][:2] == [data["input_ids"][0]] * 2
    assert len(data["warnings"]) == 1 and "two" in data["warnings"][0]
    assert "Warning:" in r.stderr and "two" in r.stderr


def test_stop_reason_reads_as_words(cli, tiny_models, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("1\n\n"))
    r = cli("next-token", "The cat", "-m", tiny_models["gpt2"], "-i")
    assert r.exit_code == 0, r.stderr
    assert "(stopped by you)" in r.stdout and "stopped: stopped" not in r.stdout


@pytest.mark.slow
def test_demo_sampled_steps_equal_generate_cli(cli, demo_model):
    common = ("--strategy", "sample", "--seed", "3", "--device", "cpu", "--dtype", "float32", "--json")
    stepped = cli("next-token", "Once upon a time", "--steps", "12", *common)
    written = cli("generate", "Once upon a time", "-n", "12", *common)
    assert stepped.exit_code == 0 and written.exit_code == 0, stepped.stderr + written.stderr
    assert [s["chosen"]["id"] for s in stepped.json()["steps"]] == written.json()["token_ids"]
