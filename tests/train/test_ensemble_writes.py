"""An ensemble writes once per round of its members' callbacks: ``Store.batch`` (one
transaction; blocks inside it join it; an error rolls the whole block back),
``Store.metric_tables`` (each run's ``metric_table`` from one query), one lock for an
ensemble's runs (each run live while it is held, none after), ``checkpoint.deferred`` (the
files in place when the block ends, prunes after), the members' ``on_step_end`` schedule (a
callback of unknown kind every step; checkpoints and probes at their periods, as a plain run),
and an ensemble killed mid-run leaves a readable store whose runs are stale and resumable."""

from __future__ import annotations

import copy
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from learnscope import checkpoint
from learnscope.config import validate_config
from learnscope.errors import UserError
from learnscope.runner import execute, execute_ensemble
from learnscope.store import Store, integrity_problem
from learnscope.sweep.tables import quantiles
from learnscope.train.loop import Callback
from tests.train.test_ensemble import BASE, VARIANTS, _member, assert_same_run


def test_batch_is_one_transaction_that_an_error_rolls_back(tmp_path):
    store = Store(tmp_path)
    a, b = store.create_run("a", {}).id, store.create_run("b", {}).id
    with pytest.raises(RuntimeError), store.batch():
        store.log(a, 0, {"x": 1.0})
        store.flush()
        store.add_event(a, 0, "grokking", {})
        store.finish_run(b, "finished", {"steps": 1})
        raise RuntimeError("cut")
    assert store.metrics(a).empty and store.events(a).empty
    assert store.run(b)["status"] == "running"
    with store.batch():
        with store.batch():  # joins the outer block: nothing committed when it ends
            store.log(a, 0, {"x": 1.0})
            store.add_event(a, 0, "grokking", {})
        assert store._db().in_transaction
        store.log(b, 0, {"y": 2.0})  # buffered: flushed inside the block when it ends
    assert not store._db().in_transaction
    assert list(store.metrics(a)["value"]) == [1.0] and list(store.metrics(b)["value"]) == [2.0]
    assert list(store.events(a)["kind"]) == ["grokking"]


def test_metric_tables_equal_each_runs_metric_table(tmp_path):
    store = Store(tmp_path)
    ids = [store.create_run(n, {}).id for n in "abc"]
    for step in (0, 10, 20):
        store.log(ids[0], step, {"test/acc": step / 20, "lr": 0.1})
        store.log(ids[1], step, {"test/acc": 1 - step / 20})  # no lr
    store.log(ids[0], 5, {"probe/x": 3.0})  # a probe at a step without an evaluation
    store.flush()
    tables = store.metric_tables(ids)
    for run_id in ids[:2]:
        pd.testing.assert_frame_equal(tables[run_id], store.metric_table(run_id))
    assert tables[ids[2]].empty and store.metric_table(ids[2]).empty


def test_one_lock_holds_every_run_of_an_ensemble(tmp_path):
    store = Store(tmp_path)
    ids = [store.create_run(n, {}).id for n in "abc"]
    group = store.lock_group(ids)
    assert all(store.is_live(i) for i in ids)
    with pytest.raises(UserError, match=f"pid {os.getpid()}"):
        store.lock(ids[1])
    group.release()
    assert not any(store.is_live(i) for i in ids)
    assert not (tmp_path / ids[0] / ".group.lock").exists()
    lock = store.lock(ids[1])  # e.g. a resume of one member, once the ensemble is gone
    assert store.is_live(ids[1]) and not store.is_live(ids[0])
    lock.release()


def test_deferred_checkpoints_appear_whole_when_the_block_ends(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "step": 0}
    d = tmp_path / "checkpoints"
    checkpoint.save(d, 1, state)
    with checkpoint.deferred():
        for step in (2, 3):
            checkpoint.save(d, step, {**state, "step": step})
        checkpoint.prune(d, 1)
        assert checkpoint.steps(d) == [1]  # the new files are temporary ones until the end
        assert len(list(d.glob(".tmp-*.pt"))) == 2
    assert checkpoint.steps(d) == [3] and not list(d.glob(".tmp-*.pt"))
    assert checkpoint.load(checkpoint.path_for(d, 3))["step"] == 3


