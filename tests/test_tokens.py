"""llmscope.text.tokens against transformers' tokenizers called directly (tiny BPE / WordPiece fixtures,
and the embedded Gemma 3 270M tokenizer for the slow tests)."""

from __future__ import annotations

import json

import pytest

from llmscope.errors import UsageError
from llmscope.text.tokens import compare_tokenizers, decode_ids, parse_ids, tokenize
from llmscope.text.vocab import vocab_info

TEXTS = [
    "Hello, world!",
    "",
    " ",
    "   leading and trailing spaces   ",
    "tabs\tand\t\ttabs",
    "line one\nline two\r\n\n\nend",
    "naïve café résumé Ångström",
    "東京は日本の首都です。",
    "emoji 😀🚀 and family 👨‍👩‍👧 and flag 🇫🇷",
    "def add(a, b):\n    return a + b  # sum\n",
    "special strings: <s> </s> [CLS] [SEP] [MASK] <|endoftext|> <bos> <eos>",
    "mixed 123,456.78 $%^&*() {}[] \\ / `code`",
    "\u200b zero width \ufeff bom \u00a0 nbsp",
]

MODELS = ["gpt2", "llama", "bert"]


@pytest.fixture(scope="module")
def hf_tokenizers(tiny_models):
    """The fixtures' tokenizers loaded with AutoTokenizer directly, defaults only."""
    from transformers import AutoTokenizer

    return {name: AutoTokenizer.from_pretrained(tiny_models[name]) for name in MODELS}


@pytest.mark.parametrize("name", MODELS)
def test_loading_by_folder_gives_the_tokenizers_ids(name, tiny_models, hf_tokenizers):
    text = TEXTS[8] + TEXTS[10]
    result = tokenize(text, model=str(tiny_models[name]))
    assert result.ids == hf_tokenizers[name](text)["input_ids"]
    assert result.model == str(tiny_models[name])


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("name", MODELS)
def test_ids_tokens_offsets_match_transformers(name, text, hf_tokenizers):
    tok = hf_tokenizers[name]
    result = tokenize(text, model=tok)
    expected = tok(text, return_offsets_mapping=True)
    assert result.ids == expected["input_ids"]
    assert [t.token for t in result.tokens] == tok.convert_ids_to_tokens(expected["input_ids"])
    assert [(t.start, t.end) for t in result.tokens] == [tuple(o) for o in expected["offset_mapping"]]
    specials = set(tok.all_special_ids)
    assert [t.special for t in result.tokens] == [i in specials for i in expected["input_ids"]]
    assert result.num_characters == len(text)
    plain = tokenize(text, model=tok, add_special_tokens=False)
    assert plain.ids == tok(text, add_special_tokens=False)["input_ids"]
    assert not plain.added_special_tokens


def test_empty_text_is_not_an_error(hf_tokenizers):
    for name, tok in hf_tokenizers.items():
        result = tokenize("", model=tok)
        assert result.ids == tok("")["input_ids"], name
        assert all(t.added for t in result.tokens)
        assert result.characters_per_token is None
    assert tokenize("", model=hf_tokenizers["gpt2"]).ids == []


def test_added_special_tokens_are_explained(hf_tokenizers):
    llama = tokenize("Hello", model=hf_tokenizers["llama"])
    bos = hf_tokenizers["llama"].bos_token_id
    assert [(a.position, a.id, a.role) for a in llama.added_special_tokens] == [(0, bos, "bos_token")]
    assert "start" in llama.added_special_tokens[0].reason

    bert_tok = hf_tokenizers["bert"]
    bert = tokenize("Hello", model=bert_tok)
    n = bert.num_tokens
    assert [(a.position, a.id, a.role) for a in bert.added_special_tokens] == [
        (0, bert_tok.cls_token_id, "cls_token"),
        (n - 1, bert_tok.sep_token_id, "sep_token"),
    ]
    assert "end" in bert.added_special_tokens[1].reason
    assert tokenize("Hello", model=hf_tokenizers["gpt2"]).added_special_tokens == ()


