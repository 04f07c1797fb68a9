"""The layers of the package (shared/DESIGN.md), read from its source: every import, late ones
inside functions included, forms a graph with no circle, and no import crosses a layer the
wrong way. Only ``learnscope.cli`` prints or imports rich."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import learnscope

ROOT = Path(learnscope.__file__).parent

#: layer -> layers it may not import
FORBIDDEN = {
    "tasks": {"train", "probes", "store", "sweep", "report", "runner", "config", "cli"},
    "models": {"train", "probes", "store", "sweep", "report", "runner", "config", "cli"},
    "probes": {"train", "store", "runner", "sweep", "config", "report", "cli"},
    "train": {"runner", "sweep", "report", "cli"},
    "config": {"train", "store", "runner", "sweep", "report", "cli"},
    "store": {"train", "probes", "runner", "sweep", "report", "cli"},
    "runner": {"sweep", "report", "cli"},
    "sweep": {"report", "cli"},
    "report": {"train", "runner", "sweep", "cli"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def resolve(name: str) -> str | None:
    """The learnscope module an imported name lives in (a module, or a package's __init__)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(path: Path) -> set[str]:
    """Every learnscope module ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for n in names:
            if n.startswith("learnscope") and (target := resolve(n)) is not None:
                found.add(target)
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


GRAPH = {m: imports(p) - {m} for m, p in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if state.get(nxt) is None and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None and (found := visit(node)):
            return found
    return None


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Edges into a package name go to the package's __init__, which re-exports its modules;
    a package's own modules importing each other through it is how Python packages work, so
    an edge from a package's __init__ to a module below it is dropped."""
    packages = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    return {
        m: {t for t in targets if not (m in packages and t.startswith(m + "."))}
        for m, targets in graph.items()
    }


def test_the_import_graph_has_no_circle():
    cycle = find_cycle(_without_package_inits(GRAPH))
    assert cycle is None, " -> ".join(cycle)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_crosses_a_layer_the_wrong_way(module):
    banned = FORBIDDEN.get(layer(module), set())
    wrong = sorted(t for t in GRAPH[module] if layer(t) in banned)
    assert not wrong, f"{module} imports {wrong}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) != "cli"))
def test_only_the_cli_prints(module):
    tree = ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            assert not any(n and n.split(".")[0] == "rich" for n in names), module
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "print", f"{module}:{node.lineno} prints"
