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

def _settings(strategy: str, max_new_tokens: int):
    from llmscope.decoding.sampling import settings_for

    return settings_for(strategy, max_new_tokens=max_new_tokens)


# name -> (tiny model, runs the model (a spec's device and dtype matter)?, call(model) -> result)
CASES: dict[str, tuple[str, bool, Callable[..., Any]]] = {
    "tokenize": ("llama", False, lambda m: llmscope.tokenize("The cat sat", model=m)),
    "compare_tokenizers": ("llama", False, lambda m: llmscope.compare_tokenizers("The cat sat", [m])),
    "vocab_info": ("gpt2", False, lambda m: llmscope.vocab_info(m)),
    "decode_ids": ("gpt2", False, lambda m: llmscope.decode_ids([5, 6, 7], model=m)),
    "pack": ("gpt2", False, lambda m: llmscope.pack(["The cat sat.", "On the mat."], model=m, seq_len=8)),
    "inspect_model": ("llama", False, lambda m: llmscope.inspect_model(m)),
    "memory_report": ("llama", False, lambda m: llmscope.memory_report(m, context=64, memory="1GiB")),
    "predict_next_token": ("gpt2", True, lambda m: llmscope.predict_next_token("The cat", model=m, steps=2)),
    "layer_report": ("llama", True, lambda m: llmscope.layer_report("The cat", model=m)),
    "generate": ("gpt2", True, lambda m: llmscope.generate("The cat", model=m, settings=_settings("greedy", 4))),
    "compare": (
        "gpt2", True,
        lambda m: llmscope.compare("The cat", model=m, strategies=(_settings("greedy", 3), _settings("beam", 3))),
    ),
    "attention_weights": ("llama", True, lambda m: llmscope.attention_weights("The cat sat", model=m)),
    "expert_routing": ("mixtral", True, lambda m: llmscope.expert_routing("The cat sat", model=m)),
    "embedding_report": ("gpt2", True, lambda m: llmscope.embedding_report(["cat", "dog"], model=m)),
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

    spec = LoadSpec(model=str(folder), **options)  # the model options travel in the spec alone
    want = _plain(call(spec))
    assert loads["model"] == (1 if runs else 0)
    loads.update(model=0, tokenizer=0)

    assert _plain(call(lm)) == want
    assert loads == {"model": 0, "tokenizer": 0}  # reused as it is

    if not runs or not _accelerator():  # device="auto" is then the CPU, and dtype="auto" float32 there
        assert _plain(call(str(folder))) == want
        assert _plain(call(Path(folder))) == want


def _accelerator() -> bool:
    import torch

    return torch.cuda.is_available() or torch.backends.mps.is_available()


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


# --------------------------------------------------------------------------------------------
# The model options travel in model= (issue 27)

LOOSE = {"revision", "gguf_file", "device", "dtype", "trust_remote_code"}


def test_the_model_options_are_no_keywords_beside_model():
    """Only load() and load_spec() build a spec from keywords; the others take it as model=."""
    import inspect as pyinspect

    for fn in (llmscope.tokenize, llmscope.decode_ids, llmscope.compare_tokenizers, llmscope.vocab_info,
               llmscope.pack, llmscope.inspect_model):
        assert not LOOSE & set(pyinspect.signature(fn).parameters), fn.__name__
    # memory_report's dtype= is memory --dtype: the dtype to size, not how to load
    assert not (LOOSE - {"dtype"}) & set(pyinspect.signature(llmscope.memory_report).parameters)
    assert LOOSE <= set(pyinspect.signature(llmscope.load).parameters)
    with pytest.raises(TypeError):
        llmscope.tokenize("hi", model="gpt2", revision="main")


def test_a_spec_carries_the_gguf_file(tiny_gguf):
    spec = LoadSpec(model=str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    assert llmscope.inspect_model(spec) == llmscope.inspect_model(str(tiny_gguf))


def test_memory_sizes_its_own_dtype_not_the_spec_s(tiny_models):
    folder = str(tiny_models["llama"])
    spec = LoadSpec(model=folder, device="cpu", dtype="float16")  # how one would load it: no part here
    assert llmscope.memory_report(spec, context=64, memory="1GiB").weights.dtype == "bfloat16"
    assert llmscope.memory_report(spec, context=64, memory="1GiB", dtype="float32") == llmscope.memory_report(
        folder, context=64, memory="1GiB", dtype="float32")