class CountSteps(Callback):
    """A callback of a kind the ensemble does not know: it must see every step."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_step_end(self, trainer, step: int, loss: float) -> None:
        self.steps.append(step)


def test_members_keep_their_checkpoint_and_probe_periods_and_every_step_callbacks(tmp_path):
    """Checkpoints every 3 steps (the newest 2 kept), probes every 5, evaluations every 4, a
    member that diverges: each member is its plain run (status, events, checkpoints, metrics),
    and a sink's ``on_step_end`` sees every step of every member."""
    base = copy.deepcopy(BASE)
    base["train"].update(checkpoint_every=3, keep_checkpoints=2, batch_size=8)
    base["probes"] = [{"probe": "effective_rank", "sites": ["layers.*.hook_post"], "every": 5}]
    cfgs = [validate_config(_member(base, v)) for v in VARIANTS[:3]]
    wild = _member(base, {"seed": 9, "train": {"optimizer": "sgd", "lr": 1e4, "loss": "mse"}})
    sgd = _member(base, {"seed": 8, "train": {"optimizer": "sgd", "lr": 0.05, "loss": "mse"}})
    ens_store, run_store = Store(tmp_path / "ens"), Store(tmp_path / "runs")
    sinks = [CountSteps() for _ in range(2)]
    members = execute_ensemble(cfgs, ens_store, sinks=[sinks[0]])
    pair = execute_ensemble([validate_config(sgd), validate_config(wild)], ens_store)
    assert pair[1].status == "diverged" and pair[0].status == "finished"
    for cfg, member in zip([*cfgs, sgd, wild], [*members, *pair]):
        ref = execute(cfg, run_store, sinks=[sinks[1]] if cfg is cfgs[0] else [])
        assert_same_run(ens_store, member.run_id, run_store, ref.run_id)
        assert checkpoint.steps(member.dir / "checkpoints") == checkpoint.steps(
            ref.dir / "checkpoints"
        )
    steps = list(range(1, 13))
    assert sinks[0].steps == [s for s in steps for _ in cfgs]  # each step, every member
    assert sinks[1].steps == steps


def test_quantiles_of_a_value_over_members():
    frame = pd.DataFrame({"grok_test_step": [100, 400, 200, None, 300], "x": range(5)})
    q = quantiles(frame, "grok_test_step")
    assert q["members"] == 5 and q["have"] == 4
    assert (q["q0"], q["q25"], q["q50"], q["q75"], q["q100"]) == (100, 175, 250, 325, 400)
    assert q["q10"] == pytest.approx(130) and q["q90"] == pytest.approx(370)
    none = quantiles(frame.assign(grok_test_step=None), "grok_test_step")
    assert none["have"] == 0 and np.isnan(none["q50"])
    missing = quantiles(frame, "grok_ratio")  # no member has the key at all
    assert missing["members"] == 5 and missing["have"] == 0 and np.isnan(missing["q0"])


KILLED = """
import sys
import torch
from learnscope.config import validate_config
from learnscope.runner import execute_ensemble
from learnscope.store import Store
torch.set_num_threads(1)
base = {"name": "k", "task": {"name": "modular", "p": 23, "train_fraction": 0.5},
        "model": {"kind": "mlp", "width": 32},
        "train": {"steps": 100000, "eval_every": 10, "checkpoint_every": 50, "batch_size": 32}}
cfgs = [validate_config({**base, "seed": i}) for i in range(4)]
execute_ensemble(cfgs, Store(sys.argv[1]))
"""


@pytest.mark.slow
def test_an_ensemble_killed_mid_run_leaves_a_readable_store_and_resumable_runs(tmp_path):
    """SIGKILL while the members write rows and checkpoints in batches: the store opens and
    passes SQLite's integrity check, every member is a run marked running but not live
    (stale), with whole rows and whole checkpoints; one member resumes to its end."""
    root = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(root)], env=env)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:  # until checkpoints have been written
            ckpts = list(root.glob("*/checkpoints/step_*.pt"))
            if len(ckpts) >= 8:
                break
            assert proc.poll() is None, "the ensemble ended early"
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoints within the time allowed")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    store = Store(root)
    conn = sqlite3.connect(store.path)
    assert integrity_problem(conn, full=True) is None
    conn.close()
    runs = store.runs()
    assert len(runs) == 4 and set(runs["status"]) == {"running"}
    for run_id in runs["id"]:
        assert not store.is_live(run_id)  # stale: its process is gone
        table = store.metrics(run_id)
        assert not table.duplicated(["step", "name"]).any()
        found = checkpoint.latest(root / run_id / "checkpoints")
        assert found is not None and found[0] % 50 == 0
    run_id = runs["id"].iloc[0]
    cfg = store.run(run_id)["config"]
    step = checkpoint.latest(root / run_id / "checkpoints")[0]
    cfg["train"]["steps"] = step + 20  # resuming may give more steps: here few, to end soon
    done = execute(cfg, store, resume=run_id)
    assert done.status == "finished" and done.summary["steps"] == step + 20
