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


def _committed(store, run_id):
    """The rows another connection (another process) sees: what has been committed."""
    with sqlite3.connect(store.path) as conn:
        return conn.execute("SELECT COUNT(*) FROM metrics WHERE run_id = ?", (run_id,)).fetchone()[
            0
        ]


def test_batch_holds_rows_for_a_later_commit(tmp_path):
    """``batch(hold_s)``: the store logger's rows (buffered without a flush inside a batch)
    wait for a later commit while the oldest is younger than ``hold_s``; a batch without it,
    or an older row, commits them; a failing block drops only its own rows."""
    from learnscope.train.callbacks import StoreLogger

    store = Store(tmp_path)
    a = store.create_run("a", {}).id
    logger = StoreLogger(store, a)
    with store.batch(hold_s=60.0):
        logger.on_metrics(None, 0, {"x": 1.0})
    assert _committed(store, a) == 0 and len(store._buffer) == 1
    with store.batch(hold_s=60.0):
        logger.on_metrics(None, 10, {"x": 2.0})
    assert _committed(store, a) == 0 and len(store._buffer) == 2
    with pytest.raises(RuntimeError), store.batch(hold_s=60.0):
        logger.on_metrics(None, 20, {"x": 3.0})
        raise RuntimeError("cut")
    assert len(store._buffer) == 2  # the failed block's row dropped, the held ones kept
    with store.batch():  # a round that may write checkpoints: every row committed first
        pass
    assert _committed(store, a) == 2 and not store._buffer
    with store.batch(hold_s=60.0):
        logger.on_metrics(None, 30, {"x": 4.0})
    store._held_since -= 61.0  # the held row is now older than hold_s: the next block commits
    with store.batch(hold_s=60.0):
        logger.on_metrics(None, 40, {"x": 5.0})
    assert _committed(store, a) == 4
    assert list(store.metrics(a)["step"]) == [0, 10, 30, 40]
    logger.on_metrics(None, 50, {"x": 6.0})  # outside a batch: flushed at once, as before
    assert _committed(store, a) == 5


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


def test_configs_yaml_equal_each_configs_own_yaml():
    """The members' config files dumped section by section (each distinct section once) are
    byte for byte ``store._yaml`` of each config: every recipe's config, and members that
    differ in seed, learning rate and weight decay."""
    from learnscope.config import load_recipe_dict, recipe_names
    from learnscope.store import _yaml, configs_yaml

    configs = []
    for name in recipe_names():
        raw = load_recipe_dict(name)
        raw.pop("expect", None)
        configs.append(validate_config(raw).to_dict())
    members = []
    for i in range(12):
        cfg = copy.deepcopy(configs[0])
        cfg["seed"], cfg["train"]["lr"] = i, 0.01 * (1 + i % 4)
        cfg["train"]["weight_decay"] = [0.5, 1.0, 2.0][i % 3]
        members.append(cfg)
    everything = configs + members + [{}]
    assert configs_yaml(everything) == [_yaml(c) for c in everything]
    assert len(set(configs_yaml(members))) == len(members)


def _reference_state_dict(member):
    """A member's optimiser and scheduler state as the trainer's objects give it: PyTorch's
    optimiser and scheduler built for this member alone (what ``Member.state_dict`` did before
    it made them once per config and step)."""
    from learnscope.train.optim import lr_factor, make_optimizer, make_scheduler

    ens, k, cfg = member.ens, member.k, member.cfg
    model, t = member.model, member.step
    opt = make_optimizer(model, cfg)
    if cfg.optimizer == "sgd":
        bufs = ens._flat_views(ens.momentum_buf) if ens.momentum_buf is not None else {}
        for name, p in model.named_parameters():
            if name in bufs:
                opt.state[p] = {"momentum_buffer": bufs[name][k].contiguous().clone()}
    elif t > 0:
        m, v = ens._flat_views(ens.exp_avg), ens._flat_views(ens.exp_avg_sq)
        for name, p in model.named_parameters():
            opt.state[p] = {
                "step": torch.tensor(float(t)),
                "exp_avg": m[name][k].contiguous().clone(),
                "exp_avg_sq": v[name][k].contiguous().clone(),
            }
    sched = make_scheduler(opt, cfg)
    for group in opt.param_groups:
        group["lr"] = group["initial_lr"] * lr_factor(t, cfg)
    sched.last_epoch, sched._step_count = t, t + 1
    sched._last_lr = [g["lr"] for g in opt.param_groups]
    return opt.state_dict(), sched.state_dict()


def _assert_equal_states(a, b):
    assert type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict)), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _assert_equal_states(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_equal_states(x, y)
    elif isinstance(a, torch.Tensor):
        assert a.is_contiguous() and a.dtype == b.dtype and torch.equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_member_optimizer_state_equals_pytorchs(optimizer):
    """``Member.state_dict``'s optimiser and scheduler state (made once per config and step,
    copied for each member) equals what PyTorch's optimiser and scheduler give each member
    (warmup and cosine schedule, different learning rates and weight decays), at step 0 and
    after some steps; the moments are contiguous (the first layer is stored transposed)."""
    from learnscope.train.ensemble import Ensemble

    train = {"optimizer": optimizer, "schedule": "warmup_cosine", "warmup_steps": 3}
    if optimizer == "sgd":
        train["momentum"] = 0.9
    base = _member(BASE, {"train": train})
    cfgs = [
        validate_config(_member(base, {"seed": i, "train": {"lr": lr, "weight_decay": wd}}))
        for i, (lr, wd) in enumerate([(0.01, 0.0), (0.003, 1.0), (0.01, 0.0), (0.02, 0.5)])
    ]
    ens = Ensemble(cfgs)
    for steps in (0, 5):
        for _ in range(steps):
            ens.train_step()
        for member in ens.members:
            state = member.state_dict()
            opt, sched = _reference_state_dict(member)
            _assert_equal_states(state["optimizer"], opt)
            _assert_equal_states(state["scheduler"], sched)
    assert len(ens._templates) == 2 * 3  # (config, step) pairs: 3 distinct configs, 2 steps
    from learnscope.runner import build

    trainer = build(cfgs[0])  # a member's checkpoint has every key of a trainer's
    assert list(ens.members[0].state_dict()) == list(trainer.state_dict())


def test_frozen_heap_hides_old_objects_from_the_collector_while_it_runs():
    """Inside ``frozen_heap`` the objects alive before are frozen (``gc.get_freeze_count``)
    and a cycle made inside is still collected; after it nothing is frozen."""
    import gc
    import weakref

    from learnscope.train.ensemble import frozen_heap

    class Node:
        pass

    assert gc.get_freeze_count() == 0
    with frozen_heap():
        assert gc.get_freeze_count() > 1000
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: only the collector frees it
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    assert gc.get_freeze_count() == 0
