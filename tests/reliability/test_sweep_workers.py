"""Sweeps that last, second round (issue 28): a sweep's worker processes die with the sweep,
however the sweep dies; and a resumed sweep keeps the guarantee docs/reliability.md states
(a member continued by the engine that trained it ends bit-identical to the uninterrupted
sweep's member)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from learnscope import checkpoint
from learnscope.store import Store
from learnscope.sweep import ENDED
from tests.reliability.test_kill_resume import ENV, cli

SWEEP = {
    "name": "workers",
    "config": {
        "task": {"name": "modular", "op": "add", "p": 23, "train_fraction": 0.5},
        "model": {"kind": "mlp", "width": 32, "depth": 2},
        "train": {
            "lr": 0.003,
            "batch_size": 32,
            "steps": 600,
            "eval_every": 50,
            "checkpoint_every": 40,
        },
        "probes": [],
    },
    "grid": {"train.lr": [0.001, 0.003, 0.01]},
}
#: members that cannot share an ensemble (other widths): one job, one worker process each
SPREAD = {**SWEEP, "grid": {"model.width": [32, 40, 48]}}


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def descendants(pid: int) -> list[int]:
    """The live processes below ``pid`` (read from /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its parent has not read its status yet


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_workers_die_with_the_sweep(tmp_path):
    """SIGKILL of the sweep's own process (nothing of it can clean up) used to leave its pool's
    workers training on; each worker now asks the kernel to be killed with its parent."""
    runs = tmp_path / "runs"
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SPREAD))
    proc = subprocess.Popen(
        cli("sweep", path, "--runs-dir", runs, "--workers", 2, "--chunk", 1, "-q"),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: list[int] = []
    try:
        assert wait_for(lambda: runs.exists() and len(Store(runs).runs()) >= 2, 120)
        workers = descendants(proc.pid)
        assert len(workers) >= 2, workers
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert wait_for(lambda: not any(alive(p) for p in workers), 20), [
            p for p in workers if alive(p)
        ]
    finally:
        for pid in workers:  # only the processes this test started
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def final_weights(store: Store) -> dict[str, dict[str, torch.Tensor]]:
    """Each member's final model weights, keyed by its learning rate (its grid point)."""
    out = {}
    for r in store.runs().itertuples():
        assert r.status in ENDED, r.status
        step, state = checkpoint.latest(store.root / r.id / "checkpoints")
        assert step == SWEEP["config"]["train"]["steps"]
        out[r.config["train"]["lr"]] = state["model"]
    return out


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_resumed_sweep_is_the_uninterrupted_sweep(tmp_path, sig):
    """Members trained by the plain trainer (``--chunk 1``), stopped mid-way with a checkpoint
    written, continued by ``sweep --resume`` with the same engine: every member's final
    weights equal the uninterrupted sweep's, bit for bit."""
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    runs = tmp_path / "runs"
    args = ("--workers", 1, "--chunk", 1, "-q")
    proc = subprocess.Popen(
        cli("sweep", path, "--runs-dir", runs, *args), env=ENV, stdout=subprocess.DEVNULL
    )

    def a_checkpoint_written():
        return any(checkpoint.steps(d / "checkpoints") for d in runs.glob("2*") if d.is_dir())

    wait_for(a_checkpoint_written, 120)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    res = subprocess.run(
        cli("sweep", path, "--runs-dir", runs, "--resume", "last", *args),
        env=ENV,
        capture_output=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr.decode()
    straight = tmp_path / "straight"
    res = subprocess.run(
        cli("sweep", path, "--runs-dir", straight, *args), env=ENV, capture_output=True, timeout=600
    )
    assert res.returncode == 0, res.stderr.decode()
    got, ref = final_weights(Store(runs)), final_weights(Store(straight))
    assert sorted(got) == sorted(ref) and len(got) == 3  # one run per member
    for lr in ref:
        for name in ref[lr]:
            assert torch.equal(got[lr][name], ref[lr][name]), (lr, name)
