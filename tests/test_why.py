"""``llmscope why`` on tiny models, each number checked against an independent computation.

References: f and every occluded f recomputed from token ids with transformers' own model (no llmscope
code); grad x input against central finite differences of f along each token's embedding in float64;
integrated gradients' reported gap against the sum of its attributions and the two directly computed f
values; Captum's LayerIntegratedGradients on the embedding layer (the hook path llmscope does not use).
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import cli_error

PROMPT = "the cat sat on the mat"


def hf_model(folder):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def logprob(model, ids: list[int], continuation: list[int]) -> float:
    """log p(continuation | ids) from input ids, teacher-forced: transformers alone."""
    import torch

    full = torch.tensor([ids + continuation[:-1]])
    with torch.no_grad():
        logits = model(input_ids=full).logits[0, -len(continuation):].double()
    logp = torch.log_softmax(logits, dim=-1)
    return float(sum(logp[k, t] for k, t in enumerate(continuation)))


def logprob_embeds(model, embeds, continuation: list[int]) -> float:
    """log p(continuation | ...) from EMBEDS (1, prompt + continuation - 1, hidden), teacher-forced."""
    import torch

    with torch.no_grad():
        logits = model(inputs_embeds=embeds).logits[0, -len(continuation):].double()
    logp = torch.log_softmax(logits, dim=-1)
    return float(sum(logp[k, t] for k, t in enumerate(continuation)))


def replaced(ids: list[int], positions, token: int) -> list[int]:
    return [token if i in positions else t for i, t in enumerate(ids)]


@pytest.fixture(scope="module")
def gpt2(tiny_models):
    import llmscope

    return llmscope.load(str(tiny_models["gpt2"]), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def llama(tiny_models):
    import llmscope

    return llmscope.load(str(tiny_models["llama"]), device="cpu", dtype="float32")


# --------------------------------------------------------------------------------------------
# What is explained


def test_f_is_the_teacher_forced_log_probability_of_a_multi_token_target(gpt2, tiny_models):
    from llmscope import why

    ref = hf_model(tiny_models["gpt2"])
    ids = gpt2.tokenizer(PROMPT)["input_ids"]
    target = gpt2.tokenizer(" cat sat", add_special_tokens=False)["input_ids"]
    assert len(target) > 1
    r = why(PROMPT, model=gpt2, target=" cat sat", method="grad-x-input")
    assert r.target_ids == target
    assert r.f == pytest.approx(logprob(ref, ids, target), abs=1e-5)
    assert r.check < 1e-5


def test_default_target_is_the_top_next_token_and_versus_subtracts(gpt2, tiny_models):
    import torch

    from llmscope import why

    ref = hf_model(tiny_models["gpt2"])
    ids = gpt2.tokenizer(PROMPT)["input_ids"]
    with torch.no_grad():
        top = int(ref(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
    r = why(PROMPT, model=gpt2, method="occlusion")
    assert r.target_ids == [top]
    other = gpt2.tokenizer(" dog", add_special_tokens=False)["input_ids"]
    c = why(PROMPT, model=gpt2, target=gpt2.tokenizer.decode([top]), versus=" dog", method="grad-x-input")
    assert c.f == pytest.approx(logprob(ref, ids, [top]) - logprob(ref, ids, other), abs=1e-5)


# --------------------------------------------------------------------------------------------
# The three methods against independent recomputations


def test_occlusion_equals_directly_recomputed_log_probabilities(gpt2, tiny_models):
    from llmscope import why

    ref = hf_model(tiny_models["gpt2"])
    ids = gpt2.tokenizer(PROMPT)["input_ids"]
    baseline = ids[0]  # "the", one token (named by its vocabulary piece)
    r = why(PROMPT, model=gpt2, target=" dog", method="occlusion", by="word",
            baseline=gpt2.tokenizer.convert_ids_to_tokens(ids[0]))
    target = r.target_ids
    f = logprob(ref, ids, target)
    assert r.f == pytest.approx(f, abs=1e-5)
    assert r.baseline_id == baseline
    assert [u.text for u in r.units] == ["the", " cat", " sat", " on", " the", " mat"]
    for u in r.units:
        assert u.attribution == pytest.approx(f - logprob(ref, replaced(ids, set(u.positions), baseline), target),
                                              abs=1e-5)
    assert r.f_baseline == pytest.approx(logprob(ref, [baseline] * len(ids), target), abs=1e-5)


def test_occlusion_by_sentence_replaces_the_whole_sentence(gpt2, tiny_models):
    from llmscope import why

    ref = hf_model(tiny_models["gpt2"])
    text = "the cat sat. the dog ran"
    ids = gpt2.tokenizer(text)["input_ids"]
    r = why(text, model=gpt2, target=" on", method="occlusion", by="sentence", baseline="zero")
    assert [u.text for u in r.units] == ["the cat sat. ", "the dog ran"] or [u.text for u in r.units] == [
        "the cat sat.", " the dog ran"]
    assert sum(len(u.positions) for u in r.units) == len(ids)
    # zero baseline: the test builds the occluded input itself, as embeddings
    import torch

    embeds = ref.get_input_embeddings()(torch.tensor([ids + r.target_ids[:-1]])).detach()
    base = logprob_embeds(ref, embeds, r.target_ids)
    for u in r.units:
        e = embeds.clone()
        e[0, list(u.positions)] = 0
        assert u.attribution == pytest.approx(base - logprob_embeds(ref, e, r.target_ids), abs=1e-5)


def _finite_difference(ref64, ids: list[int], target: list[int], position: int, h: float = 1e-2) -> float:
    """d/dt f(E with e_position scaled by 1 + t) at t = 0: the directional derivative along the token's
    own embedding, which is what (df/de) . e is. (h = 1e-2: Llama's rotary tables are float32 even in a
    float64 model, so f carries ~1e-8 of noise that a smaller step would amplify.)"""
    import torch

    embeds = ref64.get_input_embeddings()(torch.tensor([ids + target[:-1]])).detach()

    def f(scale: float) -> float:
        e = embeds.clone()
        e[0, position] = e[0, position] * scale
        with torch.no_grad():
            logits = ref64(inputs_embeds=e).logits[0, -len(target):]
        logp = torch.log_softmax(logits, dim=-1)
        return float(sum(logp[k, t] for k, t in enumerate(target)))

    return (f(1 + h) - f(1 - h)) / (2 * h)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_grad_x_input_equals_finite_differences(name, tiny_models, request):
    from llmscope import why

    lm = request.getfixturevalue(name)
    ref64 = hf_model(tiny_models[name]).double()
    r = why(PROMPT, model=lm, target=" cat", method="grad-x-input", by="token")
    ids = lm.tokenizer(PROMPT)["input_ids"]
    for u in r.units:
        if u.special:
            continue
        (p,) = u.positions
        assert u.attribution == pytest.approx(_finite_difference(ref64, ids, r.target_ids, p), rel=1e-3, abs=1e-5)


def test_tied_embeddings_are_attributed_through_the_activation(gpt2, tiny_models):
    """GPT-2 ties its LM head to the token embedding: the weight's gradient would mix in the output layer.
    The input's gradient is what the finite differences see."""
    from llmscope import why

    assert gpt2.model.get_output_embeddings().weight is gpt2.model.get_input_embeddings().weight
    ref64 = hf_model(tiny_models["gpt2"]).double()
    ids = gpt2.tokenizer(PROMPT)["input_ids"]
    r = why(PROMPT, model=gpt2, target=" mat", method="grad-x-input", by="token")
    fd = [_finite_difference(ref64, ids, r.target_ids, p) for p in range(len(ids))]
    assert [u.attribution for u in r.units] == pytest.approx(fd, rel=1e-3, abs=1e-5)