def test_special_token_strings_in_the_text_are_not_called_added(hf_tokenizers):
    tok = hf_tokenizers["llama"]
    result = tokenize("a <s> b", model=tok)
    inside = [t for t in result.tokens if t.id == tok.bos_token_id]
    assert len(inside) == 2  # the added one and the one typed in the text, as the tokenizer does it
    assert [t.added for t in inside] == [True, False]
    assert result.text[inside[1].start : inside[1].end] == "<s>"


def test_pieces_rebuild_the_text_for_byte_level_bpe(hf_tokenizers):
    tok = hf_tokenizers["gpt2"]
    for text in ("tabs\tand  spaces\n", "def add(a, b):\n    return a + b\n", "naïve café"):
        result = tokenize(text, model=tok)
        # Pieces come from the bytes each vocabulary string stands for; whole characters rebuild the text.
        if not any(t.partial for t in result.tokens):
            assert "".join(t.piece for t in result.tokens) == tok.decode(result.ids) == text
    emoji = tokenize("😀", model=tok)
    assert len(emoji.ids) > 1 and all(t.partial for t in emoji.tokens)
    assert "\\x" in emoji.tokens[0].piece
    assert {(t.start, t.end) for t in emoji.tokens} == {(0, 1)}


def test_chat_template_matches_apply_chat_template(hf_tokenizers):
    tok = hf_tokenizers["llama"]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <s> there"}]
    result = tokenize("Hi <s> there", model=tok, chat=True, system="Be brief.")
    assert result.chat and list(result.messages) == messages
    assert result.text == tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert result.ids == list(tok.apply_chat_template(messages, add_generation_prompt=True)["input_ids"])
    assert result.added_special_tokens == ()


def test_chat_without_template_names_the_model(tiny_models):
    with pytest.raises(UsageError, match="no chat template") as info:
        tokenize("hi", model=str(tiny_models["gpt2"]), chat=True)
    assert str(tiny_models["gpt2"]) in str(info.value)
    with pytest.raises(UsageError, match="system needs chat=True"):
        tokenize("hi", model=str(tiny_models["gpt2"]), system="x")


def test_loaded_model_is_accepted(tiny_models):
    import llmscope

    lm = llmscope.load(str(tiny_models["llama"]), device="cpu", dtype="float32")
    result = tokenize("the cat", model=lm)
    assert result.ids == lm.tokenizer("the cat")["input_ids"]
    assert result.model == lm.source.display_name


def test_decode_ids_matches_transformers(hf_tokenizers):
    tok = hf_tokenizers["bert"]
    ids = tok("Hello [MASK] café!")["input_ids"]
    result = decode_ids(ids, model=tok)
    assert [t.token for t in result.tokens] == tok.convert_ids_to_tokens(ids)
    assert result.text == tok.decode(ids)
    assert decode_ids(",".join(map(str, ids)), model=tok).ids == tuple(ids)
    with pytest.raises(UsageError, match="not in the vocabulary"):
        decode_ids([len(tok)], model=tok)
    assert decode_ids([len(tok) - 1], model=tok).ids == (len(tok) - 1,)


def test_parse_ids():
    assert parse_ids("504,3575, 12") == [504, 3575, 12]
    assert parse_ids("[1, 2 3]") == [1, 2, 3]
    for bad in ("", "1,-2", "1,x", "1.5"):
        with pytest.raises(UsageError):
            parse_ids(bad)


def test_vocab_info_reads_the_tokenizer(hf_tokenizers):
    for name, tok in hf_tokenizers.items():
        info = vocab_info(tok)
        doc = json.loads(tok.backend_tokenizer.to_str())
        assert info.model_type == doc["model"]["type"]
        assert info.vocab_size == tok.vocab_size and info.total_size == len(tok)
        for special in info.special_tokens:
            assert special.id == tok.convert_tokens_to_ids(special.token)
        assert {s.token for s in info.special_tokens} >= set(tok.all_special_tokens)
    gpt2, bert, llama = (vocab_info(hf_tokenizers[n]) for n in ("gpt2", "bert", "llama"))
    assert gpt2.model_type == "BPE" and gpt2.byte_level and not gpt2.adds_bos
    assert bert.model_type == "WordPiece" and not bert.byte_level and "BertNormalizer" in bert.normalizer
    assert bert.adds_eos is False  # [SEP] is not eos_token
    assert llama.adds_bos and llama.has_chat_template
    assert {s.role: s.token for s in bert.special_tokens if s.role}["mask_token"] == "[MASK]"


