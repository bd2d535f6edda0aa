"""next_token(): probabilities equal transformers' own softmax; steps equal model.generate and llmscope's
generate (one sampling path); masks; errors."""

from __future__ import annotations

import math

import pytest
import torch

import llmscope
from llmscope.errors import UsageError
from llmscope import decoding
from llmscope.decoding import sampling
from llmscope.decoding.next_token import next_token
from llmscope.decoding.sampling import settings_for
from llmscope.decoding.stepping import stepper


@pytest.fixture(scope="module")
def loaded(tiny_models):
    return {name: llmscope.load(str(path), device="cpu", dtype="float32") for name, path in tiny_models.items()}


def _reference_probs(lm, ids):
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids])).logits[0, -1]
    return torch.softmax(logits, dim=-1)


@pytest.mark.parametrize("name", ["gpt2", "llama", "mixtral"])
def test_probabilities_equal_transformers(loaded, name):
    lm = loaded[name]
    result = next_token("The cat sat on the", model=lm, rows=7)
    ids = lm.tokenizer("The cat sat on the")["input_ids"]
    assert result.input_ids == ids
    probs = _reference_probs(lm, ids)
    expected = torch.topk(probs, 7)
    assert [c.id for c in result.candidates] == expected.indices.tolist()
    for c in result.candidates:
        assert c.prob == pytest.approx(float(probs[c.id]), abs=1e-5)
        assert c.logprob == pytest.approx(math.log(float(probs[c.id])), abs=1e-4)
    assert result.candidates[-1].cumulative_prob == pytest.approx(float(expected.values.sum()), abs=1e-5)
    entropy = float(-(probs * torch.log(probs)).sum())
    assert result.distribution.entropy == pytest.approx(entropy, abs=1e-4)


def test_show_reports_first_token_and_whole_text(loaded):
    lm = loaded["gpt2"]
    prompt = "The cat sat on"
    result = next_token(prompt, model=lm, show=[" the mat"])
    shown = result.distribution.shown[0]
    ids = lm.tokenizer(prompt)["input_ids"]
    extra = lm.tokenizer(" the mat", add_special_tokens=False)["input_ids"]
    assert shown.ids == extra and len(extra) > 1
    probs = _reference_probs(lm, ids)
    assert shown.prob == pytest.approx(float(probs[extra[0]]), abs=1e-5)
    assert shown.rank == int((probs > probs[extra[0]]).sum()) + 1
    # the whole text: the product of each token's probability, computed step by step here
    total, context = 0.0, list(ids)
    for t in extra:
        total += math.log(float(_reference_probs(lm, context)[t]))
        context.append(t)
    assert shown.sequence_logprob == pytest.approx(total, abs=1e-4)


@pytest.mark.parametrize("name", ["gpt2", "llama", "mixtral"])
def test_greedy_steps_equal_generate_and_reuse_the_cache(loaded, name):
    lm = loaded[name]
    result = next_token("Once upon a time", model=lm, steps=6)
    ids = torch.tensor([result.input_ids])
    generated = lm.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=6)
    assert [s.chosen.id for s in result.steps] == generated[0, ids.shape[1]:].tolist()
    run = stepper("Once upon a time", model=lm)
    for _ in range(6):
        run.step()
    assert run.forward_passes == 7  # the prompt once, then one pass per new token
    assert run.cache.get_seq_length() == len(result.input_ids) + 6


def test_step_candidates_equal_a_fresh_forward_pass(loaded):
    lm = loaded["llama"]
    run = stepper("The dog", model=lm, rows=5)
    run.step()
    run.advance(lm.tokenizer(" jumps", add_special_tokens=False)["input_ids"], typed=True, text=" jumps")
    probs = _reference_probs(lm, run.ids)
    for c in run.candidates:
        assert c.prob == pytest.approx(float(probs[c.id]), abs=1e-5)
    typed = run.steps[-1].chosen
    assert typed.typed and typed.token == " jumps"


