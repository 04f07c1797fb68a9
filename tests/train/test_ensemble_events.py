"""An ensemble member's events found in memory (``Member.metric_columns`` and
``ensemble.detect_columns``) equal ``events.detect`` on the table the store reads back for its
run; and a whole ensemble's stored events equal ``events.detect`` of each member's stored table
(issue 32 item 3, third round)."""

from __future__ import annotations

import copy
import math
import random
from types import SimpleNamespace

import numpy as np
import pytest

from learnscope import events
from learnscope.config import EventsConfig, validate_config
from learnscope.runner import build, execute_ensemble
from learnscope.store import Store
from learnscope.train.callbacks import layer_sizes
from learnscope.train.ensemble import Member, detect_columns
from tests.conftest import tiny


def _history(rng: random.Random, n_evals: int) -> list[tuple[int, dict[str, float]]]:
    """A member's publications: evaluations (lr, losses, accuracies, weight norms) every 10
    steps, some probe rows between them, with slingshot-like spikes, late grokking, gaps,
    NaN and infinite values."""
    pub: list[tuple[int, dict[str, float]]] = []
    grok_train, grok_test = rng.randrange(0, n_evals), rng.randrange(0, 2 * n_evals)
    loss, norm = 1.0, 1.0
    spikes = {rng.randrange(3, n_evals + 3) for _ in range(rng.randrange(0, 3))}
    collapse = rng.randrange(-1, n_evals + 1)
    for e in range(n_evals):
        step = 10 * e
        norm *= 1.0 + rng.choice([0.0, 0.01, 0.2])
        loss = loss * rng.uniform(0.3, 1.0)
        if e in spikes:
            loss *= rng.choice([5.0, 50.0, 500.0])
        values = {
            "lr": 0.01,
            "train/loss": loss,
            "train/acc": min(1.0, 0.5 + e / (2 * grok_train + 1)) if e < grok_train else 1.0,
            "test/acc": 1.0 if e >= grok_test else rng.uniform(0.0, 0.9),
            "test/loss": rng.uniform(0.1, 2.0),
            "weight_norm/out.weight": norm,
            "weight_norm/layers.0.linear.weight": rng.uniform(1, 2),
        }
        if e > 0:
            values["train_step/loss"] = rng.uniform(0.0, 1.0)
        if e > collapse:  # rank and attention entropy that fall (and may come back up)
            values["effective_rank/layers.0.hook_post"] = rng.choice([0.5, 2.0, 3.0, 40.0])
            values["rankme/layers.0.hook_post"] = rng.choice([1.0, 2.0, 30.0])
            values["attention_entropy/b.0.attn.hook_pattern/h1"] = rng.choice([0.1, 0.2, 2.0])
            values["attention_entropy/b.1.attn.hook_pattern/h0"] = rng.choice([0.01, 1.0])
        if rng.random() < 0.1:
            values.pop(rng.choice(sorted(values)))  # a value missing at this evaluation
        if rng.random() < 0.05:
            values[rng.choice(["train/loss", "test/loss"])] = rng.choice([math.nan, math.inf])
        pub.append((step, values))
        if rng.random() < 0.3:  # a probe between evaluations
            pub.append((step + 5, {"probe/x": rng.random()}))
    if rng.random() < 0.2:  # diverged: the last evaluation's losses are missing (NaN)
        pub.append((10 * n_evals, {"lr": 0.01, "train/loss": math.nan, "test/loss": math.nan}))
    return pub


#: widths and attention contexts (b.1's context of 1 key: its heads are skipped)
SIZES = {"layers.0.hook_post": 64, "b.0.attn.hook_pattern": 8, "b.1.attn.hook_pattern": 1}


def _stored_table(tmp_path, pub):
    store = Store(tmp_path)
    run_id = store.create_run("x", {"name": "x"}).id
    for step, values in pub:
        store.log(run_id, step, values)
    store.flush()
    return store.metric_table(run_id)


def _as_dicts(found):
    return [(e.kind, e.step, e.data) for e in found]


