"""``llmscope attention`` through main(): JSON, rendering, export, bad values."""

from __future__ import annotations

import pytest
import torch

from llmscope import loading

PROMPT = "The cat sat on the mat because it was tired."


def test_json_matches_transformers(cli, tiny_models):
    folder = str(tiny_models["llama"])
    r = cli("attention", PROMPT, "-m", folder, "--device", "cpu", "--layer", "-1", "--head", "1", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    # the top-level keys are pinned in tests/test_json_keys.py, with every command's
    assert data["layer"] == 1 and data["head"] == 1
    assert data["kind"]["num_attention_heads"] == 4 and data["kind"]["num_key_value_heads"] == 2
    assert "eager attention" in r.stderr
    lm = loading.load(folder, device="cpu", attn_implementation="eager")
    ids = lm.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = lm.model(ids, output_attentions=True).attentions[1][0, 1]
    assert len(data["tokens"]) == ids.shape[1]
    torch.testing.assert_close(torch.tensor(data["weights"]), expected)


def test_all_layers_holds_every_head_rounded(cli, tiny_models):
    folder = str(tiny_models["llama"])
    r = cli("attention", PROMPT, "-m", folder, "--device", "cpu", "--all-layers", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    lm = loading.load(folder, device="cpu", attn_implementation="eager")
    ids = lm.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = lm.model(ids, output_attentions=True).attentions
    assert [entry["layer"] for entry in data["layers"]] == list(range(len(expected)))
    for entry, weights in zip(data["layers"], expected):
        got = torch.tensor(entry["heads"], dtype=torch.float64)  # (heads, query, key)
        assert got.shape == weights[0].shape
        torch.testing.assert_close(got, weights[0].double(), atol=5.1e-5, rtol=0)  # 4 decimals


def test_json_with_token_adds_ranking(cli, tiny_models):
    r = cli("attention", PROMPT, "-m", str(tiny_models["gpt2"]), "--device", "cpu", "--token", "3", "--top", "2",
            "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    assert data["head"] is None and data["query"]["position"] == 3
    assert len(data["ranking"]) == 2 and all(len(x["top"]) == 2 for x in data["ranking"])
    assert all(t["position"] <= 3 for x in data["ranking"] for t in x["top"])


def test_rendering_at_80_columns_and_export(cli, tiny_models, tmp_path):
    svg = tmp_path / "attention.svg"
    long_prompt = " ".join(["The cat sat on the mat."] * 12)
    r = cli("attention", long_prompt, "-m", str(tiny_models["llama"]), "--device", "cpu", "--token", "cat",
            "--export", svg)
    assert r.exit_code == 0, r.stderr
    assert "Attention, layer 1" in r.stdout
    assert "GQA: 4 query heads in 2 groups of 2" in r.stdout
    assert "causal" in r.stdout
    assert "Where" in r.stdout and "looks" in r.stdout
    assert "Showing tokens 0-" in r.stdout  # truncated to the console width
    assert all(len(line) <= 80 for line in r.stdout.splitlines())
    assert svg.read_text().startswith("<svg")


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--layer", "5"], "layers"),
        (["--layer", "-3"], "layers"),
        (["--head", "9"], "heads"),
        (["--head", "-1"], "--head"),
        (["--token", "dog"], "not a word"),
        (["--export", "x.png"], "export"),
    ],
)
def test_bad_values_exit_2(cli, tiny_models, args, needle):
    r = cli("attention", PROMPT, "-m", str(tiny_models["llama"]), "--device", "cpu", *args)
    assert r.exit_code == 2
    assert needle in r.stderr
    errors = [line for line in r.stderr.splitlines() if "Error" in line]
    assert len(errors) == 1 and needle in errors[0]
    assert "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.slow
def test_demo_model_it_token(cli):
    r = cli("attention", PROMPT, "--token", "it", "--top", "3")
    assert r.exit_code == 0, r.stderr
    assert "sliding" in r.stdout and "full" in r.stdout
    assert "MQA" in r.stdout