def test_knobs_use_transformers_warpers(loaded):
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    lm = loaded["llama"]
    result = next_token("The cat", model=lm, rows=20, settings=settings_for("top-p", temperature=0.5, top_p=0.05))
    ids = torch.tensor([result.input_ids])
    with torch.no_grad():
        logits = lm.model(ids).logits[:, -1]
    tempered = TemperatureLogitsWarper(0.5)(ids, logits)
    final = TopPLogitsWarper(0.05)(ids, tempered)  # rows only choose the candidates shown: no TopK here
    probs = torch.softmax(final, -1)[0]
    for c in result.candidates:
        assert c.prob_temperature == pytest.approx(float(torch.softmax(tempered, -1)[0, c.id]), abs=1e-5)
        assert c.prob_sampling == pytest.approx(float(probs[c.id]), abs=1e-5)
        assert c.kept_top_p == bool(torch.isfinite(final)[0, c.id])
        assert c.kept_top_k is None  # no top-k filter
    assert result.distribution.sampling_kept == int(torch.isfinite(final).sum())
    assert result.distribution.top_p_kept == int(torch.isfinite(final).sum())
    assert result.distribution.top_k_kept is None
    assert len(result.candidates) == 20 and result.rows == 20
    assert result.reshaped and result.temperature == 0.5 and result.strategy == "top-p"