def _same_data(a, b):
    assert len(a) == len(b)
    for (ka, sa, da), (kb, sb, db) in zip(a, b):
        assert (ka, sa) == (kb, sb)
        assert da.keys() == db.keys()
        for key in da:
            va, vb = da[key], db[key]
            if isinstance(va, float) and isinstance(vb, float) and va != va:
                assert vb != vb
            else:
                assert va == vb, (key, va, vb)


@pytest.mark.parametrize("seed", range(40))
def test_detect_columns_equal_events_detect_on_the_stored_table(tmp_path, seed):
    rng = random.Random(seed)
    pub = _history(rng, rng.randrange(1, 40))
    cfg = EventsConfig(slingshot_window=rng.choice([1, 2, 5]), collapse_patience=rng.choice([1, 3]))
    member = SimpleNamespace(published=pub, k=0)
    steps, cols = Member.metric_columns(member)
    table = _stored_table(tmp_path, pub)
    assert list(table.index) == list(steps)
    assert sorted(table.columns) == list(cols)
    expected = events.detect(table, cfg, SIZES)
    got = detect_columns(steps, cols, cfg, SIZES)
    _same_data(_as_dicts(got), _as_dicts(expected))


def test_the_histories_exercise_every_detector(tmp_path):
    """The random histories above find grokking, slingshot and divergence events (so the
    comparison is not between empty lists)."""
    kinds = set()
    for seed in range(40):
        rng = random.Random(seed)
        pub = _history(rng, rng.randrange(1, 40))
        steps, cols = Member.metric_columns(SimpleNamespace(published=pub, k=0))
        kinds |= {e.kind for e in detect_columns(steps, cols, EventsConfig(), SIZES)}
    assert {"grokking", "slingshot", "divergence", "rank_collapse", "attention_collapse"} <= kinds


def test_columns_of_other_detectors_go_to_events_detect(tmp_path):
    """A SAS column: the table goes to ``events.detect`` (structure onset found), with the
    rank collapse beside it."""
    sas = [0.1, 0.1, 0.1, 0.1, 0.1, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6]
    rank = [40.0, 30, 30, 30, 30, 30, 30, 30, 2, 1.5, 1]
    pub = [
        (100 * i, {"lr": 0.1, "sas/max": a, "effective_rank/h": r, "test/loss": 3.0 - a})
        for i, (a, r) in enumerate(zip(sas, rank))
    ]
    steps, cols = Member.metric_columns(SimpleNamespace(published=pub, k=0))
    got = detect_columns(steps, cols, EventsConfig(sas_window=2), {"h": 64})
    expected = events.detect(_stored_table(tmp_path, pub), EventsConfig(sas_window=2), {"h": 64})
    assert _as_dicts(got) == _as_dicts(expected)
    assert [e.kind for e in got] == ["structure_onset", "rank_collapse"]


def test_a_name_twice_at_a_step_is_left_to_the_store():
    pub = [(0, {"lr": 0.1}), (0, {"lr": 0.2})]
    assert Member.metric_columns(SimpleNamespace(published=pub, k=0)) is None
    assert Member.metric_columns(SimpleNamespace(published=[], k=0)) is not None


CASES = {  # members that fit the training set (grokking events), one that diverges
    "adamw": ({"optimizer": "adamw", "weight_decay": 0.0}, [0.01, 0.03, 1e4]),
    "sgd": ({"optimizer": "sgd"}, [0.5, 0.2, 1e4]),
}


