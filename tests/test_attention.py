"""llmscope.forward.attention: weights equal transformers' own output_attentions, masks and ranks hold."""

from __future__ import annotations

import pytest
import torch

from llmscope import loading
from llmscope.forward.attention import attention, find_query
from llmscope.errors import UsageError
from llmscope.loading.model import LoadSpec

PROMPT = "The cat sat on the mat because it was tired."


@pytest.fixture(scope="module")
def tiny_llama(tiny_models):
    return loading.load(str(tiny_models["llama"]), device="cpu", dtype="float32", attn_implementation="eager")


def _reference(lm, prompt):
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return ids, lm.model(ids, output_attentions=True).attentions


@pytest.mark.parametrize("layer,head", [(-1, 0), (0, 3), (1, None)])
def test_weights_equal_transformers(tiny_llama, layer, head):
    result = attention(PROMPT, model=tiny_llama, layer=layer, head=head)
    ids, attentions = _reference(tiny_llama, PROMPT)
    raw = attentions[layer][0]  # (heads, query, key)
    expected = raw[head] if head is not None else raw.mean(dim=0)
    got = torch.tensor(result.weights)
    assert got.shape == (ids.shape[1], ids.shape[1])
    torch.testing.assert_close(got, expected.float())
    assert result.layer == (layer % 2) and result.head == head
    assert len(result.tokens) == ids.shape[1]


def test_rows_sum_to_one_and_causal_upper_triangle_is_zero(tiny_llama):
    result = attention(PROMPT, model=tiny_llama, layer=0, head=1)
    w = torch.tensor(result.weights)
    torch.testing.assert_close(w.sum(dim=-1), torch.ones(w.shape[0]))
    assert torch.all(torch.triu(w, diagonal=1) == 0)
    assert torch.all(torch.diagonal(w) > 0)
    assert result.kind.causal and result.kind.gqa_group_size == 2


def test_gpt2_loaded_from_a_folder_and_switched_to_eager(tiny_models):
    lm = loading.load(str(tiny_models["gpt2"]), device="cpu", dtype="float32")  # default (sdpa) attention
    before = lm.model.config._attn_implementation
    result = attention("Hello world, hello cat", model=lm, layer=-2, head=2)
    assert lm.model.config._attn_implementation == before  # restored
    lm.model.set_attn_implementation("eager")
    ids, attentions = _reference(lm, "Hello world, hello cat")
    torch.testing.assert_close(torch.tensor(result.weights), attentions[0][0, 2])