def test_integrated_gradients_gap_is_the_recomputed_one_and_small_on_a_smooth_path(gpt2, tiny_models):
    from llmscope import why

    ref = hf_model(tiny_models["gpt2"])
    ids = gpt2.tokenizer(PROMPT)["input_ids"]
    base = ids[0]
    r = why(PROMPT, model=gpt2, target=" cat", method="integrated-gradients", steps=64,
            baseline=gpt2.tokenizer.convert_ids_to_tokens(ids[0]))
    f, fb = logprob(ref, ids, r.target_ids), logprob(ref, [base] * len(ids), r.target_ids)
    assert r.f == pytest.approx(f, abs=1e-5) and r.f_baseline == pytest.approx(fb, abs=1e-5)
    total = sum(u.attribution for u in r.units)
    assert r.gap == pytest.approx(total - (f - fb), abs=1e-4)
    assert abs(r.gap) < 0.01 * abs(f - fb)
    assert r.converged is True


def test_integrated_gradients_equals_captums_layer_integrated_gradients(gpt2, tiny_models):
    """The same attributions through Captum's other path: LayerIntegratedGradients hooked on the embedding
    layer, fed token ids (llmscope feeds inputs_embeds)."""
    import torch
    from captum.attr import LayerIntegratedGradients

    from llmscope import why

    ref = hf_model(tiny_models["gpt2"])
    ids = gpt2.tokenizer(PROMPT)["input_ids"]
    base = ids[0]
    r = why(PROMPT, model=gpt2, target=" cat", method="integrated-gradients", steps=16,
            baseline=gpt2.tokenizer.convert_ids_to_tokens(ids[0]), by="token")
    target = r.target_ids
    n = len(ids)

    def forward_full(full):  # prompt + the target's tokens but the last, as ids: teacher forcing
        logp = torch.log_softmax(ref(input_ids=full).logits[:, n - 1:].float(), -1)
        return sum(logp[:, k, t] for k, t in enumerate(target))

    # the layer's output covers the target's own tokens too: their baseline is themselves (held fixed)
    lig = LayerIntegratedGradients(forward_full, ref.get_input_embeddings())
    full_ids = torch.tensor([ids + target[:-1]])
    full_base = torch.tensor([[base] * n + target[:-1]])
    attr = lig.attribute(full_ids, baselines=full_base, n_steps=16)
    assert [u.attribution for u in r.units] == pytest.approx(attr[0, :n].sum(-1).tolist(), abs=1e-4)


