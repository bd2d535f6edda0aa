"""``llmscope compare`` through main(): JSON rows against transformers, rendering, bad values."""

from __future__ import annotations

import pytest


def test_json_rows_against_transformers(cli, tiny_models):
    """Greedy and beam rows equal ``model.generate``; the sampled rows (their RNG is not transformers')
    keep inside the top-p / top-k sets recomputed here; every row's probabilities are the softmax of
    the raw logits of one teacher-forced forward pass."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = str(tiny_models["llama"])
    prompt = "The quick brown"
    r = cli("compare", prompt, "-m", folder, "--device", "cpu", "--max-new-tokens", "8", "--seed", "2",
            "--strategies", "greedy,top-p=0.7,top-k,beam=2", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()  # (its top-level keys are pinned in test_json_keys)
    rows = {row["strategy"]: row for row in data["results"]}
    assert [row["strategy"] for row in data["results"]] == ["greedy", "top-p", "top-k", "beam"]
    assert data["batched"] == ["greedy", "top-p 0.7", "top-k 50"]  # beam runs on its own; top-k's default is 50

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = AutoTokenizer.from_pretrained(folder)(prompt, return_tensors="pt")["input_ids"]
    n = ids.shape[-1]
    with torch.no_grad():
        kwargs = dict(attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=8)
        assert rows["greedy"]["token_ids"] == model.generate(ids, **kwargs)[0, n:].tolist()
        assert rows["beam"]["token_ids"] == model.generate(ids, num_beams=2, **kwargs)[0, n:].tolist()
    logits = {}
    for name, row in rows.items():
        with torch.no_grad():  # one teacher-forced pass: the logits each of the 8 tokens was chosen from
            logits[name] = model(torch.cat([ids, torch.tensor([row["token_ids"]])], dim=-1)).logits[0, n - 1 : -1]
        assert row["num_tokens"] == len(row["token_ids"]) == 8 and row["stop_reason"] == "length"
        assert row["settings"]["temperature"] == 1.0
        expected = torch.softmax(logits[name], dim=-1)[torch.arange(8), torch.tensor(row["token_ids"])]
        torch.testing.assert_close(torch.tensor([t["prob"] for t in row["tokens"]]), expected, rtol=1e-4, atol=1e-6)
        assert row["mean_logprob"] == pytest.approx(float(expected.log().mean()), abs=1e-4)
    for step, token in enumerate(rows["top-k"]["token_ids"]):
        assert token in torch.topk(logits["top-k"][step], 50).indices.tolist(), step
    assert rows["top-k"]["candidates_kept"] == [50] * 8 and rows["greedy"]["candidates_kept"] == [1] * 8
    for step, token in enumerate(rows["top-p"]["token_ids"]):
        sorted_probs, sorted_ids = torch.sort(torch.softmax(logits["top-p"][step], -1), descending=True)
        size = int((torch.cumsum(sorted_probs, 0) < 0.7).sum()) + 1  # the smallest set whose mass reaches 0.7
        assert token in sorted_ids[:size].tolist(), step
        assert rows["top-p"]["candidates_kept"][step] == size, step
    groups: dict[tuple[int, ...], list[str]] = {}
    for row in data["results"]:
        groups.setdefault(tuple(row["token_ids"]), []).append(row["label"])
    assert data["coinciding"] == [labels for labels in groups.values() if len(labels) > 1]


def test_rows_that_write_the_same_tokens_are_named(cli, tiny_models):
    """top-k=1 draws from the argmax alone: it writes greedy's tokens, and the JSON and the table say so."""
    folder = str(tiny_models["llama"])
    args = ("compare", "The quick brown", "-m", folder, "--device", "cpu", "-n", "6", "-S", "greedy,top-k=1")
    r = cli(*args, "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    assert data["results"][0]["token_ids"] == data["results"][1]["token_ids"]
    assert data["coinciding"] == [["greedy", "top-k 1"]] and data["warnings"] == []
    table = cli(*args)
    assert table.exit_code == 0, table.stderr
    assert "greedy and top-k 1 wrote the same tokens" in table.stdout


def test_default_table_at_80_columns(cli, tiny_models, tmp_path):
    svg = tmp_path / "compare.svg"
    r = cli("compare", "Once upon a time", "-m", str(tiny_models["gpt2"]), "--device", "cpu", "--max-new-tokens",
            "10", "--export", svg)
    assert r.exit_code == 0, r.stderr
    for needle in ("greedy", "sample", "top-k", "top-p", "beam", "log-p", "rep", "one batch"):
        assert needle in r.stdout
    assert all(len(line) <= 80 for line in r.stdout.splitlines())
    assert svg.read_text().startswith("<svg")


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--strategies", "greedy,nope"], "unknown strategy 'nope'"),
        (["--strategies", "greedy,,beam"], "empty strategy"),
        (["--strategies", "top-p=2"], "--top-p"),
        (["--strategies", "greedy=3"], "takes no value"),
        (["--strategies", "top-k=x"], "not a number"),
        (["--top-p", "-0.5"], "--top-p"),
        (["--temperature", "-2"], "--temperature"),
        (["--top-k", "0"], "--top-k 0: must be 1 or more"),
        (["--max-new-tokens", "0"], "--max-new-tokens"),
        (["--system", "Be kind."], "--system needs --chat"),
    ],
)
def test_bad_values_exit_2_before_loading(cli, args, needle):
    r = cli("compare", "hi", "-m", "/no/such/model", *args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
