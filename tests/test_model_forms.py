"""Every API function takes its model the same ways: a name or path (str or Path), a LoadSpec, or a
LoadedModel, which is reused and never loaded again; each form gives the same result."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import pytest

import llmscope
from llmscope import loading
from llmscope.loading.model import LoadSpec

CPU = {"device": "cpu", "dtype": "float32"}

# name -> (tiny model, runs the model (takes device=/dtype=)?, call(model, **options) -> result)
CASES: dict[str, tuple[str, bool, Callable[..., Any]]] = {
    "tokenize": ("llama", False, lambda m, **o: llmscope.tokenize("The cat sat", model=m, **o)),
    "compare_tokenizers": ("llama", False, lambda m, **o: llmscope.compare_tokenizers("The cat sat", [m], **o)),
    "vocab_info": ("gpt2", False, lambda m, **o: llmscope.vocab_info(m, **o)),
    "decode_ids": ("gpt2", False, lambda m, **o: llmscope.decode_ids([5, 6, 7], model=m, **o)),
    "pack": ("gpt2", False, lambda m, **o: llmscope.pack(["The cat sat.", "On the mat."], model=m, seq_len=8, **o)),
    "inspect_model": ("llama", False, lambda m, **o: llmscope.inspect_model(m, **o)),
    "memory_report": ("llama", False, lambda m, **o: llmscope.memory_report(m, context=64, memory="1GiB", **o)),
    "predict_next_token": ("gpt2", True, lambda m, **o: llmscope.predict_next_token("The cat", model=m, steps=2, **o)),
    "layer_report": ("llama", True, lambda m, **o: llmscope.layer_report("The cat", model=m, **o)),
    "generate": ("gpt2", True, lambda m, **o: llmscope.generate("The cat", model=m, max_new_tokens=4, **o)),
    "compare": (
        "gpt2", True,
        lambda m, **o: llmscope.compare("The cat", model=m, strategies=("greedy", "beam"), max_new_tokens=3, **o),
    ),
    "attention_weights": ("llama", True, lambda m, **o: llmscope.attention_weights("The cat sat", model=m, **o)),
    "expert_routing": ("mixtral", True, lambda m, **o: llmscope.expert_routing("The cat sat", model=m, **o)),
    "embedding_report": ("gpt2", True, lambda m, **o: llmscope.embedding_report(["cat", "dog"], model=m, **o)),
}

VOLATILE = ("seconds", "time", "elapsed", "per_second")  # wall-clock measurements differ run to run


def _plain(result: Any) -> Any:
    """The result as plain data, without wall-clock timings."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not any(w in k for w in VOLATILE)}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        return value

    return strip(dataclasses.asdict(result))


@pytest.fixture
def loads(monkeypatch):
    """Counts of weight loads and tokenizer loads made while the test runs."""
    counts = {"model": 0, "tokenizer": 0}
    from llmscope.loading import model as loading_model  # where load() finds them

    real_model, real_tokenizer = loading_model.load_model, loading_model.load_tokenizer

    def load_model(*args, **kwargs):
        counts["model"] += 1
        return real_model(*args, **kwargs)

    def load_tokenizer(*args, **kwargs):
        counts["tokenizer"] += 1
        return real_tokenizer(*args, **kwargs)

    monkeypatch.setattr(loading_model, "load_model", load_model)
    monkeypatch.setattr(loading_model, "load_tokenizer", load_tokenizer)
    return counts


@pytest.mark.parametrize("name", list(CASES))
def test_every_model_form_gives_the_same_result_and_a_loaded_model_is_not_loaded_again(name, tiny_models, loads):
    kind, runs, call = CASES[name]
    folder = tiny_models[kind]
    options = CPU if runs else {}
    # attention needs eager attention: a LoadedModel for it is loaded that way
    lm = llmscope.load(str(folder), **CPU, attn_implementation="eager" if name == "attention_weights" else None)
    loads.update(model=0, tokenizer=0)

    want = _plain(call(str(folder), **options))
    assert loads["model"] == (1 if runs else 0)
    loads.update(model=0, tokenizer=0)

    assert _plain(call(lm)) == want
    assert loads == {"model": 0, "tokenizer": 0}  # reused as it is

    spec = LoadSpec(model=str(folder), **options)
    assert _plain(call(spec)) == want  # the spec's device and dtype, with no options beside it
    assert loads["model"] == (1 if runs else 0)

    assert _plain(call(Path(folder), **options)) == want


def test_inspect_model_of_a_loaded_model(loaded_models, tiny_models):
    """The notebook case of issue 14: inspect_model(lm) once failed with AttributeError 'strip'."""
    report = llmscope.inspect_model(loaded_models["gpt2"])
    assert report == llmscope.inspect_model(str(tiny_models["gpt2"]))
    assert report.parameters.total == sum(p.numel() for p in loaded_models["gpt2"].model.parameters())


# --------------------------------------------------------------------------------------------
# load_spec and source_of


def test_load_spec_overrides_only_what_is_given(tiny_models):
    spec = LoadSpec(model="gpt2", device="cpu", trust_remote_code=True)
    # a function's defaults (device="auto", trust_remote_code=False) never undo the spec's choices
    assert loading.load_spec(spec, device="auto", dtype="auto", trust_remote_code=False) == spec
    assert loading.load_spec(spec, dtype="bf16").dtype == "bf16"
    assert loading.load_spec(Path("a/b"), revision="v1") == LoadSpec(model="a/b", revision="v1")
    assert loading.load_spec(None) == LoadSpec()
    with pytest.raises(TypeError):
        loading.load_spec("gpt2", devcie="cpu")
    with pytest.raises(llmscope.LlmscopeError, match="model= takes"):
        loading.load_spec(42)


def test_source_of_each_form(loaded_models, tiny_models):
    lm = loaded_models["gpt2"]
    folder = str(tiny_models["gpt2"])
    assert loading.source_of(lm) is lm.source
    assert loading.source_of(folder) == loading.source_of(LoadSpec(model=folder)) == lm.source
    assert loading.source_of(Path(folder)) == lm.source
    assert loading.source_of("someone/model", revision="v2").display_name == "someone/model@v2"
    # a LoadedModel built by hand (no spec recorded) still gives a spec that loads the same model
    bare = dataclasses.replace(lm, spec=None)
    assert loading.source_of(loading.load_spec(bare)) == lm.source


def test_a_loaded_model_is_returned_as_it_is(loaded_models):
    lm = loaded_models["llama"]
    assert llmscope.load(lm) is lm
    assert llmscope.load(lm, device="cuda", dtype="float16") is lm  # not loaded again, whatever the options


def test_options_from_the_command_line_make_the_spec():
    from llmscope._options import load_spec_from_options

    spec = load_spec_from_options("gpt2", "main", None, "cpu", "bfloat16", True)
    assert spec == LoadSpec(model="gpt2", revision="main", device="cpu", dtype="bfloat16", trust_remote_code=True)
