"""llmscope.forward.scoring against transformers called directly: loss, log-softmax, and strided windows."""

from __future__ import annotations

import math

import pytest

from llmscope.forward import scoring
from llmscope.forward import logprobs as logprobs_module
from llmscope.errors import UsageError
from llmscope.loading.model import LoadSpec

TEXT = "The cat sat on the mat because it was tired. Paris is the capital of France."
LONG = " ".join([
    "The quick brown fox jumps over the lazy dog. The dog was not amused.",
    "Once upon a time, there was a little robot who loved to read books about the sea.",
    "Attention is all you need. Transformers process tokens in parallel.",
    "naïve café résumé — 東京は日本の首都です。 😀",
] * 2)
pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def tiny(tiny_models):
    import llmscope

    return {name: llmscope.load(tiny_models[name], device="cpu", dtype="float32") for name in ("gpt2", "llama")}


def _reference(lm, ids):
    """transformers directly: the loss, and a log-softmax of the raw logits."""
    import torch

    tensor = torch.tensor([ids])
    with torch.inference_mode():
        out = lm.model(tensor, labels=tensor)
    return out.loss.item(), torch.log_softmax(out.logits[0].float(), dim=-1)  # (tokens, vocab)


def _check_against_transformers(lm, text):
    result = scoring.score_text(text, lm)
    ids = lm.tokenizer(text)["input_ids"]
    loss, logprobs = _reference(lm, ids)
    assert result.num_tokens == len(ids) and result.scored == len(ids) - 1 and result.windows == 1
    assert [t.id for t in result.tokens] == ids
    assert result.perplexity == pytest.approx(math.exp(loss), rel=1e-5)
    assert result.mean_nll == pytest.approx(loss, rel=1e-5)
    assert result.bits_per_byte == pytest.approx(loss * (len(ids) - 1) / math.log(2) / len(text.encode()), rel=1e-5)
    first = result.tokens[0]
    assert first.logprob is None and first.rank is None and first.top is None
    for i, token in enumerate(result.tokens[1:], 1):
        row = logprobs[i - 1]
        assert token.logprob == pytest.approx(float(row[ids[i]]), abs=1e-5)
        assert token.rank == int((row > row[ids[i]]).sum()) + 1
        assert token.top.id == int(row.argmax())
        assert token.top.prob == pytest.approx(math.exp(float(row.max())), rel=1e-5)
    return result


@pytest.mark.parametrize("name", ["gpt2", "llama"])  # no BOS: the text's first token unscored; with BOS: all
def test_one_pass_equals_the_models_own_loss(tiny, name):
    _check_against_transformers(tiny[name], TEXT)


def test_split_head_in_chunks_equals_the_model(tiny, monkeypatch):
    """The long-window path (decoder, then the head a few rows at a time) gives the same numbers."""
    monkeypatch.setattr(logprobs_module, "FULL_LOGITS_FLOATS", 0)
    lm = tiny["llama"]
    monkeypatch.setattr(logprobs_module, "CHUNK_FLOATS", 3 * lm.model.get_output_embeddings().weight.shape[0])  # 3 rows
    calls = []
    head = logprobs_module._head_logits
    monkeypatch.setattr(logprobs_module, "_head_logits", lambda *a: calls.append(1) or head(*a))
    _check_against_transformers(lm, TEXT)
    assert len(calls) > 5  # the probe, then chunks of 3 rows


def test_reducing_a_few_rows_at_a_time_changes_no_number(tiny, monkeypatch):
    """The CPU reduces logits in blocks of rows (to stay in the cache): bit for bit what one block gives."""
    lm = tiny["llama"]
    whole = scoring.score_text(LONG, lm)
    monkeypatch.setattr(logprobs_module, "BLOCK_FLOATS", 2 * lm.model.get_output_embeddings().weight.shape[0])
    blocked = scoring.score_text(LONG, lm)
    assert [(t.logprob, t.rank, t.top) for t in blocked.tokens] == [(t.logprob, t.rank, t.top) for t in whole.tokens]