def test_compare_tokenizers(hf_tokenizers):
    text = TEXTS[7] + " " + TEXTS[8] + " " + TEXTS[9]
    toks = [hf_tokenizers[n] for n in MODELS]
    result = compare_tokenizers(text, toks)
    assert [r.ids for r in result.results] == [t(text)["input_ids"] for t in toks]
    for r, counts in zip(result.results, result.tokens_by_category):
        assert sum(counts.values()) == r.num_tokens
    assert "CJK" in result.categories and "emoji" in result.categories
    data = result.to_json()
    assert [m["num_tokens"] for m in data["models"]] == [len(t(text)["input_ids"]) for t in toks]


def test_json_shape(hf_tokenizers):
    from llmscope.render import to_jsonable

    tok = hf_tokenizers["llama"]
    data = to_jsonable(tokenize("a b", model=tok))
    expected = tok("a b", return_offsets_mapping=True)
    assert data["ids"] == expected["input_ids"]
    assert data["offsets"] == [list(o) for o in expected["offset_mapping"]]
    assert data["tokens"] == tok.convert_ids_to_tokens(expected["input_ids"])
    assert data["num_tokens"] == len(expected["input_ids"])
    assert data["added_special_tokens"][0]["role"] == "bos_token"


# --------------------------------------------------------------------------------------------
# Property: any text gives the tokenizer's own ids

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    ALPHABET = st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "é", "東", "😀", "👨‍👩‍👧", "<s>", "[CLS]", "##"]),
    )

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(text=st.lists(ALPHABET, max_size=25).map("".join))
    def test_any_text_gives_the_tokenizers_ids(hf_tokenizers, text):
        for name, tok in hf_tokenizers.items():
            result = tokenize(text, model=tok)
            expected = tok(text, return_offsets_mapping=True)
            assert result.ids == expected["input_ids"], name
            assert [(t.start, t.end) for t in result.tokens] == [tuple(o) for o in expected["offset_mapping"]]


# --------------------------------------------------------------------------------------------
# The embedded Gemma 3 270M (its tokenizer only; a 262k-token SentencePiece-style BPE)


@pytest.fixture(scope="module")
def gemma():
    """(llmscope's tokenizer, AutoTokenizer loaded directly from the same converted files)."""
    from transformers import AutoTokenizer

    from llmscope import loading
    from llmscope.loading.resolve import resolve

    source = resolve(None)
    ours = loading.load_tokenizer(source)
    folder, _ = loading.model._pretrained_location(source, "tokenizer")
    return ours, AutoTokenizer.from_pretrained(folder)


@pytest.mark.slow
def test_embedded_model_ids_match_autotokenizer(gemma):
    ours, direct = gemma
    for text in TEXTS:
        result = tokenize(text, model=ours)
        expected = direct(text, return_offsets_mapping=True)
        assert result.ids == expected["input_ids"], repr(text)
        assert [(t.start, t.end) for t in result.tokens] == [tuple(o) for o in expected["offset_mapping"]]
        assert [t.token for t in result.tokens] == direct.convert_ids_to_tokens(expected["input_ids"])
    assert tokenize("", model=ours).ids == direct("")["input_ids"] == [direct.bos_token_id]
    assert tokenize("Hello", model=ours).added_special_tokens[0].role == "bos_token"


@pytest.mark.slow
def test_embedded_model_default_and_vocab(gemma):
    ours, direct = gemma
    result = tokenize("Hello, world! 東京 😀")  # model=None: the embedded default, tokenizer only
    assert result.ids == direct("Hello, world! 東京 😀")["input_ids"]
    info = vocab_info(ours)
    assert info.vocab_size == direct.vocab_size
    assert info.byte_fallback == json.loads(direct.backend_tokenizer.to_str())["model"]["byte_fallback"]
    assert info.model_type == json.loads(direct.backend_tokenizer.to_str())["model"]["type"]
    assert decode_ids(result.ids, model=ours).text == direct.decode(result.ids)
