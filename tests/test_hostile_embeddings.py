"""Issue 34 item 7: ``embeddings`` estimates its work before doing it.

20,000 words reached 7 GB in 32 s (and 'bug in llmscope' under a cap); 3,000 were still running after
200 s: the words x words cosines are quadratic, so the words (and context sentences) are bounded
before any load, and what is left is estimated after the load, before any vector is computed, against
the same budget as the forward-pass views (``LLMSCOPE_MAX_WORK_BYTES``).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

USAGE, RUNTIME = 2, 1
CEILING = 4 * 2**30


def run_capped(*args: object, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CEILING, CEILING))

    return subprocess.run([sys.executable, "-m", "llmscope", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, preexec_fn=cap, timeout=timeout)


def words(count: int) -> list[str]:
    return [f"w{i}" for i in range(count)]


@pytest.mark.parametrize("count", [3_000, 20_000])
def test_thousands_of_words_are_refused_before_loading(count, tiny_models):
    done = run_capped("embeddings", *words(count), "-m", tiny_models["llama"])
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert done.returncode == USAGE and len(errors) == 1 and done.stdout == "", done.stderr[-2000:]
    assert f"{count:,} words: at most 256" in errors[0]
    assert "Loading" not in done.stderr  # refused before the model loads


def test_too_many_context_sentences_are_refused(cli, one_error_line, tiny_models):
    contexts = [a for i in range(257) for a in ("--context", f"The cat number {i} sat.")]
    line = one_error_line(cli("embeddings", "-m", tiny_models["gpt2"], "--word", "cat", *contexts), USAGE)
    assert "257 --context: at most 256" in line, line


def test_the_estimate_under_a_budget_is_one_line_naming_it(cli, one_error_line, tiny_models, monkeypatch):
    """256 words (the most) on the tiny llama: 256 x 256 cosines and 400 x 256 neighbour scores, about
    3 MiB, against a 100 KiB budget: exit 1, the estimate and its largest parts named, nothing computed."""
    monkeypatch.setenv("LLMSCOPE_MAX_WORK_BYTES", "100KiB")
    line = one_error_line(cli("embeddings", *words(256), "-m", tiny_models["llama"]), RUNTIME)
    assert "embeddings of 256 words would need about 3.02 MiB" in line, line
    assert "cosines of 256 x 256 words" in line and "scores of 400 rows x 256 words" in line, line
    assert "allowed by LLMSCOPE_MAX_WORK_BYTES" in line and "--neighbors 0" in line, line


def test_a_normal_call_fits_the_same_budget(cli, tiny_models, monkeypatch):
    monkeypatch.setenv("LLMSCOPE_MAX_WORK_BYTES", "100KiB")
    result = cli("embeddings", "cat", "dog", "-m", tiny_models["llama"], "--json")
    assert result.exit_code == 0, result.stderr
    similarity = result.json()["similarity"]
    assert len(similarity) == 2 and similarity[0][0] == pytest.approx(1.0) and similarity[1][1] == pytest.approx(1.0)


def test_context_sentences_count_in_the_estimate(cli, one_error_line, tiny_models, monkeypatch):
    monkeypatch.setenv("LLMSCOPE_MAX_WORK_BYTES", "2KiB")
    sentences = [a for s in ("The cat sat.", "A cat ran.", "My cat slept.") for a in ("--context", s)]
    line = one_error_line(cli("embeddings", "-m", tiny_models["gpt2"], "--word", "cat", *sentences), RUNTIME)
    assert "embeddings of 0 words and 3 sentences would need" in line and "--context" in line, line


def test_the_most_words_still_run(cli, tiny_models):
    """256 words, the limit, end in a 256 x 256 table (the default budget)."""
    result = cli("embeddings", *words(256), "-m", tiny_models["llama"], "--json", "-k", "1")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert len(data["similarity"]) == 256 and {len(row) for row in data["similarity"]} == {256}


def test_the_estimate_is_quadratic_in_the_words(tiny_models):
    from transformers import AutoConfig

    from llmscope.memory.forward_guard import embeddings_work

    config = AutoConfig.from_pretrained(tiny_models["llama"])

    def cosines(count: int) -> int:
        work = embeddings_work(config, [1] * count, vocab_rows=400, neighbors=0, layer=False, analogy=False,
                               context_tokens=[], dtype="float32")
        return work.parts[f"cosines of {count:,} x {count:,} words"]

    assert cosines(200) == 4 * cosines(100) == 4 * 100 * 100 * 40
