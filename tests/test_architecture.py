"""The package's import graph: no cycle, and data flows one way through the layers.

The graph is read from the source (AST), not by importing: every ``import`` and ``from ... import``
anywhere in a module (inside functions too) and every ``importlib.import_module("...")`` whose
argument is a string literal. ``from package import name`` is an edge to ``package.name`` when that
is a module, else to ``package``. Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``;
those implicit parent imports are not edges (every module would otherwise be in a cycle with the
face of its own package).

Layers, lowest first (docs/architecture.md): a module may import its own layer and the layers
below it, never a layer above.

Run against another tree: ``HYPERINFLAM_SRC=/path/to/src pytest tests/test_architecture.py``.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

PACKAGE = "hyperinflam"
SRC = Path(os.environ.get("HYPERINFLAM_SRC") or Path(__file__).resolve().parents[1] / "src")

#: The layers, lowest first; a module belongs to the layer of the longest prefix that names it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("hyperinflam", "hyperinflam.errors", "hyperinflam.schema", "hyperinflam.vocabulary"),
    ("hyperinflam.engine",),
    ("hyperinflam.sources",),
    ("hyperinflam.exports", "hyperinflam.synth"),
    ("hyperinflam.features",),
    ("hyperinflam.criteria",),
    ("hyperinflam.screening",),
    ("hyperinflam.study",),
    ("hyperinflam.report",),
    ("hyperinflam.web",),
    ("hyperinflam.cli",),
)


def _modules(src: Path) -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    out = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module ``name`` imports (itself, or the nearest enclosing package module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """module -> the package modules it imports (see the module docstring)."""
    modules = _modules(src)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        package = module if is_package else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                for alias in node.names:
                    full = f"{prefix}.{alias.name}"
                    names.append(full if full in modules else prefix)
            elif (isinstance(node, ast.Call) and node.args
                  and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)
                  and (getattr(node.func, "attr", None) == "import_module"
                       or getattr(node.func, "id", None) == "import_module")):
                names = [node.args[0].value]
            for name in names:
                if name == PACKAGE or name.startswith(PACKAGE + "."):
                    target = _resolve(name, modules)
                    if target and target != module:
                        targets.add(target)
        graph[module] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as one cycle
    through its modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_through(graph, set(c)) for c in components]


def _cycle_through(graph: dict[str, set[str]], members: set[str]) -> list[str]:
    """One cycle inside a strongly connected component, from its first module back to it."""
    start = min(members)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return sorted(members)


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = level, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return best


def _layer_name(level: int) -> str:
    return "/".join(p.removeprefix("hyperinflam.") for p in LAYERS[level])


GRAPH = import_graph()


def test_the_graph_is_read():
    """The reader finds the imports it must (a test of the test: an empty graph passes all)."""
    assert len(GRAPH) > 50
    assert "hyperinflam.schema" in GRAPH["hyperinflam.engine.duckdb"]       # a top-level import
    assert "hyperinflam.screening.screen" in GRAPH["hyperinflam.study.cohort"]  # inside a function
    assert "hyperinflam.features.derived" in GRAPH["hyperinflam.features.windows"]  # from pkg import mod
    assert layer_of("hyperinflam.engine.storage") < layer_of("hyperinflam.sources.csv") \
        < layer_of("hyperinflam.cli.load")
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    cycles = find_cycles(GRAPH)
    assert not cycles, "import cycles (each: module -> module it imports -> ...):\n" + "\n".join(
        "  " + " -> ".join(c) for c in cycles)


def test_every_module_has_a_layer():
    for module in GRAPH:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_import_upwards(module):
    """Data flows one way: sources -> canonical -> features -> criteria -> screening / study ->
    report / web -> cli, with errors, schema, vocabulary and the engine below everything."""
    level = layer_of(module)
    upward = sorted(t for t in GRAPH[module] if layer_of(t) > level)
    assert not upward, (
        f"{module} (layer {_layer_name(level)}) imports a higher layer: " + ", ".join(
            f"{t} ({_layer_name(layer_of(t))})" for t in upward))
