"""The layers of the package (shared/DESIGN.md), read from its source: every import, late ones
inside functions included, forms a graph with no circle, and no import crosses a layer the
wrong way. Only ``learnscope.cli`` prints or imports rich.

The rules of ``studies/`` and its neighbours:

- nothing below a study (tasks, models, probes, train, interventions, store, checkpoint,
  events, config, runner, sweep, hf) imports one;
- a study trains only through the runner or a sweep: it imports no trainer
  (``train.loop``, ``train.ensemble``, ``train.callbacks``) and calls no write of the store
  (``create_run``, ``log``, ``finish_run``, ...), which only the runner, the sweep backends
  and the callbacks make, under the run lock;
- ``interventions/`` holds model -> model transforms: it imports nothing from ``train/``;
- a command in ``cli/`` parses and prints: it imports no intervention and no trainer (the
  live view, ``cli/live.py``, is a callback on one);
- in ``train/``, only ``callbacks.py`` (the store logger and the checkpointer) imports the
  store or the checkpoint files.

Each rule is checked on the package and, so that it can be seen to fail, on a scratch source
that breaks it (``test_each_rule_catches_a_scratch_module_that_breaks_it``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import learnscope

ROOT = Path(learnscope.__file__).parent

#: layer -> layers it may not import
FORBIDDEN = {
    "tasks": {"train", "probes", "store", "sweep", "report", "runner", "config", "cli"},
    "models": {"tasks", "train", "probes", "store", "sweep", "report", "runner", "config", "cli"},
    "probes": {"tasks", "train", "store", "runner", "sweep", "config", "report", "cli"},
    "number_theory": {"*"},  # a leaf: the tasks, models and probes share it
    "train": {"runner", "sweep", "report", "cli"},
    "interventions": {"train", "store", "runner", "sweep", "config", "report", "cli"},
    "config": {"train", "store", "runner", "sweep", "report", "cli"},
    "store": {"train", "probes", "runner", "sweep", "report", "cli"},
    "runner": {"sweep", "report", "cli"},
    "sweep": {"report", "cli"},
    "report": {"train", "runner", "sweep", "cli"},
    "studies": {"cli"},
    "cli": {"interventions"},
}
#: no layer below the studies imports one
for _below in ("tasks", "models", "probes", "train", "interventions", "config", "store",
               "checkpoint", "events", "runner", "sweep", "hf"):  # fmt: skip
    FORBIDDEN.setdefault(_below, set()).add("studies")

#: the trainers: a study trains through the runner instead; a command never trains itself
TRAINERS = {"learnscope.train.loop", "learnscope.train.ensemble", "learnscope.train.callbacks"}
#: the store's writes; a study leaves them to the runner and the sweep backends
STORE_WRITES = {"create_run", "finish_run", "add_event", "set_status", "set_config",
                "truncate_metrics", "create_sweep", "set_sweep_status", "delete_sweep"}  # fmt: skip
#: the modules of train/ that may import the store and the checkpoint files
TRAIN_STORE_USERS = {"learnscope.train.callbacks"}


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
            # ``from pkg import sub`` imports the module ``pkg.sub`` when there is one (and
            # runs ``pkg/__init__``, which Python has started already when ``sub`` is inside
            # it); ``from pkg import name`` imports ``pkg`` (its __init__) for the name
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                for a in node.names
            ]
        else:
            continue
        for n in names:
            if n.startswith("learnscope") and (target := resolve(n)) is not None:
                found.add(target)
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def store_writes(tree: ast.AST) -> list[str]:
    """The store writes called in ``tree``: a call of one of :data:`STORE_WRITES`, or ``log``
    on something named like a store (``store.log``, ``self.store.log``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name, owner = node.func.attr, ast.unparse(node.func.value)
            if name in STORE_WRITES or (name == "log" and "store" in owner.lower()):
                found.append(f"{owner}.{name} (line {node.lineno})")
    return found


def rule_breaks(module: str, tree: ast.AST, targets: set[str]) -> list[str]:
    """Every rule of the module docstring that ``module`` (its source ``tree``, the learnscope
    modules it imports ``targets``) breaks, in words."""
    found = []
    kind = layer(module)
    banned = FORBIDDEN.get(kind, set())
    found += [
        f"imports {t} (layer {layer(t)})"
        for t in sorted(targets)
        if layer(t) in banned or "*" in banned
    ]
    if kind == "studies":
        found += [f"trains outside the runner: imports {t}" for t in sorted(targets & TRAINERS)]
        found += [f"writes to the store itself: {w}" for w in store_writes(tree)]
    if kind == "cli" and module != "learnscope.cli.live":
        found += [f"a command trains: imports {t}" for t in sorted(targets & TRAINERS - {
            "learnscope.train.callbacks"})]  # fmt: skip
    if kind == "train" and module not in TRAIN_STORE_USERS:
        io = {"learnscope.store", "learnscope.checkpoint"}
        found += [f"imports {t} (only train.callbacks may)" for t in sorted(targets & io)]
    return found


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


def test_the_import_graph_has_no_circle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_breaks_a_rule(module):
    broken = rule_breaks(module, ast.parse(MODULES[module].read_text()), GRAPH[module])
    assert not broken, f"{module}: {broken}"


SCRATCH = {  # module, source that breaks one rule, what the rule says
    "learnscope.tasks.scratch": ("from learnscope.studies.coord import coord_spec", "layer"),
    "learnscope.runner": ("import learnscope.studies.evaluation", "layer studies"),
    "learnscope.interventions.scratch": ("from learnscope.train.loop import Trainer", "layer"),
    "learnscope.studies.scratch": ("from learnscope.train.loop import Trainer", "trains"),
    "learnscope.studies.scratch2": ("def f(store):\n    store.create_run('x', {})", "writes"),
    "learnscope.studies.scratch3": ("def f(self):\n    self.store.log('r', 0, {})", "writes"),
    "learnscope.cli.scratch": ("from learnscope.interventions import autoinit", "layer"),
    "learnscope.cli.scratch2": ("from learnscope.train.ensemble import Ensemble", "trains"),
    "learnscope.train.scratch": ("from learnscope.store import Store", "only train.callbacks"),
    "learnscope.number_theory": ("from learnscope.errors import UserError", "layer errors"),
    "learnscope.models.scratch": ("from learnscope.tasks.modular import is_prime", "layer tasks"),
}


@pytest.mark.parametrize("module", sorted(SCRATCH))
def test_each_rule_catches_a_scratch_module_that_breaks_it(module, tmp_path):
    source, says = SCRATCH[module]
    path = tmp_path / "scratch.py"
    path.write_text(source + "\n")
    broken = rule_breaks(module, ast.parse(source), imports(path))
    assert broken and says in " ".join(broken), broken


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) != "cli"))
def test_only_the_cli_prints(module):
    tree = ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            assert not any(n and n.split(".")[0] == "rich" for n in names), module
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "print", f"{module}:{node.lineno} prints"