def test_split_head_applies_the_final_softcap_as_the_model(tiny_models, tmp_path, monkeypatch):
    """Gemma 2's final_logit_softcapping in the split path (head into a reused buffer, then
    tanh): the model's own loss and log-softmax, with the softcap saturating the logits."""
    import torch
    from transformers import AutoTokenizer, Gemma2Config, Gemma2ForCausalLM

    import llmscope

    tok = AutoTokenizer.from_pretrained(tiny_models["llama"])
    torch.manual_seed(1)
    config = Gemma2Config(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, vocab_size=len(tok), final_logit_softcapping=None, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id,
    )
    model = Gemma2ForCausalLM(config)
    ids = torch.tensor([tok(TEXT)["input_ids"]])
    with torch.inference_mode():
        raw = model(ids).logits
        model.config.final_logit_softcapping = cap = float(raw.abs().max()) / 2  # tanh bends, short of saturating
        assert not torch.allclose(model(ids).logits, raw, atol=1e-3 * cap)  # the cap is doing something
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    lm = llmscope.load(str(tmp_path), device="cpu", dtype="float32")
    assert lm.config.final_logit_softcapping == cap
    vocab = len(tok)
    monkeypatch.setattr(logprobs_module, "FULL_LOGITS_FLOATS", 0)
    monkeypatch.setattr(logprobs_module, "CHUNK_FLOATS", 5 * vocab)
    monkeypatch.setattr(logprobs_module, "BLOCK_FLOATS", 2 * vocab)
    calls = []
    head = logprobs_module._head_logits
    monkeypatch.setattr(logprobs_module, "_head_logits", lambda *a: calls.append(1) or head(*a))
    _check_against_transformers(lm, TEXT)
    assert len(calls) > 2  # the probe agreed: the split path ran, chunks of 5 rows


def _independent(lm, ids, window, stride):
    """The rule, one token at a time: token t is read with the context of the first window holding
    it and a token before it; windows start every min(stride, window - 1) tokens. Returns each
    token's log-probability and the set of window starts the tokens were read from."""
    import torch

    step = min(stride, window - 1)
    out, begins = [], set()
    for t in range(1, len(ids)):
        begin = max(0, math.ceil((t - window + 1) / step)) * step
        begins.add(begin)
        with torch.inference_mode():
            logits = lm.model(torch.tensor([ids[begin : t + 1]])).logits[0, -2].float()
        out.append(float(torch.log_softmax(logits, dim=-1)[ids[t]]))
    return out, begins


@pytest.mark.parametrize("window,stride", [(12, 5), (12, 12), (2, 1), (9, 8)])
def test_strided_equals_an_independent_implementation(tiny, window, stride):
    lm = tiny["llama"]
    result = scoring.score_text(LONG, lm, window=window, stride=stride)
    ids = lm.tokenizer(LONG)["input_ids"]
    assert len(ids) > 8 * window  # much longer than the window
    expected, begins = _independent(lm, ids, window, stride)
    got = [t.logprob for t in result.tokens[1:]]
    assert got == pytest.approx(expected, abs=1e-4)
    assert result.scored == len(ids) - 1
    assert result.window == window and result.stride == min(stride, window - 1)
    assert result.windows == len(begins)  # one forward pass per window the tokens are read from
    assert begins == set(range(0, max(begins) + 1, result.stride))
    assert result.mean_nll == pytest.approx(-sum(expected) / len(expected), rel=1e-5)


def test_plan_scores_every_token_once():
    for n, window, stride in [(100, 10, 3), (100, 10, 10), (11, 10, 9), (5, 10, 10), (2, 2, 1), (57, 7, 1)]:
        plan = scoring.plan_windows(n, window, stride)
        targets = [t for _, end, first in plan for t in range(first, end)]
        assert targets == list(range(1, n))
        assert all(end - begin <= window and first > begin for begin, end, first in plan)


