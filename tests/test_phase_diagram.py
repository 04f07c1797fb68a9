"""A small version of the ``grokking-phase-diagram`` sweep (slow: full-size members)."""

from __future__ import annotations

import pytest

from learnscope.store import Store
from learnscope.sweep import load_spec, member_table, pivot, run_sweep


def test_builtin_spec_expands_to_its_grid():
    from learnscope.sweep import expand

    spec = load_spec("grokking-phase-diagram")
    members = expand(spec)
    n = len(spec.grid["train.weight_decay"]) * len(spec.grid["task.train_fraction"])
    assert len(members) == n * spec.seeds
    assert all(m.config.claims == [] for m in members)  # the recipe's claims, not a member's
    assert {m.config.model.params["width"] for m in members} == {500}


@pytest.mark.slow
def test_small_phase_diagram(tmp_path):
    data = load_spec("grokking-phase-diagram").model_dump()
    data["grid"] = {"train.weight_decay": [0.0, 5.0], "task.train_fraction": [0.3]}
    data["seeds"] = 1
    store = Store(tmp_path / "runs")
    sweep_id = run_sweep(load_spec(data), store, workers=1)
    table = member_table(store, sweep_id)
    assert len(table) == 2 and set(table["status"]) <= {"finished", "stopped"}
    # grokking-mlp's stop_when: a member that grokked stops, one that did not trains on
    point = table.set_index("train.weight_decay")
    assert point.loc[5.0, "status"] == "stopped"
    grid = pivot(table, "weight_decay", "train_fraction", "test_acc")
    assert grid.shape == (2, 1)
    # the grokking-mlp point itself (wd 5, 30% of the table) generalises within 300 steps
    assert grid.loc[5.0, 0.3] >= 0.99
    steps = pivot(table, "weight_decay", "train_fraction", "grok_test_step")
    assert steps.loc[5.0, 0.3] <= 300