@pytest.mark.parametrize("probes", ["default", "none"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_ensemble_events_equal_detect_on_each_stored_table(tmp_path, case, probes):
    """The events the ensemble stored for each member (found in memory; with the default
    probes, rank collapse among them) are those
    ``events.detect`` finds on the member's stored table (the divergence guard's event in
    place of the table's, as for a single run)."""
    train, lrs = CASES[case]
    train = {**train, "loss": "mse", "steps": 60, "eval_every": 4}
    base = tiny(name="ev", model={"width": 64}, train=train)
    if probes == "none":
        base["probes"] = []
    cfgs = []
    for i, lr in enumerate(lrs):
        cfg = copy.deepcopy(base)
        cfg["seed"], cfg["train"]["lr"] = i, lr
        cfgs.append(cfg)
    store = Store(tmp_path)
    results = execute_ensemble(cfgs, store)
    kinds = {e.kind for r in results for e in r.events}
    assert ("divergence" in kinds) == (case == "sgd") and ("grokking" in kinds) == (case == "adamw")
    if case == "adamw":  # the member at lr 1e4 collapses its hidden layer's rank
        assert ("rank_collapse" in kinds) == (probes == "default")
    sizes = layer_sizes(build(validate_config(cfgs[0])))  # the widths the runner measures
    for r in results:
        expected = events.detect(store.metric_table(r.run_id), EventsConfig(), sizes)
        if r.status == "diverged":
            expected = [e for e in expected if e.kind != "divergence"]
            expected += [e for e in r.events if e.kind == "divergence"]
        _same_data(_as_dicts(r.events), _as_dicts(expected))
        stored = store.events(r.run_id)
        assert sorted(zip(stored["kind"], stored["step"].fillna(-1))) == sorted(
            (e.kind, -1 if e.step is None else e.step) for e in r.events
        )
    assert np.isfinite([r.summary["steps"] for r in results]).all()


@pytest.mark.parametrize("seed", range(30))
def test_stop_condition_rows_equal_stop_condition_on_the_table(seed):
    """``StopWhen``'s ``grokked`` and ``fitted`` found on its rows without a table equal
    ``events.stop_condition`` on the table it built before (random accuracies, gaps, NaN,
    a ``train_clean/acc`` column, probe rows between evaluations)."""
    import pandas as pd

    rng = random.Random(seed)
    rows: dict[int, dict[str, float]] = {}
    clean = rng.random() < 0.3
    for e in range(rng.randrange(0, 15)):
        values = {"lr": 0.1}
        for name in ["train/acc", "test/acc"] + (["train_clean/acc"] if clean else []):
            if rng.random() < 0.85:
                values[name] = rng.choice([0.2, 0.98, 0.99, 1.0, math.nan])
        rows[10 * e] = values
        if rng.random() < 0.3:
            rows[10 * e + 5] = {"probe/x": 1.0}
    cfg = EventsConfig(grok_threshold=rng.choice([0.99, 0.98]))
    for name in ("grokked", "fitted"):
        got = events.stop_condition_rows(rows, name, cfg)
        table = pd.DataFrame.from_dict(rows, orient="index").sort_index()
        expected = events.stop_condition(table, name, cfg, {}) if len(table.columns) else None
        assert (got is None) == (expected is None), (name, rows)
        if got is not None:
            assert (got.kind, got.step, got.data) == (expected.kind, expected.step, expected.data)


def test_metric_columns_equal_the_stored_table(tmp_path, monkeypatch):
    """Each member's columns in memory (its evaluations from the ensemble's compact log, its
    probe rows from what it published) are exactly the table the store reads back: the same
    steps, names and values (NaN where missing)."""
    import learnscope.runner as runner_mod

    seen = {}
    real = runner_mod.member_events

    def spy(members, cfgs, sizes):
        seen["members"] = members
        return real(members, cfgs, sizes)

    monkeypatch.setattr(runner_mod, "member_events", spy)
    base = tiny(name="cols", model={"width": 24}, train={"steps": 20, "eval_every": 5})
    cfgs = []
    for i in range(3):
        cfg = copy.deepcopy(base)
        cfg["seed"], cfg["train"]["lr"] = i, [0.01, 0.003, 0.03][i]
        cfgs.append(cfg)
    store = Store(tmp_path)
    results = execute_ensemble(cfgs, store)
    for member, r in zip(seen["members"], results):
        steps, cols = member.metric_columns()
        table = store.metric_table(r.run_id)
        assert list(table.index) == list(steps) and sorted(table.columns) == list(cols)
        assert any(not name.startswith(("train", "test", "lr", "weight")) for name in cols)
        for name in cols:
            np.testing.assert_array_equal(table[name].to_numpy(float), cols[name])
