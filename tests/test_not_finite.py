"""A model whose next-token probabilities are not finite (NaN or inf weights, or a dtype that overflows)
ends every decoding command in one error line that says at which step (issue 34, item 8).

The broken models are the tiny GPT-2 of conftest with one row of its position embeddings set to NaN
(or inf): the row of the position the second generated token is read at. Steps 1 and 2 read finite
positions; step 3 is the first whose logits are NaN, whatever token steps 1 and 2 chose, so every
strategy must name step 3 and every run of 2 tokens must succeed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPT = "The cat sat on the mat"
BROKEN_STEP = 3


def _with_position_row(source: Path, folder: Path, value: float) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    prompt_tokens = len(tokenizer(PROMPT)["input_ids"])
    # step k chooses from the logits at position prompt_tokens + k - 2
    with torch.no_grad():
        model.transformer.wpe.weight[prompt_tokens + BROKEN_STEP - 2] = value
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def nan_model(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _with_position_row(tiny_models["gpt2"], tmp_path_factory.mktemp("nan-gpt2"), float("nan"))


@pytest.fixture(scope="module")
def inf_model(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _with_position_row(tiny_models["gpt2"], tmp_path_factory.mktemp("inf-gpt2"), float("inf"))


@pytest.fixture(scope="module")
def overflowing_llama(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with finite weights (each below float16's 65504) whose logits overflow float16:
    a final norm of 60000 times an LM-head row of 60000 is 3.6e9 per product, fine in float32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("big-llama")
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32)
    with torch.no_grad():
        model.model.norm.weight.fill_(60000.0)
        model.lm_head.weight[7] = 60000.0
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_models["llama"]).save_pretrained(folder)
    return folder


DECODING = {
    "generate sample": ["generate", "--strategy", "sample", "-n", "5"],
    "generate top-p": ["generate", "--strategy", "top-p", "--top-p", "0.5", "-n", "5"],
    "generate greedy": ["generate", "-n", "5"],
    "generate beam": ["generate", "--strategy", "beam", "-n", "5"],
    "generate without the KV cache": ["generate", "--strategy", "sample", "--no-kv-cache", "-n", "5"],
    "generate --json": ["generate", "--strategy", "sample", "-n", "5", "--json"],
    "compare": ["compare", "-n", "5"],
    "compare beam only": ["compare", "--strategies", "beam", "-n", "5"],
    "next-token steps sample": ["next-token", "--steps", "5", "--strategy", "sample"],
    "next-token steps top-p": ["next-token", "--steps", "5", "--strategy", "top-p"],
    "next-token steps greedy": ["next-token", "--steps", "5"],
}


# generate streams its text to stdout as it is written: the tokens of the finite steps are already out
STREAMED = ("generate sample", "generate top-p", "generate greedy", "generate without the KV cache")


def _error_line(result, one_error_line, streamed: bool) -> str:
    """The one error line; a streamed run keeps the text it wrote before the broken step on stdout,
    as one line of its own (the error starts a fresh line on a terminal)."""
    if not streamed:
        return one_error_line(result, 1)
    assert result.stdout.startswith(PROMPT) and result.stdout.endswith("\n"), repr(result.stdout)
    assert result.stdout.count("\n") == 1, repr(result.stdout)
    return one_error_line(dataclasses.replace(result, stdout=""), 1)


@pytest.mark.parametrize("name", DECODING)
def test_nan_weights_end_in_one_line_naming_the_step(cli, one_error_line, nan_model: Path, name: str):
    args = DECODING[name]
    line = _error_line(cli(args[0], "-m", nan_model, PROMPT, *args[1:]), one_error_line, name in STREAMED)
    assert f"the model's next-token probabilities are not finite at step {BROKEN_STEP} (NaN in its logits)" in line
    assert "its weight transformer.wpe.weight holds NaN" in line, line


@pytest.mark.parametrize("name", ["generate sample", "generate beam", "compare", "next-token steps sample"])
def test_inf_weights_are_named_as_inf(cli, one_error_line, inf_model: Path, name: str):
    args = DECODING[name]
    line = _error_line(cli(args[0], "-m", inf_model, PROMPT, *args[1:]), one_error_line, name in STREAMED)
    assert f"not finite at step {BROKEN_STEP}" in line, line
    assert "its weight transformer.wpe.weight holds inf" in line, line


@pytest.mark.parametrize("strategy", ["sample", "top-p", "greedy", "beam"])
def test_the_steps_before_the_broken_one_still_decode(cli, nan_model: Path, strategy: str):
    """Two tokens read only finite positions: no error, and the model's probabilities are numbers."""
    result = cli("generate", "-m", nan_model, PROMPT, "--strategy", strategy, "-n", str(BROKEN_STEP - 1),
                 "--json")
    assert result.exit_code == 0, result.stderr
    tokens = result.json()["tokens"]
    assert 1 <= len(tokens) <= BROKEN_STEP - 1
    assert all(0 < token["prob"] <= 1 for token in tokens), tokens


def test_a_dtype_that_overflows_is_named_with_the_dtype_to_use(cli, one_error_line, overflowing_llama: Path):
    line = one_error_line(cli("generate", "-m", overflowing_llama, "hello", "--dtype", "float16",
                              "--strategy", "sample", "-n", "3"), 1)
    assert "not finite at step 1" in line, line
    assert "its weights are finite, so its activations overflow in float16" in line, line
    assert "--dtype float32" in line, line
    fine = cli("generate", "-m", overflowing_llama, "hello", "--dtype", "float32", "--strategy", "sample",
               "-n", "3", "--json")
    assert fine.exit_code == 0, fine.stderr


def test_the_api_raises_a_model_format_error(nan_model: Path):
    import llmscope
    from llmscope.errors import ModelFormatError

    with pytest.raises(ModelFormatError, match=f"not finite at step {BROKEN_STEP}"):
        llmscope.generate(PROMPT, model=str(nan_model), settings="sample")
