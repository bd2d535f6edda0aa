"""``llmscope experts`` through main(): JSON shape, rendering, the dense-model message."""

from __future__ import annotations

import torch

from llmscope import loading

PROMPT = "The quick brown fox jumps over the lazy dog."


def test_json(cli, tiny_models):
    folder = str(tiny_models["mixtral"])
    r = cli("experts", PROMPT, "-m", folder, "--device", "cpu", "--json")
    assert r.exit_code == 0, r.stderr
    data = r.json()
    lm = loading.load(folder, device="cpu")
    ids = lm.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = lm.model(ids, output_router_logits=True).router_logits  # layers x (tokens, experts)
    assert [x["layer"] for x in data["layers"]] == [0, 1]
    for layer, layer_logits in zip(data["layers"], logits):
        top = torch.topk(torch.softmax(layer_logits.float(), dim=-1), 2, dim=-1).indices
        assert [t["experts"] for t in layer["tokens"]] == top.tolist()
        assert all(set(t) == {"token", "experts", "weights"} for t in layer["tokens"])
        assert sum(layer["load"]) == 2 * ids.shape[1]
    assert data["parameters"]["total"] == sum(p.numel() for p in lm.model.parameters())


def test_rendering_at_80_columns(cli, tiny_models):
    r = cli("experts", PROMPT, "-m", str(tiny_models["mixtral"]), "--device", "cpu")
    assert r.exit_code == 0, r.stderr
    assert "4 experts per layer, top-2 per token, 2 MoE layers" in r.stdout
    assert "Expert load" in r.stdout and "active per token" in r.stdout
    assert "L0" in r.stdout and "L1" in r.stdout
    assert all(len(line) <= 80 for line in r.stdout.splitlines())


def test_dense_model_exit_1(cli, tiny_models):
    r = cli("experts", PROMPT, "-m", str(tiny_models["llama"]), "--device", "cpu")
    assert r.exit_code == 1
    assert "dense model" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_bad_values_exit_2(cli, tiny_models):
    for args in (["--device", "tpu"], ["--dtype", "int3"], ["--export", "x.pdf"]):
        r = cli("experts", PROMPT, "-m", str(tiny_models["mixtral"]), *args)
        assert r.exit_code == 2, args
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
