"""The examples probe in a run: per-example arrays over the whole training split at the
probe's steps, read back by ``learnscope.examples(run)``; they agree with the run's own
train metrics."""

from __future__ import annotations

import numpy as np
import pytest

import learnscope as ls
from learnscope.errors import UserError
from learnscope.runner import execute
from learnscope.store import Store
from learnscope.train import examples as records

CONFIG = {
    "name": "examples",
    "seed": 0,
    "task": {"name": "prototypes", "n_classes": 4, "length": 6, "vocab": 4, "noise": 0.3,
             "n_per_class": 15, "n_test_per_class": 5, "label_noise": 0.2},
    "model": {"kind": "mlp", "width": 16, "depth": 2},
    "train": {"lr": 0.01, "steps": 23, "eval_every": 5, "loss": "ce"},
    "probes": [{"probe": "examples", "every": 5, "grand": 1}],
}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("runs"))
    return store, execute(CONFIG, store)


def test_records_at_the_probe_steps(run):
    store, result = run
    assert records.steps(result.dir) == [0, 5, 10, 15, 20, 23]
    last = records.load(result.dir, 23)
    assert set(last) == {"loss", "correct", "el2n", "grand"}
    assert all(v.shape == (60,) for v in last.values())
    rows = records.rows(result.dir)
    assert len(rows["flipped"]) == 12 and rows["y"].shape == (60,)


def test_records_agree_with_the_run_metrics(run):
    store, result = run
    last = records.load(result.dir, 23)
    assert last["correct"].mean() == pytest.approx(result.summary["train_acc"], abs=1e-6)
    assert last["loss"].mean() == pytest.approx(result.summary["train_loss"], rel=1e-5)
    flipped = records.rows(result.dir)["flipped"]
    assert last["correct"][flipped].mean() == pytest.approx(
        result.summary["train_noisy_acc"], abs=1e-6
    )
    m = store.metrics(result.run_id, ["examples/el2n", "examples/grand"])
    assert set(m["name"]) == {"examples/el2n", "examples/grand"}


def test_examples_dataframe(run):
    store, result = run
    df = ls.examples(result.run_id, runs_dir=store.root)
    assert list(df.columns) == ["step", "example", "loss", "correct", "el2n", "grand", "flipped"]
    assert len(df) == 6 * 60
    assert df.groupby("step").size().tolist() == [60] * 6
    assert int(df[df.step == 0]["flipped"].sum()) == 12
    assert np.isfinite(df["grand"]).all()


def test_no_records_without_the_probe(tmp_path):
    store = Store(tmp_path)
    result = execute({**CONFIG, "probes": []}, store)
    assert records.steps(result.dir) == []
    assert ls.examples(result.run_id, runs_dir=tmp_path).empty


def test_bad_option_is_a_user_error(tmp_path):
    bad = {**CONFIG, "probes": [{"probe": "examples", "grand": 2}]}
    with pytest.raises(UserError, match="grand"):
        execute(bad, Store(tmp_path))
    assert not any(p.is_dir() for p in tmp_path.iterdir() if p.name.startswith("run"))


def test_ensemble_members_record_their_own_examples(tmp_path):
    import copy

    from learnscope.config import validate_config
    from learnscope.runner import execute_ensemble

    cfgs = []
    for seed in (0, 1):
        data = copy.deepcopy(CONFIG)
        data["seed"], data["probes"] = seed, [{"probe": "examples", "every": 10}]
        cfgs.append(validate_config(data))
    results = execute_ensemble(cfgs, Store(tmp_path))
    for r in results:
        assert r.summary["mode"] == "ensemble"
        assert records.steps(r.dir) == [0, 10, 20, 23]
        last = records.load(r.dir, 23)
        assert "grand" not in last
        assert last["correct"].mean() == pytest.approx(r.summary["train_acc"], abs=1e-6)
        assert last["loss"].mean() == pytest.approx(r.summary["train_loss"], rel=1e-5)


@pytest.mark.parametrize(
    "task, train, message",
    [
        ({"name": "teacher"}, {"loss": "mse"}, "examples needs a classification task"),
        ({"name": "modular_seq", "op": "add", "p": 7}, {}, "examples needs class labels"),
    ],
)
def test_refused_on_a_task_without_class_logits(task, train, message, tmp_path):
    model = {"kind": "gpt", "n_layer": 1, "n_head": 2, "d_model": 16}
    cfg = {
        "task": task,
        "model": model if task["name"] == "modular_seq" else {"kind": "mlp"},
        "train": {"steps": 2, **train},
        "probes": [{"probe": "examples"}],
    }
    with pytest.raises(UserError, match=message):
        execute(cfg, Store(tmp_path))
    assert not list(tmp_path.glob("*/examples"))
