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
    r = cli("next-token", "The cat sat", "-m", tiny_models["gpt2"], "--top-k", "4", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    assert len(data["candidates"]) == 4
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
        (["x", "--top-k", "0"], "top-k"),
        (["x", "--top-p", "1.5"], "top-p"),
        (["x", "--temperature", "-1"], "temperature"),
        (["x", "--strategy", "beam"], "strategy"),
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
    r = cli("next-token", "The capital of France is", "--device", "cpu", "--dtype", "float32", "--json", "-k", "3")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    with torch.no_grad():
        probs = torch.softmax(demo_model.model(torch.tensor([data["input_ids"]])).logits[0, -1], -1)
    assert data["candidates"][0]["id"] == int(probs.argmax())
    assert data["candidates"][0]["prob"] == pytest.approx(float(probs.max()), abs=1e-5)


@pytest.mark.parametrize("strategy", ["greedy", "sample"])
def test_steps_write_what_generate_writes(cli, tiny_models, strategy):
    # One sampling path: the same strategy and seed give the same tokens in next-token --steps and generate.
    folder = str(tiny_models["llama"])
    stepped = cli("next-token", "Once upon", "-m", folder, "--strategy", strategy, "--seed", "3", "--steps", "12",
                  "--json")
    written = cli("generate", "Once upon", "-m", folder, "--strategy", strategy, "--seed", "3", "-n", "12", "--json")
    assert stepped.exit_code == 0 and written.exit_code == 0, stepped.stderr + written.stderr
    assert [s["chosen"]["id"] for s in stepped.json()["steps"]] == written.json()["token_ids"]


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
