"""The Ray backend on a local Ray instance with 2 CPUs (skipped when ray is not installed)."""

from __future__ import annotations

import signal

import pytest

from learnscope.store import Store
from learnscope.sweep import load_spec, run_sweep
from tests.conftest import tiny

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'learnscope[ray]')")

SPEC = {
    "name": "ray-small",
    "config": tiny(model={"width": 16}, train={"steps": 10, "eval_every": 5}),
    "grid": {"model.width": [8, 16], "train.weight_decay": [0.0, 1.0]},
    "resources": {"num_cpus": 1},
}


def _timeout(signum, frame):
    raise TimeoutError("the Ray sweep took over 240 s")


def test_ray_backend_driver_writes_every_member(tmp_path):
    store = Store(tmp_path / "runs")
    old = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(240)  # bounded in time, whatever Ray does
    try:
        sweep_id = run_sweep(load_spec(SPEC), store, backend="ray", workers=2, chunk=2)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert not ray.is_initialized()  # the instance it started is shut down
    runs = store.runs()
    assert len(runs) == 4 and set(runs["status"]) == {"finished"}
    assert set(runs["sweep_id"]) == {sweep_id}
    assert store.sweeps().set_index("id").loc[sweep_id, "status"] == "finished"
    for run_id in runs["id"]:
        table = store.metric_table(run_id)
        assert list(table.index) == [0, 5, 10] and "test/acc" in table
    # two groups (the widths), each an ensemble of the two weight decays
    assert {r["ensemble_size"] for r in runs["summary"]} == {2}
