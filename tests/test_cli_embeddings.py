"""``llmscope embeddings`` through main(): the --json document, the views, and bad input before any load."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F


def test_nested_keys_and_numbers(cli, tiny_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmscope.loading.resolve import resolve

    folder = tiny_models["llama"]
    r = cli("embeddings", "cat", "dog", "mat", "-m", folder, "--analogy", "cat - dog + mat", "-k", "3", "--plot",
            "--word", "cat", "--context", "The cat sat.", "--context", "A brown cat.", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()  # (its top-level keys are pinned in test_json_keys)
    assert data["model"] == resolve(str(folder)).display_name
    assert [set(w) for w in data["words"]] == [{"text", "token_ids", "tokens"}] * 3
    assert [set(n) for n in data["neighbors"]] == [{"word", "top"}] * 3
    assert all(set(x) == {"id", "token", "cosine"} and len(n["top"]) == 3 for n in data["neighbors"] for x in n["top"])
    assert set(data["analogy"]) == {"expression", "top"} and data["analogy"]["expression"] == "cat - dog + mat"
    assert set(data["context"]) == {"word", "sentences", "layers"}
    assert [set(s) for s in data["context"]["sentences"]] == [{"text", "positions"}] * 2
    assert [set(row) for row in data["context"]["layers"]] == [{"hidden_state", "layer", "cosine"}] * 3
    assert [row["layer"] for row in data["context"]["layers"]] == [None, 0, 1]  # embed, then layers from 0
    assert [set(p) for p in data["projection"]] == [{"label", "x", "y"}] * 3

    # the numbers, from transformers directly
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    weight = model.get_input_embeddings().weight.detach()
    ids = [tokenizer(" " + w, add_special_tokens=False)["input_ids"] for w in ("cat", "dog", "mat")]
    assert [w["token_ids"] for w in data["words"]] == ids
    vectors = [weight[i].mean(dim=0) for i in ids]
    assert data["similarity"][0][1] == pytest.approx(float(F.cosine_similarity(vectors[0], vectors[1], dim=0)),
                                                     abs=1e-4)
    scores = F.normalize(weight, dim=1) @ F.normalize(vectors[2], dim=0)
    scores[ids[2]] = float("-inf")
    assert [x["id"] for x in data["neighbors"][2]["top"]] == torch.topk(scores, 3).indices.tolist()


def test_three_sentences_give_every_pair(cli, tiny_models):
    r = cli("embeddings", "-m", tiny_models["gpt2"], "--word", "cat", "--context", "The cat sat.",
            "--context", "A cat.", "--context", "The cat read books.", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    assert data["words"] == [] and data["neighbors"] == [] and data["projection"] is None
    for row in data["context"]["layers"]:
        assert set(row) == {"hidden_state", "layer", "cosine", "similarity"}
        assert row["similarity"][0][1] == pytest.approx(row["cosine"])
        assert [row["similarity"][i][i] for i in range(3)] == pytest.approx([1.0] * 3)


def test_five_sentences_show_all_ten_pairs_in_80_columns(cli, tiny_models):
    sentences = ["the cat sat", "a cat", "cat books", "my cat", "cat time"]
    r = cli("embeddings", "-m", tiny_models["gpt2"], "--word", "cat", *[a for s in sentences for a in ("--context", s)])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "1~2" in line)
    assert header.split()[1:] == ["1~2", "1~3", "1~4", "1~5", "2~3", "2~4", "2~5", "3~4", "3~5", "4~5"]
    data = cli("embeddings", "-m", tiny_models["gpt2"], "--word", "cat", "--json",
               *[a for s in sentences for a in ("--context", s)]).json()
    embed = next(line for line in lines if line.split()[:1] == ["embed"])
    shown = [float(x) for x in embed.split()[1:]]
    matrix = data["context"]["layers"][0]["similarity"]
    assert shown == pytest.approx([matrix[a][b] for a in range(5) for b in range(a + 1, 5)], abs=0.005)


def test_every_view_renders_in_80_columns(cli, tiny_models):
    r = cli("embeddings", "cat", "dog", "mat", "capital", "-m", tiny_models["gpt2"], "--analogy", "cat - dog + mat",
            "--plot", "--word", "cat", "--context", "The cat sat.", "--context", "A brown cat.",
            "--context", "The cat read books.")
    assert r.exit_code == 0, r.stderr
    for title in ("Words and their tokens", "Cosine similarity", "Nearest vocabulary tokens", "cat - dog + mat ≈",
                  "'cat' across the sentences", "1~3", "PC1", "PC2"):
        assert title in r.stdout, title
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    assert all(f"● {w}" in r.stdout or f"{w} ●" in r.stdout for w in ("cat", "dog", "mat", "capital"))


def test_eleven_words_fit_the_heatmap_in_80_columns(cli, tiny_models):
    words = "cat dog mat capital robot books time transformers parallel attention emoji".split()
    r = cli("embeddings", *words, "-m", tiny_models["gpt2"], "-k", "0")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if line.split()[:2] == ["1", "2"])
    assert header.split()[-1] == "11"
    assert all(len(line.split()) == 13 for line in lines if line.split()[:1] and line.split()[0] in map(str, range(1, 12))
               and "." in line)


def test_export_saves_the_picture(cli, tiny_models, tmp_path):
    target = tmp_path / "words.txt"
    r = cli("embeddings", "cat", "dog", "-m", tiny_models["gpt2"], "--export", target)
    assert r.exit_code == 0, r.stderr
    saved = target.read_text(encoding="utf-8")
    assert "Cosine similarity" in saved and "tied to the LM head" in " ".join(saved.split())


def test_layer_says_which_vectors(cli, tiny_models):
    r = cli("embeddings", "cat", "dog", "-m", tiny_models["bert"], "--layer", "1")
    assert r.exit_code == 0, r.stderr
    shown = " ".join(r.stdout.split())
    assert "the output of layer 1, each word run alone" in shown and "Nearest other words" in shown
    r = cli("embeddings", "cat", "dog", "-m", tiny_models["bert"], "--layer", "embed")
    assert r.exit_code == 0 and "the embedding output, each word run alone" in " ".join(r.stdout.split())
    r = cli("embeddings", "cat", "dog", "-m", tiny_models["bert"], "--layer", "9")
    assert r.exit_code == 2 and "--layer 9: this model has layers 0 to 1" in r.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        ([], "no words"),
        (["king", "--analogy", "+"], "no term"),
        (["--analogy", "king - - man"], "two signs"),
        (["--word", "bank", "--context", "a river bank", "--context", "money"],
         "--word 'bank' is not in sentence 2 of --context: 'money'"),
        (["--word", "bank", "--context", "a river bank"], "two or more"),
        (["--context", "a bank", "--context", "the bank"], "needs --word"),
        (["--word", "bank"], "0 --context given"),
        (["king", "--plot"], "at least two words"),
        (["king", "--neighbors", "-1"], "neighbors"),
        (["", "queen"], "empty"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_load(cli, monkeypatch, args, words):
    def no_load(*a, **k):
        raise AssertionError("the loader was called")

    monkeypatch.setattr("llmscope.loading.load", no_load)
    r = cli("embeddings", *args, "-m", "/nonexistent/model")
    assert r.exit_code == 2, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_demo_model_king_queen(cli):
    r = cli("embeddings", "king", "queen", "man", "woman", "--analogy", "king - man + woman", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    assert data["model"].startswith("gemma-3-270m")
    assert [w["tokens"] for w in data["words"]] == [[" king"], [" queen"], [" man"], [" woman"]]
    assert data["analogy"]["top"][0]["token"] == " queen"
