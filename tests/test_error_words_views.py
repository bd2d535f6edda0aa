"""The views' errors in two languages (issue 27): a Python caller reads the function's parameters
(``head=99``, ``chat=True``), a person at the CLI reads the running command's own options (``--head 99``,
``--chat``), from the one error the core raised."""

from __future__ import annotations

import pytest

from conftest import api_error as _api  # one error check, in the API words
from conftest import cli_error as _cli  # and as the CLI writes it

from llmscope.forward import scoring
from llmscope.forward.attention import attention
from llmscope.forward.word_options import check_options, parse_analogy
from llmscope.forward.layers import layers
from llmscope.loading.model import LoadSpec


@pytest.fixture
def no_load(monkeypatch):
    """Fail the test if any weights load: these errors all come before."""
    monkeypatch.setattr("llmscope.loading.load", lambda *a, **k: pytest.fail("a model was loaded"))


HEADS = "this model has 4 attention heads (use 0 to 3)"  # the tiny llama of conftest


def test_attention_head_out_of_range(cli, one_error_line, tiny_models, no_load):
    folder = str(tiny_models["llama"])
    api = _api(lambda: attention("The cat sat", model=LoadSpec(model=folder, device="cpu"), head=99))
    assert api == f"head=99: {HEADS}"
    line = _cli(cli, one_error_line, "attention", "The cat sat", "-m", folder, "--device", "cpu", "--head", "99")
    assert f"--head 99: {HEADS}" in line and "head=" not in line


def test_embeddings_analogy_and_its_words(cli, one_error_line, no_load):
    hint = "(write it like 'king - man + woman')"
    assert _api(lambda: parse_analogy("king - - man")) == f"analogy='king - - man': two signs in a row {hint}"
    line = _cli(cli, one_error_line, "embeddings", "--analogy", "king - - man", "-m", "/nonexistent/model")
    assert f"--analogy 'king - - man': two signs in a row {hint}" in line

    # a flag (plot=True: --plot) and a list parameter whose option has its own name (contexts: --context)
    assert _api(lambda: check_options(["king"], plot=True)) == "plot=True needs at least two words"
    line = _cli(cli, one_error_line, "embeddings", "king", "--plot", "-m", "/nonexistent/model")
    assert "--plot needs at least two words" in line and "True" not in line
    needs = "the word to follow through the sentences"
    assert _api(lambda: check_options([], contexts=["a bank", "the bank"])) == f"contexts needs word: {needs}"
    line = _cli(cli, one_error_line, "embeddings", "--context", "a bank", "--context", "the bank",
                "-m", "/nonexistent/model")
    assert f"--context needs --word: {needs}" in line


def test_score_window_and_stride(cli, one_error_line, no_load):
    hint = "(a window of N tokens scores N-1 of them)"
    assert _api(lambda: scoring.score_text("hello", "gpt2", window=1)) == f"window=1: must be at least 2 {hint}"
    line = _cli(cli, one_error_line, "score", "hello", "--window", "1")
    assert f"--window 1: must be at least 2 {hint}" in line
    assert _api(lambda: scoring.compare_scores("hello", ["gpt2", "gpt2"], window=4, stride=5)).startswith(
        "stride=5 is larger than window=4 (")
    line = _cli(cli, one_error_line, "score", "hello", "--window", "4", "--stride", "5")
    assert "--stride 5 is larger than --window 4 (" in line


def test_layers_chat_on_a_masked_model(cli, one_error_line, tiny_models):
    folder = str(tiny_models["bert"])
    masked = "is for chat (causal) models; this is a masked LM"
    assert _api(lambda: layers("the cat", model=LoadSpec(model=folder, device="cpu"), chat=True)) == (
        f"chat=True {masked}")
    line = _cli(cli, one_error_line, "layers", "the cat", "-m", folder, "--device", "cpu", "--chat")
    assert f"--chat {masked}" in line


def test_errors_only_the_api_can_meet(no_load):
    # layers' --top stops 0 itself (min=1), so only the API meets the core's check
    assert _api(lambda: layers("the cat", model="gpt2", top=0)) == "top=0: must be at least 1"
    assert _api(lambda: scoring.compare_scores("hello", ["gpt2"])) == (
        "comparing needs at least two models (give a second model to compare with)")