def test_bert_weights_equal_transformers_and_see_both_ways(tiny_models):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    prompt = "the cat sat on the mat"
    result = attention(prompt, model=LoadSpec(model=str(tiny_models["bert"]), device="cpu"), head=0)
    model = AutoModelForMaskedLM.from_pretrained(tiny_models["bert"], dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    ids = AutoTokenizer.from_pretrained(tiny_models["bert"])(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        attentions = model(ids, output_attentions=True).attentions
    w = torch.tensor(result.weights)
    torch.testing.assert_close(w, attentions[-1][0, 0])  # the last layer (the default), head 0
    assert result.layer == len(attentions) - 1 and len(result.tokens) == ids.shape[1]
    assert not result.kind.causal
    upper = torch.triu(torch.ones_like(w, dtype=torch.bool), diagonal=1)
    assert torch.all(w[upper] > 0)  # later tokens are seen too


def test_token_ranking_is_topk_of_the_query_row_in_every_layer(tiny_llama):
    result = attention(PROMPT, model=tiny_llama, token="it", top=3)
    ids, attentions = _reference(tiny_llama, PROMPT)
    pieces = result.tokens
    q = result.query.position
    start = PROMPT.index(" it ") + 1
    offsets = tiny_llama.tokenizer(PROMPT, return_offsets_mapping=True)["offset_mapping"]
    assert offsets[q][1] == start + 2  # the last token of the word "it"
    assert "".join(pieces[: q + 1]).endswith("it")
    assert len(result.ranking) == len(attentions)
    for layer, ranked in zip(range(len(attentions)), result.ranking):
        row = attentions[layer][0].mean(dim=0)[q]
        values, positions = torch.topk(row, 3)
        assert [t.position for t in ranked.top] == positions.tolist()
        torch.testing.assert_close(torch.tensor([t.weight for t in ranked.top]), values)
        assert all(t.position <= q for t in ranked.top)  # never the future


@pytest.mark.parametrize("token,position", [("-1", -1), ("3", 3)])
def test_token_by_position_ranks_that_row(tiny_llama, token, position):
    result = attention(PROMPT, model=tiny_llama, token=token, top=3)
    ids, attentions = _reference(tiny_llama, PROMPT)
    q = position % ids.shape[1]
    assert result.query.position == q
    assert result.query.token == result.tokens[q] == tiny_llama.tokenizer.decode([int(ids[0, q])])
    for layer, ranked in enumerate(result.ranking):
        values, positions = torch.topk(attentions[layer][0].mean(dim=0)[q], 3)  # that query's row
        assert [t.position for t in ranked.top] == positions.tolist()
        torch.testing.assert_close(torch.tensor([t.weight for t in ranked.top]), values)


def test_find_query_by_offsets_picks_last_token_of_the_word():
    pieces = ["<s>", "The", " ca", "t", " sat"]
    offsets = [(0, 0), (0, 3), (3, 6), (6, 7), (7, 11)]
    assert find_query("cat", pieces, offsets, "The cat sat") == 3
    assert find_query("2", pieces, offsets, "The cat sat") == 2
    with pytest.raises(UsageError):
        find_query("dog", pieces, offsets, "The cat sat")
    with pytest.raises(UsageError):
        find_query("5", pieces, offsets, "The cat sat")


@pytest.mark.parametrize("kwargs,needle", [({"layer": 2}, "-2"), ({"layer": -3}, "2 layers"), ({"head": 4}, "0 to 3")])
def test_out_of_range_is_a_usage_error_with_the_range(tiny_models, kwargs, needle):
    with pytest.raises(UsageError) as info:
        attention(PROMPT, model=LoadSpec(model=str(tiny_models["llama"]), device="cpu"), **kwargs)
    assert needle in str(info.value)


@pytest.mark.slow
def test_demo_model_sliding_layers_and_mqa(demo_model):
    result = attention(PROMPT, model=demo_model, layer=0, token="it", top=2)
    ids, = [demo_model.tokenizer(PROMPT, return_tensors="pt")["input_ids"]]
    demo_model.model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            ref = demo_model.model(ids, output_attentions=True).attentions[0][0].mean(dim=0)
    finally:
        demo_model.model.set_attn_implementation("sdpa")
    torch.testing.assert_close(torch.tensor(result.weights), ref)
    assert result.layer_type == demo_model.config.layer_types[0]
    assert result.kind.num_key_value_heads == demo_model.config.num_key_value_heads
    assert [r.layer_type for r in result.ranking] == list(demo_model.config.layer_types)


def test_sliding_window_layers_mask_old_tokens(tiny_models):
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    from llmscope.loading.resolve import resolve

    torch.manual_seed(0)
    config = MistralConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
        vocab_size=400, sliding_window=3, attn_implementation="eager",
    )
    folder = str(tiny_models["llama"])
    lm = loading.LoadedModel(
        model=MistralForCausalLM(config).eval(), tokenizer=AutoTokenizer.from_pretrained(folder),
        source=resolve(folder), device="cpu", dtype="float32",
    )
    result = attention(PROMPT, model=lm, layer=1, head=2)
    w = torch.tensor(result.weights)
    n = w.shape[0]
    q, k = torch.arange(n)[:, None], torch.arange(n)[None, :]
    assert torch.all(w[(q - k >= 3) | (k > q)] == 0)  # outside the window, or the future
    assert torch.all(w[(q - k < 3) & (k <= q)] > 0)
    assert result.layer_type == "sliding_attention" and result.kind.sliding_window == 3
    assert result.kind.num_key_value_heads == 1
