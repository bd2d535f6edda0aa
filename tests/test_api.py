"""The Python API: lazy exports, and every result type has the renderer the CLI draws it with."""

from __future__ import annotations

import importlib

import llmscope
from llmscope import render


def test_every_exported_name_resolves():
    for name in llmscope.__all__:
        assert getattr(llmscope, name) is not None, name


def test_every_renderer_in_the_table_exists_for_an_exported_result_class():
    for class_name, target in render._RENDERERS.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(f"llmscope.render.{module}"), function))
        assert class_name in llmscope.__all__, class_name


def test_show_draws_what_the_cli_draws(config_folder, capsys, cli):
    folder = config_folder("gpt2")
    llmscope.show(llmscope.inspect_model(str(folder)))
    shown = capsys.readouterr().out
    assert "124,439,808" in shown
    assert shown == cli("inspect", folder).stdout
