"""Runs that survive: a real ``learnscope run`` process killed at random moments and resumed
until it ends gives the weights *and* the full metric table of an uninterrupted run, with no
(step, metric) row twice or missing; a sweep killed by SIGINT or SIGKILL and resumed has one
run per member; a second process cannot train a run that is training."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from learnscope import checkpoint
from learnscope.errors import UserError
from learnscope.runner import execute
from learnscope.store import Store
from learnscope.sweep import load_spec, member_table

CONFIG = {
    "name": "killme",
    "seed": 0,
    "task": {"name": "modular", "op": "add", "p": 23, "train_fraction": 0.5},
    "model": {"kind": "mlp", "width": 64, "depth": 2, "activation": "relu"},
    # minibatches (data order and optimiser state must survive), checkpoints not aligned
    # with evaluations (a resume re-measures only what its checkpoint step owes)
    "train": {
        "lr": 0.003,
        "batch_size": 32,
        "steps": 1500,
        "eval_every": 20,
        "checkpoint_every": 7,
        "keep_checkpoints": 3,
    },
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "learnscope", *map(str, args)]


def kill_and_resume(tmp_path, cycles: int, seed: int) -> str:
    """Start the run, SIGKILL it ``cycles`` times at random moments (resuming after each),
    then let it finish; the run's id."""
    rng = random.Random(seed)
    runs = tmp_path / "runs"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    for cycle in range(cycles + 1):
        ids = list(Store(runs).runs()["id"])
        args = ["run", "--resume", ids[0]] if ids else ["run", path]
        proc = subprocess.Popen(
            cli(*args, "--runs-dir", runs, "-q"),
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if cycle < cycles:
            time.sleep(rng.uniform(1.0, 3.0))  # import, build, some training steps
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
        if cycle == cycles:
            assert proc.returncode == 0, err.decode()
    (run_id,) = Store(runs).runs()["id"]
    return run_id


def assert_same_as_straight(tmp_path, run_id):
    store = Store(tmp_path / "runs")
    assert store.run(run_id)["status"] == "finished"
    long = store.metrics(run_id)
    assert not long.duplicated(["step", "name"]).any()  # no row twice
    straight_store = Store(tmp_path / "straight")
    straight = execute(CONFIG, straight_store)
    ref = straight_store.metric_table(straight.run_id)
    got = store.metric_table(run_id)
    assert list(got.index) == list(ref.index)  # no row missing
    assert sorted(got.columns) == sorted(ref.columns)
    for name in ref.columns:
        a, b = got[name].dropna(), ref[name].dropna()
        assert list(a.index) == list(b.index), name
        assert list(a) == pytest.approx(list(b), rel=1e-6, abs=1e-9), name
    final = checkpoint.latest(store.root / run_id / "checkpoints")[1]["model"]
    ref_final = checkpoint.latest(straight.dir / "checkpoints")[1]["model"]
    for name in ref_final:
        assert torch.equal(final[name], ref_final[name]), name
    assert len(checkpoint.steps(store.root / run_id / "checkpoints")) <= 3  # keep_checkpoints
    assert not list((store.root / run_id / "checkpoints").glob(".tmp-*"))


def test_killed_twice_resumes_to_the_uninterrupted_run(tmp_path):
    assert_same_as_straight(tmp_path, kill_and_resume(tmp_path, cycles=2, seed=0))


@pytest.mark.slow
def test_killed_ten_times_resumes_to_the_uninterrupted_run(tmp_path):
    assert_same_as_straight(tmp_path, kill_and_resume(tmp_path, cycles=10, seed=1))


def test_a_live_run_refuses_a_second_writer_and_a_killed_one_is_stale(tmp_path):
    runs = tmp_path / "runs"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "train": {**CONFIG["train"], "steps": 10**6}}))
    proc = subprocess.Popen(cli("run", path, "--runs-dir", runs, "-q"), env=ENV)
    try:
        deadline = time.time() + 60
        while not len(Store(runs).runs()) and time.time() < deadline:
            time.sleep(0.2)
        (run_id,) = Store(runs).runs()["id"]
        store = Store(runs)
        assert store.is_live(run_id)
        with pytest.raises(UserError, match="another process"):
            execute(store.run(run_id)["config"], store, resume=run_id)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert store.run(run_id)["status"] == "running" and not store.is_live(run_id)
        from typer.testing import CliRunner

        from learnscope.cli import app

        res = CliRunner().invoke(app, ["ls", "--runs-dir", str(runs)])
        assert "stale" in res.output
    finally:
        proc.kill()