def test_masked_models_are_refused(tiny_models):
    with pytest.raises(UsageError, match="masked language model") as caught:
        scoring.score_text(TEXT, LoadSpec(model=str(tiny_models["bert"]), device="cpu"))
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    "text,window,stride,message",
    [("", None, None, "empty"), ("hi", 1, None, "at least 2"), ("hi", 8, 0, "at least 1"),
     ("hi", 4, 5, "stride=5 is larger than window=4"), ("bad \udcff", None, None, "surrogate")],
)
def test_bad_values_fail_before_loading(monkeypatch, text, window, stride, message):
    from llmscope import loading

    monkeypatch.setattr(loading, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    with pytest.raises(UsageError, match=message):
        scoring.score_text(text, "gpt2", window=window, stride=stride)
    with pytest.raises(UsageError, match=message):
        scoring.compare_scores(text, ["gpt2", "gpt2"], window=window, stride=stride)


def test_window_longer_than_the_context_is_refused(tiny):
    with pytest.raises(UsageError, match="longer than the model's context of 256"):
        scoring.score_text(TEXT, tiny["llama"], window=257)


def test_compare_side_by_side(tiny):
    comparison = scoring.compare_scores(TEXT, [tiny["gpt2"], tiny["llama"]], spans=5)
    assert [m.model for m in comparison.models] == [tiny["gpt2"].source.display_name, tiny["llama"].source.display_name]
    for model, lm in zip(comparison.models, (tiny["gpt2"], tiny["llama"])):
        alone = scoring.score_text(TEXT, lm)
        assert model.perplexity == pytest.approx(alone.perplexity, rel=1e-6)
    spans = comparison.disagreements
    assert 0 < len(spans) <= 5
    assert [d.spread for d in spans] == sorted((d.spread for d in spans), reverse=True)
    for d in spans:
        assert d.spread == pytest.approx(max(d.bits) - min(d.bits))
        assert TEXT[d.start : d.end] == d.text
        assert d.start > 0  # "The" is gpt2's unscored first token: left out


def test_bits_spread_over_characters_add_up(tiny):
    """Every text token of the BOS model is scored: the characters' shares add up to the total bits."""
    result = scoring.score_text(TEXT, tiny["llama"])
    bits, unscored = scoring._char_bits(result)
    assert not any(unscored)
    assert sum(bits) == pytest.approx(result.total_nll / math.log(2), rel=1e-6)


@pytest.mark.slow
def test_embedded_gemma_equals_transformers(demo_model, monkeypatch):
    text = "The capital of France is Paris. Bananas are purple and the moon is made of cheese."
    result = _check_against_transformers(demo_model, text)
    assert result.tokens[0].token == "<bos>" and result.scored == result.num_tokens - 1
    # The split path (decoder, then the 262k head a chunk of rows at a time) on the real model.
    monkeypatch.setattr(logprobs_module, "FULL_LOGITS_FLOATS", 0)
    split = scoring.score_text(text, demo_model)
    assert [t.logprob for t in split.tokens[1:]] == pytest.approx([t.logprob for t in result.tokens[1:]], abs=1e-4)
    assert [t.rank for t in split.tokens] == [t.rank for t in result.tokens]


def test_progress_counts_the_windows(tiny):
    """The core reports one bar over the windows (the CLI draws it on stderr); it prints nothing."""
    import contextlib

    from llmscope import progress

    bars = []

    class Recorder(progress.Reporter):
        @contextlib.contextmanager
        def progress(self, description, total=None, *, unit="items"):
            bar = {"description": description, "total": total, "done": 0}
            bars.append(bar)

            class Bar(progress.Progress):
                def advance(self, n=1):
                    bar["done"] += n

            yield Bar()

    old = progress.set_reporter(Recorder())
    try:
        result = scoring.score_text(LONG, tiny["gpt2"], window=16, stride=8)
    finally:
        progress.set_reporter(old)
    assert bars == [{"description": "Scoring windows", "total": result.windows, "done": result.windows}]
    assert result.windows > 10
