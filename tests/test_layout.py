"""The house's shape: no import cycles between llmscope's modules, read from their source with ``ast``.

Every ``import llmscope.x`` / ``from llmscope[.x] import y`` counts, at module level or inside a function
(a function-level import is still a dependency, only a later one); imports under ``if TYPE_CHECKING:``
do not (they never run).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "llmscope"


def module_name(path: Path) -> str:
    if not path.is_relative_to(PACKAGE.parent):  # a file outside the package (the checker's own test)
        return path.stem
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """The llmscope modules PATH imports when it runs (TYPE_CHECKING blocks left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from llmscope import x`: x is a module
    return {name for name in found if name in modules and name != this}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    graph = {module_name(p): runtime_imports(p, modules) for p in paths}
    # importing llmscope.a.b runs llmscope.a's __init__ first: a package's own re-exports are not a cycle
    return {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_reader_sees_function_level_imports_and_skips_type_checking(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nfrom llmscope import errors\nif TYPE_CHECKING:\n"
        "    from llmscope.loading import LoadedModel\ndef f():\n    from llmscope.units import fmt_bytes\n")
    modules = {"llmscope.errors", "llmscope.loading", "llmscope.units"}
    assert runtime_imports(source, modules) == {"llmscope.errors", "llmscope.units"}


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


# The layer order, bottom first: a module imports only from lower layers or from its own. Layers of the same
# rank (decoding and forward) are independent of each other. config/values.py (reading values off a config
# object, nothing else) sits below loading, which reads a config's sizes before it builds a model.
LAYERS = [
    (0, "ground", ("llmscope.errors", "llmscope.units", "llmscope.progress")),
    (1, "config values", ("llmscope.config.values",)),
    (2, "loading", ("llmscope.loading",)),
    (3, "config", ("llmscope.config",)),
    (4, "text", ("llmscope.text",)),
    (5, "memory", ("llmscope.memory",)),
    (6, "decoding", ("llmscope.decoding",)),
    (6, "forward", ("llmscope.forward",)),
    (7, "views", ("llmscope.views",)),
    (7, "explain", ("llmscope.explain",)),  # why: a generation (decoding) to explain, a forward pass to attribute
    (8, "CLI side", ("llmscope.cli", "llmscope._options", "llmscope._completion", "llmscope._docs",
                     "llmscope.__main__", "llmscope.commands", "llmscope.render")),
]


def layer_of(module: str) -> tuple[int, str] | None:
    """(rank, name) of the layer holding MODULE: the longest prefix wins (config.values before config)."""
    best = None
    for rank, name, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), rank, name)
    return None if best is None else best[1:]


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in import_graph() if m != "llmscope" and layer_of(m) is None)
    assert not unplaced, f"put these in LAYERS: {unplaced}"


def test_imports_point_down_the_layers():
    wrong = []
    for module, deps in import_graph().items():
        if module == "llmscope":
            continue
        rank, name = layer_of(module)
        for dep in deps:
            dep_rank, dep_name = layer_of(dep)
            if dep_name != name and dep_rank >= rank:
                wrong.append(f"{module} ({name}) imports {dep} ({dep_name})")
    assert not wrong, "imports pointing up or sideways: " + "; ".join(sorted(wrong))


def test_the_layer_check_sees_an_upward_import():
    assert layer_of("llmscope.config.values") == (1, "config values")
    assert layer_of("llmscope.config.kv_cache") == (3, "config")
    assert layer_of("llmscope.forward.layers") == (6, "forward") and layer_of("llmscope.decoding.loop") == (6, "decoding")


def test_the_module_map_names_every_module():
    """docs/internals.md (the module map a newcomer reads) lists every module of the package."""
    text = (PACKAGE.parent / "docs" / "internals.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"\(\.\./(llmscope/[\w/]+\.py)\)", text))
    modules = {str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
               if p.name != "__init__.py" or p.parent == PACKAGE}
    assert sorted(modules - listed) == [], "add these to docs/internals.md"
    assert sorted(listed - modules) == [], "these are listed in docs/internals.md but do not exist"