def test_sigterm_ends_a_run_as_interrupted(tmp_path):
    runs = tmp_path / "runs"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "train": {**CONFIG["train"], "steps": 10**6}}))
    proc = subprocess.Popen(
        cli("run", path, "--runs-dir", runs, "-q"), env=ENV, stdout=subprocess.PIPE
    )
    deadline = time.time() + 60
    while not len(Store(runs).runs()) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    (run_id,) = Store(runs).runs()["id"]
    rec = Store(runs).run(run_id)
    assert rec["status"] == "interrupted" and proc.returncode == 1
    assert checkpoint.steps(rec["dir"] / "checkpoints")[-1] == rec["summary"]["steps"]
    assert f"learnscope run --resume {run_id}" in out.decode()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupt_mid_checkpoint_waits_for_the_file(tmp_path, monkeypatch, request, sig):
    """Ctrl-C or SIGTERM arriving while torch writes a checkpoint used to tear its zip writer
    (``RuntimeError: unexpected pos``) and end the run ``failed``; now the file is finished
    first and the interrupt comes after it."""
    from learnscope.cli.common import sigterm_as_ctrl_c

    # A shell's background job starts with SIGINT ignored (so would this test's process):
    # give it Python's own Ctrl-C handler, as a terminal's process has, and put back what it had.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, inherited))

    real_save = torch.save

    def save_and_get_signalled(obj, f):
        f.write(b"")  # the zip writer has started
        signal.raise_signal(sig)
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", save_and_get_signalled)
    state = {"model": {"w": torch.arange(6.0)}, "step": 5}
    with sigterm_as_ctrl_c(), pytest.raises(KeyboardInterrupt):
        checkpoint.save(tmp_path, 5, state)
    assert checkpoint.steps(tmp_path) == [5]
    assert torch.equal(
        checkpoint.load(checkpoint.path_for(tmp_path, 5))["model"]["w"], state["model"]["w"]
    )
    assert not list(tmp_path.glob(".tmp-*"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


SWEEP = {
    "name": "killsweep",
    "config": {
        "task": {"name": "modular", "op": "add", "p": 23, "train_fraction": 0.5},
        "model": {"kind": "mlp", "width": 32, "depth": 2},
        "train": {"lr": 0.003, "batch_size": 32, "steps": 400, "eval_every": 50},
    },
    "grid": {"train.lr": [0.001, 0.003, 0.01], "model.width": [32, 48]},
}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killed_sweep_resumes_to_one_run_per_member(tmp_path, sig):
    runs = tmp_path / "runs"
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    members = len(SWEEP["grid"]["train.lr"]) * len(SWEEP["grid"]["model.width"])
    proc = subprocess.Popen(
        cli("sweep", path, "--runs-dir", runs, "--workers", 1, "--chunk", 1, "-q"),
        env=ENV,
        stdout=subprocess.PIPE,
    )
    deadline = time.time() + 60  # until some member has started, or the sweep is done
    while time.time() < deadline and proc.poll() is None:
        if len(Store(runs).runs()) >= 2:
            break
        time.sleep(0.1)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    if sig == signal.SIGINT and proc.returncode == 1:
        assert "--resume" in out.decode()
    res = subprocess.run(
        cli("sweep", path, "--runs-dir", runs, "--resume", "last", "-q"),
        env=ENV,
        capture_output=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr.decode()
    store = Store(runs)
    (sweep_id,) = store.sweeps()["id"]
    runs_df = store.runs()
    assert len(runs_df) == members  # one run per member, no stale extra row
    assert set(runs_df["status"]) == {"finished"}
    table = member_table(store, sweep_id)
    assert len(table) == members and set(table["status"]) == {"finished"}
    assert len(load_spec(SWEEP).grid) == 2
