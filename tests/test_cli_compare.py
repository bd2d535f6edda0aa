"""``llmscope compare`` through main(): JSON rows equal ``generate``, rendering, bad values."""

from __future__ import annotations

import pytest


def test_json_rows_equal_generate(cli, tiny_models):
    folder = str(tiny_models["llama"])
    common = ("-m", folder, "--device", "cpu", "--max-new-tokens", "8", "--seed", "2")
    r = cli("compare", "The quick brown", *common, "--strategies", "greedy,top-p=0.7,top-k,beam=2", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    rows = data["results"]
    assert [x["strategy"] for x in rows] == ["greedy", "top-p", "top-k", "beam"]
    for row in rows:
        for key in ("strategy", "text", "token_ids", "mean_logprob", "distinct_1", "distinct_2", "repetition",
                    "num_tokens", "total_time"):
            assert key in row
    alone = {
        "greedy": cli("generate", "The quick brown", *common, "--json").json(),
        "top-p": cli("generate", "The quick brown", *common, "--top-p", "0.7", "--json").json(),
        "top-k": cli("generate", "The quick brown", *common, "--strategy", "top-k", "--json").json(),
        "beam": cli("generate", "The quick brown", *common, "--num-beams", "2", "--json").json(),
    }
    for row in rows:
        assert row["token_ids"] == alone[row["strategy"]]["token_ids"], row["strategy"]
        assert row["settings"] == alone[row["strategy"]]["settings"]
    assert data["batched"] == ["greedy", "top-p 0.7", "top-k 50"]


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
        (["--top-k", "0"], "--top-k"),
        (["--max-new-tokens", "0"], "--max-new-tokens"),
        (["--system", "Be kind."], "--system needs --chat"),
    ],
)
def test_bad_values_exit_2_before_loading(cli, args, needle):
    r = cli("compare", "hi", "-m", "/no/such/model", *args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
