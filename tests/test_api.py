"""The Python API: lazy exports, and every result type has the renderer the CLI draws it with."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import json
import subprocess
import sys

import pytest

import llmscope
from llmscope import render

# The public API, pinned here by hand: name -> (the module that defines it, function or class).
# Adding, removing or moving a public name must change this table on purpose.
API = {
    "inspect_model": ("llmscope.config.architecture", "function"),
    "ArchitectureReport": ("llmscope.config.architecture", "class"),
    "kv_cache_estimate": ("llmscope.config.kv_cache", "function"),
    "load": ("llmscope.loading.model", "function"),
    "LoadedModel": ("llmscope.loading.model", "class"),
    "LoadSpec": ("llmscope.loading.model", "class"),
    "resolve": ("llmscope.loading.resolve", "function"),
    "ModelSource": ("llmscope.loading.resolve", "class"),
    "LlmscopeError": ("llmscope.errors", "class"),
    "show": ("llmscope.render", "function"),
    "renderable": ("llmscope.render", "function"),
    "generate": ("llmscope.decoding.generation", "function"),
    "compare": ("llmscope.decoding.generation", "function"),
    "GenerationResult": ("llmscope.decoding.generation", "class"),
    "ComparisonResult": ("llmscope.decoding.generation", "class"),
    "DecodingSettings": ("llmscope.decoding.sampling", "class"),
    "settings_for": ("llmscope.decoding.sampling", "function"),
    "parse_strategy_list": ("llmscope.decoding.sampling", "function"),
    "memory_report": ("llmscope.memory.report", "function"),
    "MemoryReport": ("llmscope.memory.report", "class"),
    "parse_size": ("llmscope.units", "function"),
    "attention_weights": ("llmscope.forward.attention", "function"),
    "AttentionResult": ("llmscope.forward.attention", "class"),
    "attention_walk": ("llmscope.forward.walk", "function"),
    "AttentionWalk": ("llmscope.forward.walk", "class"),
    "head_scores": ("llmscope.forward.heads", "function"),
    "HeadsReport": ("llmscope.forward.heads", "class"),
    "why": ("llmscope.explain.why", "function"),
    "WhyResult": ("llmscope.explain.why", "class"),
    "contributions": ("llmscope.explain.contributions", "function"),
    "ContributionsResult": ("llmscope.explain.contributions", "class"),
    "patch": ("llmscope.explain.patch", "function"),
    "PatchResult": ("llmscope.explain.patch", "class"),
    "expert_routing": ("llmscope.forward.experts", "function"),
    "ExpertRoutingResult": ("llmscope.forward.experts", "class"),
    "pack": ("llmscope.text.packing", "function"),
    "PackingResult": ("llmscope.text.packing", "class"),
    "tokenize": ("llmscope.text.tokens", "function"),
    "decode_ids": ("llmscope.text.tokens", "function"),
    "compare_tokenizers": ("llmscope.text.tokens", "function"),
    "vocab_info": ("llmscope.text.vocab", "function"),
    "TokenizationResult": ("llmscope.text.tokens", "class"),
    "DecodeResult": ("llmscope.text.tokens", "class"),
    "TokenizerComparison": ("llmscope.text.tokens", "class"),
    "VocabInfo": ("llmscope.text.vocab", "class"),
    "predict_next_token": ("llmscope.decoding.next_token", "function"),
    "NextTokenResult": ("llmscope.decoding.distribution", "class"),
    "Stepper": ("llmscope.decoding.stepping", "class"),
    "stepper": ("llmscope.decoding.stepping", "function"),
    "layer_report": ("llmscope.forward.layers", "function"),
    "LayerReport": ("llmscope.forward.layers", "class"),
    "score_text": ("llmscope.forward.scoring", "function"),
    "compare_scores": ("llmscope.forward.scoring", "function"),
    "ScoreResult": ("llmscope.forward.scoring", "class"),
    "ScoreComparison": ("llmscope.forward.scoring", "class"),
    "prompt_report": ("llmscope.views", "function"),
    "PromptReport": ("llmscope.views", "class"),
    "embedding_report": ("llmscope.forward.embeddings", "function"),
    "EmbeddingReport": ("llmscope.forward.embeddings", "class"),
}

# Run in a fresh interpreter: in this one, an earlier test may already have imported a submodule
# whose name is also a public name (``llmscope.views``), which would decide the outcome.
RESOLVE = r"""
import importlib, inspect, json, sys
api = json.loads(sys.argv[1])
if sys.argv[2] == "modules first":
    for module, _ in api.values():
        importlib.import_module(module)
import llmscope
out = {}
for name, (module, _) in api.items():
    value = getattr(llmscope, name)
    kind = "class" if inspect.isclass(value) else "function" if inspect.isfunction(value) else type(value).__name__
    defined = getattr(importlib.import_module(module), name, None)
    out[name] = [kind, getattr(value, "__module__", None), value is defined]
print(json.dumps(out))
"""


def _resolved(order: str) -> dict[str, list]:
    done = subprocess.run([sys.executable, "-c", RESOLVE, json.dumps(API), order], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_all_is_exactly_the_pinned_api():
    assert llmscope.__all__ == ["__version__", *API]
    assert sorted(dir(llmscope)) == sorted(llmscope.__all__)


def test_version_is_the_installed_distributions():
    assert llmscope.__version__ == importlib.metadata.version("llmscope")


def test_every_exported_name_is_what_its_module_defines():
    """``import llmscope`` then ``llmscope.NAME``: a function or class defined in the pinned module
    (its ``__module__``), the very object that module holds under NAME."""
    got = _resolved("llmscope first")
    assert got == {name: [kind, module, True] for name, (module, kind) in API.items()}


def test_every_exported_name_survives_importing_its_module_first():
    """The same after every defining module was imported first (as the CLI and render do)."""
    got = _resolved("modules first")
    assert got == {name: [kind, module, True] for name, (module, kind) in API.items()}


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        llmscope.no_such_thing  # noqa: B018


def test_every_renderer_in_the_table_exists_for_an_exported_result_class():
    for class_name, target in render._RENDERERS.items():
        module, function = target.split(":")
        assert inspect.isfunction(getattr(importlib.import_module(f"llmscope.render.{module}"), function))
        assert API[class_name][1] == "class", class_name


def test_show_draws_what_the_cli_draws(config_folder, capsys, cli):
    folder = config_folder("gpt2")
    llmscope.show(llmscope.inspect_model(str(folder)))
    shown = capsys.readouterr().out
    assert "124,439,808" in shown
    assert shown == cli("inspect", folder).stdout
