"""``llmscope patch`` against the test's own hook-based recomputation on transformers' model, its identities,
its batching, its page and its refusals."""

from __future__ import annotations

import pytest

from conftest import cli_error
from test_pages import browser, open_page, terminal_and_page  # noqa: F401 - the browser fixture

CLEAN = "the cat sat on the mat"
CORRUPT = "the tan sat on the mat"  # as many tokens as CLEAN in the tiny vocabulary


@pytest.fixture(scope="module")
def llama(tiny_models):
    import llmscope

    return llmscope.load(str(tiny_models["llama"]), device="cpu", dtype="float32")


def hf(folder):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def metric(ref, ids, r, hook_module=None, hook=None, pre=True):
    import torch

    handle = None
    if hook_module is not None:
        handle = (hook_module.register_forward_pre_hook(hook) if pre else hook_module.register_forward_hook(hook))
    with torch.no_grad():
        last = ref(input_ids=torch.tensor([ids])).logits[0, -1].double()
    if handle is not None:
        handle.remove()
    if r.versus_id is None:
        return float(torch.log_softmax(last, -1)[r.target_id])
    return float(last[r.target_id] - last[r.versus_id])


@pytest.mark.parametrize("site", ["resid", "attn", "mlp", "heads"])
def test_identities_hold_at_every_site(llama, site):
    from llmscope import patch

    r = patch(CLEAN, model=llama, corrupt=CORRUPT, site=site)
    assert r.check["all"] < 1e-4 and r.check["none"] < 1e-4
    layers = llama.config.num_hidden_layers
    width = llama.config.num_attention_heads if site == "heads" else len(r.tokens)
    assert len(r.grid) == layers and all(len(row) == width for row in r.grid)


def test_resid_cells_equal_a_direct_recomputation(llama, tiny_models):
    import torch

    from llmscope import patch

    ref = hf(tiny_models["llama"])
    tok = llama.tokenizer
    clean, bad = tok(CLEAN)["input_ids"], tok(CORRUPT)["input_ids"]
    r = patch(CLEAN, model=llama, corrupt=CORRUPT, target=" the", versus="t")
    with torch.no_grad():
        hidden = ref(input_ids=torch.tensor([clean]), output_hidden_states=True).hidden_states  # [l]: layer l's input
    assert r.clean == pytest.approx(metric(ref, clean, r), abs=1e-5)
    assert r.corrupt == pytest.approx(metric(ref, bad, r), abs=1e-5)
    span = r.clean - r.corrupt
    for layer, position in [(0, 2), (1, 2), (1, len(clean) - 1), (0, 0)]:
        def put(_module, args, layer=layer, position=position):
            h = args[0].clone()
            h[0, position] = hidden[layer][0, position]
            return (h, *args[1:])

        m = metric(ref, bad, r, ref.model.layers[layer], put)
        assert r.raw[layer][position] == pytest.approx(m, abs=1e-5)
        assert r.grid[layer][position] == pytest.approx((m - r.corrupt) / span, abs=1e-5)


def test_head_cells_equal_a_direct_recomputation(llama, tiny_models):
    import torch

    from llmscope import patch

    ref = hf(tiny_models["llama"])
    tok = llama.tokenizer
    clean, bad = tok(CLEAN)["input_ids"], tok(CORRUPT)["input_ids"]
    r = patch(CLEAN, model=llama, corrupt=CORRUPT, site="heads")
    seen = {}
    o_proj = ref.model.layers[1].self_attn.o_proj
    handle = o_proj.register_forward_pre_hook(lambda m, args: seen.__setitem__("z", args[0].detach().clone()))
    with torch.no_grad():
        ref(input_ids=torch.tensor([clean]))
    handle.remove()
    d = seen["z"].shape[-1] // 4
    for head in range(4):
        def put(_module, args, head=head):
            z = args[0].clone()
            z[0, :, head * d:(head + 1) * d] = seen["z"][0, :, head * d:(head + 1) * d]
            return (z, *args[1:])

        assert r.raw[1][head] == pytest.approx(metric(ref, bad, r, o_proj, put), abs=1e-5)


def test_small_batches_give_the_same_grid(llama, monkeypatch):
    from llmscope import patch
    from llmscope.memory.forward_guard import layers_work

    whole = patch(CLEAN, model=llama, corrupt=CORRUPT)
    one = layers_work(llama.config, len(whole.tokens), dtype="float32", all_tokens=False, top=1, eager=False,
                      all_logits=True).total
    monkeypatch.setenv("LLMSCOPE_MAX_WORK_BYTES", str(int(3.5 * one / 0.9)))  # three rows a pass
    small = patch(CLEAN, model=llama, corrupt=CORRUPT)
    for a, b in zip(whole.raw, small.raw):
        assert a == pytest.approx(b, abs=1e-5)


def test_noise_is_seeded_and_on_the_word(llama):
    from llmscope import patch

    a = patch(CLEAN, model=llama, noise="cat", seed=1)
    b = patch(CLEAN, model=llama, noise="cat", seed=1)
    c = patch(CLEAN, model=llama, noise="cat", seed=2)
    assert a.raw == b.raw and a.corrupt != c.corrupt
    assert a.check["all"] < 1e-4 and a.check["none"] < 1e-4
    # before the noised word nothing differs: patching the residual there restores nothing
    word = next(i for i, t in enumerate(a.tokens) if "c" in t and i > 0)  # the first token of " cat"
    assert all(abs(a.raw[0][j] - a.corrupt) < 1e-6 for j in range(word))


def test_patch_page(browser, tiny_models, cli, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    text, page, data = terminal_and_page(cli, tmp_path, "patch", "patch", CLEAN, "--corrupt", CORRUPT, "-m",
                                         str(tiny_models["llama"]))
    assert "check: every position" in text
    open_page(browser, page)
    cells = browser.find_elements(By.CSS_SELECTOR, "#patch-grid .cell.hot, #patch-grid .cell.masked")
    assert len(cells) == len(data["grid"]) * len(data["tokens"])
    c = cells[len(data["tokens"]) + 2]  # layer 1, position 2
    assert f"(metric {data['raw'][1][2]:.4f})" in c.get_attribute("title")


def test_tokens_of_different_lengths(cli, one_error_line, tiny_models):
    line = cli_error(cli, one_error_line, "patch", CLEAN, "--corrupt", "the catmatdog sat on the mat", "-m",
                     tiny_models["llama"])
    assert "must be the same length" in line and "first differ at position" in line


@pytest.mark.parametrize(("args", "words"), [
    (["--corrupt", CORRUPT, "--site", "neurons"], "unknown site"),
    ([], "give --corrupt or --noise"),
    (["--corrupt", CORRUPT, "--noise", "cat"], "give --corrupt or --noise"),
    (["--corrupt", CORRUPT, "--target", " on", "--versus", " on"], "is the target itself"),
])
def test_bad_options_before_the_load(cli, one_error_line, args, words):
    assert words in cli_error(cli, one_error_line, "patch", CLEAN, "-m", "/nonexistent/model", *args)


def test_a_target_of_several_tokens(cli, one_error_line, tiny_models):
    line = cli_error(cli, one_error_line, "patch", CLEAN, "--corrupt", CORRUPT, "-m", tiny_models["llama"],
                     "--target", " catmat")
    assert "not one" in line
