"""``llmscope heads``: the five pattern scores against their definitions, computed here from transformers'
``output_attentions``; a head built by hand to look at the previous token is found first."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from conftest import _bpe_tokenizer  # noqa: E402

from llmscope.forward.heads import heads, induction_probe  # noqa: E402

PROMPT = "the cat sat on the mat and the cat sat on the hat"
pytestmark = pytest.mark.usefixtures("one_thread")


def _definitions(weights, ids):
    """The issue's definitions, one loop per pattern, on one head's (T, T) weights."""
    n = len(ids)
    queries = range(1, n)

    def mean(values):
        values = list(values)
        return sum(values) / len(values) if values else None

    dup = [i for i in queries if ids[i] in ids[:i]]
    ind = [i for i in queries if any(ids[j] == ids[i] and j + 1 < i for j in range(i))]
    return {
        "previous_token": mean(weights[i][i - 1] for i in queries),
        "first_token": mean(weights[i][0] for i in queries),
        "self": mean(weights[i][i] for i in queries),
        "duplicate_token": mean(sum(weights[i][j] for j in range(i) if ids[j] == ids[i]) for i in dup),
        "induction": mean(sum(weights[i][j + 1] for j in range(i) if ids[j] == ids[i] and j + 1 < i) for i in ind),
    }


def test_scores_are_the_definitions_on_transformers_weights(tiny_models):
    folder = tiny_models["llama"]
    report = heads(PROMPT, model=str(folder))
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    ids = report.tokens
    assert ids == transformers.AutoTokenizer.from_pretrained(folder)(PROMPT)["input_ids"]
    with torch.inference_mode():
        attentions = model(input_ids=torch.tensor([ids]), output_attentions=True).attentions
    assert len(report.heads) == len(attentions) * attentions[0].shape[1]
    for row in report.heads:
        expected = _definitions(attentions[row.layer][0, row.head].double().tolist(), ids)
        for name, value in expected.items():
            got = getattr(row, name)
            assert (got is None) == (value is None), name
            if value is not None:
                assert got == pytest.approx(value, abs=1e-6), (row.layer, row.head, name)
    assert any(r.induction is not None for r in report.heads)  # the prompt repeats "the cat sat on the"


def _previous_token_gpt2(folder, tokenizer, head: int = 2):
    """A 1-layer GPT-2 whose HEAD attends to the previous position: positions are unit vectors turning by
    theta, the head's query turns them back by one step, so q_i . k_j peaks at j = i - 1."""
    config = transformers.GPT2Config(n_embd=64, n_layer=1, n_head=4, n_positions=64, vocab_size=len(tokenizer),
                                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = transformers.GPT2LMHeadModel(config).eval()
    theta = math.pi / 32
    with torch.no_grad():
        model.transformer.wte.weight.zero_()
        p = torch.arange(64, dtype=torch.float32) * theta
        wpe = torch.zeros(64, 64)
        wpe[:, 0], wpe[:, 1], wpe[:, 2], wpe[:, 3] = p.cos(), p.sin(), -p.cos(), -p.sin()  # mean 0: LayerNorm keeps it
        model.transformer.wpe.weight.copy_(wpe)
        attn = model.transformer.h[0].attn
        attn.c_attn.weight.zero_()
        attn.c_attn.bias.zero_()
        c, q0, k0 = 300.0, head * 16, 64 + head * 16  # Conv1D: x @ W, q columns then k columns
        attn.c_attn.weight[0, q0], attn.c_attn.weight[1, q0] = c * math.cos(theta), c * math.sin(theta)
        attn.c_attn.weight[0, q0 + 1], attn.c_attn.weight[1, q0 + 1] = -c * math.sin(theta), c * math.cos(theta)
        attn.c_attn.weight[0, k0], attn.c_attn.weight[1, k0 + 1] = 1.0, 1.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def test_a_hand_built_previous_token_head_ranks_first(tmp_path, cli):
    tokenizer = _bpe_tokenizer(["<s>", "</s>"], bos="<s>", eos="</s>")
    _previous_token_gpt2(tmp_path, tokenizer, head=2)
    report = heads("The quick brown fox jumps over the lazy dog", model=str(tmp_path))
    best = report.top("previous_token", 1)[0]
    assert (best.layer, best.head) == (0, 2) and best.previous_token > 0.9
    assert all(h.previous_token < 0.5 for h in report.heads if h.head != 2)  # the others: uniform over the past
    shown = cli("heads", "The quick brown fox jumps over the lazy dog", "-m", str(tmp_path))
    assert shown.exit_code == 0, shown.stderr
    assert f"L0 H2 {best.previous_token:.2f}" in shown.stdout


def test_query_key_ranks_every_head_by_that_weight(tiny_models, cli):
    folder = tiny_models["llama"]
    result = cli("heads", PROMPT, "-m", str(folder), "--query", "hat", "--key", "mat", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    q, k = data["query"]["position"], data["key"]["position"]
    # a word is found by its last token (the tiny tokenizer cuts "hat" into h + at)
    assert "hat".endswith(data["token_texts"][q].strip()) and "mat".endswith(data["token_texts"][k].strip())
    assert k < q
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.inference_mode():
        attentions = model(input_ids=torch.tensor([data["tokens"]]), output_attentions=True).attentions
    expected = sorted(((float(a[0, h, q, k]), float(a[0, h, q, 0]), layer, h) for layer, a in enumerate(attentions)
                       for h in range(a.shape[1])), reverse=True)
    got = [(r["weight"], r["first_token"], r["layer"], r["head"]) for r in data["ranking"]]
    assert [(layer, h) for _, _, layer, h in got] == [(layer, h) for _, _, layer, h in expected]
    assert [w for w, *_ in got] == pytest.approx([w for w, *_ in expected], abs=1e-6)
    assert [f for _, f, *_ in got] == pytest.approx([f for _, f, *_ in expected], abs=1e-6)


def test_the_induction_probe_is_bos_then_the_same_random_tokens_twice(tiny_models):
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_models["llama"])
    ids = induction_probe(tokenizer, seed=0)
    starts_with_bos = tokenizer("x")["input_ids"][0] == tokenizer.bos_token_id
    body = ids[1:] if starts_with_bos else ids
    assert (ids[0] == tokenizer.bos_token_id) == starts_with_bos
    assert len(body) == 100 and body[:50] == body[50:]
    assert not set(body) & set(tokenizer.all_special_ids)
    assert induction_probe(tokenizer, seed=0) == ids and induction_probe(tokenizer, seed=1) != ids
    report = heads(model=str(tiny_models["llama"]), seed=0)
    assert report.probe and report.tokens == ids
    assert all(h.induction is not None and h.duplicate_token is not None for h in report.heads)


def test_heads_refuses_what_it_cannot_do(tiny_models, tiny_families, cli):
    model = str(tiny_models["llama"])
    alone = cli("heads", PROMPT, "-m", model, "--query", "cat")
    assert alone.exit_code == 2 and "--query and --key go together" in alone.stderr
    no_prompt = cli("heads", "-m", model, "--query", "cat", "--key", "the")
    assert no_prompt.exit_code == 2 and "need a PROMPT" in no_prompt.stderr
    backwards = cli("heads", PROMPT, "-m", model, "--query", "cat", "--key", "hat")
    assert backwards.exit_code == 2 and "comes after" in backwards.stderr
    mamba = cli("heads", "-m", str(tiny_families["mamba"]))
    assert mamba.exit_code == 1 and "no attention layers" in mamba.stderr