def test_top_k_filter_and_top_p_each_give_their_verdict(loaded):
    """With top-k and top-p together (as in generate), each candidate carries each filter's own verdict
    after the temperature, and the sampled column applies both, in transformers' order."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    lm = loaded["llama"]
    result = next_token("The cat", model=lm, rows=12,
                        settings=settings_for("sample", temperature=1.5, top_k=4, top_p=0.5))
    ids = torch.tensor([result.input_ids])
    with torch.no_grad():
        logits = lm.model(ids).logits[:, -1]
    tempered = TemperatureLogitsWarper(1.5)(ids, logits)
    by_k = TopKLogitsWarper(4)(ids, tempered.clone())
    by_p = TopPLogitsWarper(0.5)(ids, tempered.clone())
    final = TopPLogitsWarper(0.5)(ids, TopKLogitsWarper(4)(ids, tempered.clone()))
    probs = torch.softmax(final, -1)[0]
    assert len(result.candidates) == 12
    for c in result.candidates:
        assert c.kept_top_k == bool(torch.isfinite(by_k)[0, c.id]) == (c.rank <= 4)
        assert c.kept_top_p == bool(torch.isfinite(by_p)[0, c.id])
        assert c.prob_sampling == pytest.approx(float(probs[c.id]), abs=1e-5)
    d = result.distribution
    assert d.top_k_kept == 4
    assert d.top_p_kept == int(torch.isfinite(by_p).sum())
    assert d.sampling_kept == int(torch.isfinite(final).sum()) <= 4
    data = result.to_json()
    assert (data["top_k"], data["top_p"], data["temperature"], data["rows"]) == (4, 0.5, 1.5, 12)
    assert data["top_k_kept"] == 4 and data["sampling_kept"] == d.sampling_kept


def test_greedy_shows_the_models_own_distribution_only(loaded):
    """Greedy settings reshape nothing: no tempered column, no verdicts, the pick chooses from one token."""
    lm = loaded["llama"]
    result = next_token("The cat", model=lm, rows=6)
    probs = _reference_probs(lm, result.input_ids)
    assert [c.id for c in result.candidates] == torch.topk(probs, 6).indices.tolist()
    for c in result.candidates:
        assert (c.prob_temperature, c.kept_top_k, c.kept_top_p, c.prob_sampling) == (None, None, None, None)
    d = result.distribution
    assert (d.top_k_kept, d.top_p_kept, d.sampling_kept, d.entropy_temperature) == (None, None, 1, None)
    assert result.strategy == "greedy" and result.temperature == 1.0 and not result.reshaped
    data = result.to_json()
    assert data["strategy"] == "greedy" and data["top_k"] is None and data["rows"] == 6
    assert not {"top_k_kept", "top_p_kept", "sampling_kept", "entropy_temperature"} & set(data)


def _ids(result):
    return [s.chosen.id for s in result.steps]


@pytest.mark.parametrize("name", ["gpt2", "llama"])
@pytest.mark.parametrize("seed", [0, 3])
def test_sampled_steps_equal_generate_and_ignore_the_rows_shown(loaded, name, seed):
    """One sampling path: next-token --steps writes what generate writes with the same strategy and seed,
    and how many candidates it shows (rows) never filters what it samples. Consistency only: the draws
    come from llmscope's own seeded RNG, so llmscope's ``generate`` is the one reference that can give
    the same tokens (test_decoding checks those against the filters they are drawn from)."""
    lm = loaded[name]
    settings = settings_for("sample", seed=seed, max_new_tokens=12)
    written = decoding.generate("The", model=lm, settings=settings)
    for rows in (10, 1):
        stepped = next_token("The", model=lm, steps=12, settings=settings, rows=rows)
        assert _ids(stepped) == written.token_ids
        assert stepped.stop_reason == ("eos" if written.stop_reason == "eos" else "steps")
    # with one row shown, the draws still leave it (the old path sampled only among the rows shown)
    assert any(s.chosen.id != s.candidates[0].id for s in stepped.steps)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
@pytest.mark.parametrize("options", [
    dict(strategy="sample", temperature=0.7, top_p=0.8, seed=5),
    dict(strategy="top-k", top_k=3, temperature=1.3, seed=2),
    dict(strategy="typical", typical_p=0.6, seed=4),
    dict(strategy="min-p", min_p=0.2, top_k=20, seed=1),
], ids=lambda o: o["strategy"])
def test_filtered_steps_equal_generate(loaded, name, options):
    """Consistency for the sampled steps (llmscope's own RNG: its ``generate`` is the only reference that
    draws alike), whatever the filters and however few rows are shown."""
    lm = loaded[name]
    settings = settings_for(**options, max_new_tokens=10)
    written = decoding.generate("Once upon", model=lm, settings=settings)
    stepped = next_token("Once upon", model=lm, steps=10, settings=settings, rows=2)
    assert _ids(stepped) == written.token_ids
    assert stepped.settings == settings and stepped.to_json()["seed"] == options["seed"]


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_temperature_zero_steps_are_greedy_and_say_so(loaded, name):
    """temperature=0 always picks the most likely token: a sampling strategy at T=0 is greedy (checked
    against ``model.generate``), nothing reshapes the distribution shown, and the result says so."""
    lm = loaded[name]
    settings = settings_for("top-p", temperature=0, top_p=0.8, seed=5)
    assert settings.strategy == "greedy" and not settings.do_sample
    greedy = next_token("Once upon", model=lm, steps=10, settings=settings)
    ids = torch.tensor([greedy.input_ids])
    with torch.no_grad():
        reference = lm.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=10)
    assert _ids(greedy) == reference[0, ids.shape[1]:].tolist()
    assert not greedy.reshaped and greedy.distribution.sampling_kept == 1
    assert greedy.candidates[0].prob_sampling is None and greedy.candidates[0].prob_temperature is None
    assert any("temperature=0 always picks the most likely token" in w and "top-p runs as greedy" in w
               for w in greedy.warnings), greedy.warnings


def test_stop_ids_are_the_eos_and_in_chat_the_end_of_turn(loaded, tiny_models, im_end_chat):
    from transformers import GenerationConfig

    lm = loaded["llama"]
    eos = lm.tokenizer.convert_tokens_to_ids("</s>")  # the EOS, and what its chat template ends turns with
    assert GenerationConfig.from_pretrained(tiny_models["llama"]).eos_token_id == eos
    assert stepper("Hi", model=lm).stop_ids == [eos]
    assert stepper("Hi", model=lm, chat=True).stop_ids == [eos]
    # a template whose turns end in <|im_end|>, not the EOS: only chat stops there too
    folder, _, im_end = im_end_chat
    other = llmscope.load(str(folder), device="cpu", dtype="float32")
    assert other.tokenizer.eos_token_id == eos
    assert stepper("Hi", model=other).stop_ids == [eos]
    assert stepper("Hi", model=other, chat=True).stop_ids == sorted([eos, im_end])


def test_chat_steps_stop_at_end_of_turn_as_generate_does(loaded, im_end_chat):
    """Consistency: sampled chat steps equal llmscope's own ``generate`` (separate RNGs: transformers
    cannot draw the same tokens). Greedy steps on the <|im_end|> model equal ``model.generate`` told to
    stop at <|im_end|>, and end there."""
    folder, ids, im_end = im_end_chat
    other = llmscope.load(str(folder), device="cpu", dtype="float32")
    stepped = next_token("Hi there", model=other, chat=True, system="Be brief.", steps=10)
    assert stepped.input_ids == ids[0].tolist()
    with torch.no_grad():
        expected = other.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=10,
                                        eos_token_id=[im_end, other.tokenizer.eos_token_id],
                                        pad_token_id=other.tokenizer.eos_token_id)[0, ids.shape[-1]:].tolist()
    assert _ids(stepped) == expected and expected[-1] == im_end and stepped.stop_reason == "eos"
    lm = loaded["llama"]
    for seed in range(4):
        settings = settings_for("sample", temperature=1.5, seed=seed, max_new_tokens=30)
        written = decoding.generate("Hi", model=lm, chat=True, settings=settings)
        stepped = next_token("Hi", model=lm, chat=True, steps=30, settings=settings)
        assert _ids(stepped) == written.token_ids


def test_masked_lm_predicts_each_mask(loaded):
    lm = loaded["bert"]
    prompt = "The cat [MASK] on the [MASK]."
    result = next_token(prompt, model=lm, rows=5)
    ids = lm.tokenizer(prompt)["input_ids"]
    positions = [i for i, t in enumerate(ids) if t == lm.tokenizer.mask_token_id]
    assert [m.position for m in result.masks] == positions and len(positions) == 2
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids])).logits[0]
    for m in result.masks:
        probs = torch.softmax(logits[m.position], -1)
        assert [c.id for c in m.distribution.candidates] == torch.topk(probs, 5).indices.tolist()
        for c in m.distribution.candidates:
            assert c.prob == pytest.approx(float(probs[c.id]), abs=1e-5)


def test_masked_lm_without_mask_names_the_mask_token(loaded):
    with pytest.raises(UsageError, match=r"\[MASK\]"):
        next_token("The cat sat", model=loaded["bert"])


def test_chat_template(loaded):
    lm = loaded["llama"]
    result = next_token("Hi", model=lm, chat=True, system="Be brief.")
    expected = lm.tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        tokenize=False, add_generation_prompt=True,
    )
    assert result.text == expected and result.text.endswith("<|assistant|>\n")
    probs = _reference_probs(lm, result.input_ids)
    assert result.candidates[0].prob == pytest.approx(float(probs.max()), abs=1e-5)
    with pytest.raises(UsageError, match="chat template"):
        next_token("Hi", model=loaded["gpt2"], chat=True)


def test_bad_prompts_and_values(loaded):
    lm = loaded["gpt2"]
    with pytest.raises(UsageError, match="empty"):
        next_token("", model=lm)
    with pytest.raises(UsageError, match="context"):
        next_token("the cat " * 100, model=lm)  # the tiny GPT-2 has 128 positions
    with pytest.raises(UsageError, match="context"):
        next_token("The cat", model=lm, steps=200)
    refused = [
        (dict(rows=0), "rows=0"),
        (dict(steps=-1), "steps=-1"),
        (dict(settings="beam"), "strategy=beam"),
        (dict(settings=settings_for("beam", num_beams=2)), "strategy=beam"),
        (dict(settings="fancy"), "unknown strategy 'fancy'"),
    ]
    for bad, words in refused:
        with pytest.raises(UsageError, match=words):
            next_token("x", model=lm, **bad)
    for bad, words in ((dict(top_p=1.5), "top_p=1.5"), (dict(top_k=0), "top_k=0"),
                       (dict(temperature=-1.0), "temperature=-1.0: must be 0 or more")):
        with pytest.raises(UsageError, match=words):
            settings_for("sample", **bad)


@pytest.mark.slow
def test_demo_model_matches_transformers(demo_model):
    prompt = "The capital of France is"
    result = next_token(prompt, model=demo_model, steps=4)
    ids = torch.tensor([result.input_ids])
    with torch.no_grad():
        probs = torch.softmax(demo_model.model(ids).logits[0, -1], -1)
    for c in result.candidates:
        assert c.prob == pytest.approx(float(probs[c.id]), abs=1e-5)
    generated = demo_model.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=4)
    assert [s.chosen.id for s in result.steps] == generated[0, ids.shape[1]:].tolist()


def test_prompt_options_are_checked_before_loading():
    for call in (next_token, stepper):
        with pytest.raises(UsageError, match="system needs chat=True"):
            call("hi", model="/does/not/exist", system="Be kind.")
        with pytest.raises(UsageError, match="empty"):
            call("", model="/does/not/exist")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["greedy", "sample"])
def test_demo_steps_equal_generate(demo_model, strategy):
    """Consistency (for "sample", llmscope's own RNG: its ``generate`` is the one reference that draws alike)."""
    settings = settings_for(strategy, seed=3, max_new_tokens=12)
    written = decoding.generate("Once upon a time", model=demo_model, settings=settings)
    stepped = next_token("Once upon a time", model=demo_model, steps=12, settings=settings)
    assert _ids(stepped) == written.token_ids


@pytest.mark.slow
def test_demo_chat_stop_ids_include_end_of_turn(demo_model):
    # The embedded Gemma carries no chat template, so --chat itself is refused; the stop ids a chat
    # run would use are still Gemma's EOS and its end-of-turn token.
    from llmscope.decoding.stepping import Stepper

    lm = demo_model
    ids = lm.tokenizer("Hi")["input_ids"]
    eos = lm.model.generation_config.eos_token_id
    eos = sorted(eos if isinstance(eos, list) else [eos])
    end_of_turn = lm.tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert Stepper(lm, ids).stop_ids == eos == [lm.tokenizer.convert_tokens_to_ids("<eos>")]
    assert {*eos, end_of_turn} <= set(Stepper(lm, ids, chat=True).stop_ids)


@pytest.mark.slow
def test_demo_chat_stop_ids_are_only_eos_and_end_of_turn(demo_model):
    from llmscope.decoding.stepping import Stepper

    lm = demo_model
    html_s = lm.tokenizer.convert_tokens_to_ids("</s>")
    assert lm.tokenizer("a</s>b", add_special_tokens=False)["input_ids"][1] == html_s  # text, not a turn's end
    expected = [lm.tokenizer.convert_tokens_to_ids(t) for t in ("<eos>", "<end_of_turn>")]
    assert Stepper(lm, lm.tokenizer("Hi")["input_ids"], chat=True).stop_ids == sorted(expected)


def test_stepper_takes_any_generate_strategy(loaded):
    """Consistency: a sampled min-p run equals llmscope's own ``generate`` (separate RNGs)."""
    from llmscope.decoding.stepping import Stepper

    lm = loaded["llama"]
    settings = sampling.settings_for("min-p", min_p=0.1, temperature=1.3, seed=2, max_new_tokens=10)
    written = decoding.generate("The dog", model=lm, settings=settings)
    run = Stepper(lm, lm.tokenizer("The dog")["input_ids"], settings=settings)
    run.run(10)
    assert run.ids[run.prompt_length:] == written.token_ids
    with pytest.raises(UsageError, match="beam"):
        Stepper(lm, [1, 2], settings=sampling.settings_for("beam"))
    with pytest.raises(UsageError, match="beam"):
        Stepper(lm, [1, 2], settings="beam")
    by_name = Stepper(lm, lm.tokenizer("The dog")["input_ids"], settings="min-p")  # a name: its defaults
    assert by_name.settings == sampling.settings_for("min-p")