def test_batches_under_a_small_budget_give_the_same_numbers(gpt2, monkeypatch):
    from llmscope import why
    from llmscope.memory.forward_guard import attribution_row_bytes

    whole = why(PROMPT, model=gpt2, target=" cat", steps=12)
    ids = len(gpt2.tokenizer(PROMPT)["input_ids"])
    row = attribution_row_bytes(gpt2.config, ids, 1, dtype="float32")
    monkeypatch.setenv("LLMSCOPE_MAX_WORK_BYTES", str(int(3.5 * row / 0.9)))  # three rows at once
    batched = why(PROMPT, model=gpt2, target=" cat", steps=12)
    assert [u.attribution for u in batched.units] == pytest.approx([u.attribution for u in whole.units], abs=1e-5)
    assert batched.gap == pytest.approx(whole.gap, abs=1e-5)


def test_work_that_cannot_fit_one_row_is_one_line_exit_1(cli, one_error_line, tiny_models, monkeypatch):
    monkeypatch.setenv("LLMSCOPE_MAX_WORK_BYTES", "1KiB")
    line = one_error_line(cli("why", PROMPT, "-m", tiny_models["gpt2"], "--target", " cat"), 1)
    assert "integrated-gradients on" in line and "1 row" in line


# --------------------------------------------------------------------------------------------
# Special tokens, units, chat


def test_bos_is_fixed_flagged_and_not_attributed(llama, tiny_models):
    from llmscope import why

    ref = hf_model(tiny_models["llama"])
    ids = llama.tokenizer(PROMPT)["input_ids"]
    assert ids[0] == llama.tokenizer.bos_token_id
    r = why(PROMPT, model=llama, target=" cat", method="occlusion", by="word", baseline="zero")
    assert r.units[0].special and r.units[0].attribution is None and r.units[0].first
    assert r.units[0].token_ids == [llama.tokenizer.bos_token_id]
    assert all(not u.special for u in r.units[1:])
    assert sorted(p for u in r.units for p in u.positions) == list(range(len(ids)))
    ig = why(PROMPT, model=llama, target=" cat", steps=8, baseline="zero")
    assert ig.units[0].attribution is None
    # the fixed BOS really is held: IG's f(baseline) keeps it (the test builds that input itself)
    import torch

    embeds = ref.get_input_embeddings()(torch.tensor([ids + ig.target_ids[:-1]])).detach()
    embeds[0, 1:len(ids)] = 0
    assert ig.f_baseline == pytest.approx(logprob_embeds(ref, embeds, ig.target_ids), abs=1e-5)


def test_chat_template_tokens_are_held_fixed(llama):
    from llmscope import why

    r = why("Hi there", model=llama, chat=True, system="Be brief.", method="grad-x-input", by="word",
            target=" cat")
    moved = [u.text for u in r.units if not u.special]
    assert [t.strip() for t in moved] == ["Be", "brief.", "Hi", "there"]
    specials = [u for u in r.units if u.special]
    assert specials and all(u.attribution is None for u in specials)
    assert any(u.text == "<|assistant|>" for u in specials)


def test_word_units_sum_their_tokens(gpt2):
    from llmscope import why

    text = "the catmat sat"
    by_token = why(text, model=gpt2, target=" cat", method="grad-x-input", by="token")
    by_word = why(text, model=gpt2, target=" cat", method="grad-x-input", by="word")
    assert len(by_token.units) > len(by_word.units)
    for w in by_word.units:
        assert w.attribution == pytest.approx(sum(by_token.units[p].attribution for p in w.positions), abs=1e-9)
    assert by_word.by_unit["token"] == by_token.units


def test_generate_explains_each_generated_token(gpt2, tiny_models):
    from llmscope import generate, why

    ref = hf_model(tiny_models["gpt2"])
    ids = gpt2.tokenizer(PROMPT)["input_ids"]
    written = generate(PROMPT, model=gpt2, settings="greedy").token_ids[:3]
    r = why(PROMPT, model=gpt2, generate=3, method="grad-x-input")
    assert [s.token_id for s in r.steps] == written == r.target_ids
    for k, step in enumerate(r.steps):
        assert step.f == pytest.approx(logprob(ref, ids + written[:k], [written[k]]), abs=1e-5)
        assert len(step.units) == 6 + k  # the prompt's words, then each token generated before
    assert r.f == pytest.approx(sum(s.f for s in r.steps))
    assert len(r.units) == 6 + 2


# --------------------------------------------------------------------------------------------
# The same numbers through the API, the CLI and the page


def test_cli_json_and_page_hold_the_api_numbers(cli, gpt2, tiny_models, tmp_path):
    from llmscope import why

    api = why(PROMPT, model=gpt2, target=" cat", steps=8)
    result = cli("why", PROMPT, "-m", tiny_models["gpt2"], "--target", " cat", "--steps", "8", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) >= {"target", "versus", "method", "by", "f", "f_baseline", "gap", "converged", "units"}
    assert set(doc["units"][0]) >= {"text", "start", "end", "token_ids", "attribution", "special"}
    assert [u["attribution"] for u in doc["units"]] == pytest.approx([u.attribution for u in api.units], abs=1e-6)
    assert doc["gap"] == pytest.approx(api.gap, abs=1e-6)
    page = tmp_path / "why.html"
    assert cli("why", PROMPT, "-m", tiny_models["gpt2"], "--target", " cat", "--steps", "8", "--export",
               page).exit_code == 0
    data = re.search(r'<script type="application/json" id="llmscope-data">(.*?)</script>', page.read_text(),
                     re.DOTALL).group(1)
    assert [u["attribution"] for u in json.loads(data)["units"]] == pytest.approx(
        [u.attribution for u in api.units], abs=1e-6)


def test_terminal_view_prints_the_checks(cli, tiny_models):
    out = cli("why", PROMPT, "-m", tiny_models["gpt2"], "--target", " cat", "--steps", "8")
    assert out.exit_code == 0, out.stderr
    assert "completeness gap" in out.stdout and "f(baseline)" in out.stdout
    assert "f through inputs_embeds" in out.stdout
    occ = cli("why", PROMPT, "-m", tiny_models["gpt2"], "--target", " cat", "--method", "occlusion")
    assert "recomputed" in occ.stdout


def test_a_nonconverged_integral_is_said_plainly(cli, tiny_models):
    out = cli("why", PROMPT, "-m", tiny_models["gpt2"], "--target", " cat", "--steps", "1", "--json")
    doc = json.loads(out.stdout)
    assert doc["converged"] is False  # one point cannot integrate this path
    text = cli("why", PROMPT, "-m", tiny_models["gpt2"], "--target", " cat", "--steps", "1").stdout
    assert "NOT CONVERGED" in text and "not a decomposition" in text


def test_no_warning_from_the_api(gpt2):
    import warnings

    from llmscope import why

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("grad-x-input", "integrated-gradients", "occlusion"):
            why(PROMPT, model=gpt2, target=" cat", method=method)


# --------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, before the model loads where it can


@pytest.mark.parametrize(("args", "words"), [
    (["--target", ""], "target is empty"),
    (["--target", " cat", "--versus", " cat"], "is the target itself"),
    (["--steps", "0"], "--steps 0"),
    (["--steps", "100000"], "between 1 and 4,096"),
    (["--method", "saliency"], "unknown method"),
    (["--by", "paragraph"], "unknown unit"),
    (["--method", "occlusion", "--steps", "8"], "integrated-gradients only"),
    (["--method", "grad-x-input", "--baseline", "zero"], "no baseline"),
    (["--generate", "3", "--target", " cat"], "do not go together"),
    (["--versus", " dog"], "needs --target"),
])
def test_bad_options_before_the_load(cli, one_error_line, args, words):
    line = cli_error(cli, one_error_line, "why", PROMPT, "-m", "/nonexistent/model", *args)
    assert words in line, line


def test_bad_baseline_token_after_the_load(cli, one_error_line, tiny_models):
    line = cli_error(cli, one_error_line, "why", PROMPT, "-m", tiny_models["gpt2"], "--baseline", "zzqqx yy")
    assert "not a token of this model's vocabulary" in line


def test_masked_lm_is_refused(cli, one_error_line, tiny_models):
    line = cli_error(cli, one_error_line, "why", "the cat", "-m", tiny_models["bert"])
    assert "masked language model" in line
