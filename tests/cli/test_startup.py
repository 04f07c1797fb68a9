"""The commands that train and draw nothing start at once: ``--help``, ``recipes``, ``ls``,
``show``, ``sweep ls`` and ``sweep show`` import neither torch nor matplotlib (checked in a
fresh interpreter, the way the console script runs them)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from learnscope.store import Store
from tests.cli.test_output import fake_run, fake_sweep

CHECK = """
import json, sys
from learnscope.cli import app
sys.argv = ["learnscope", *json.loads(sys.argv[1])]
try:
    app()
except SystemExit:
    pass
print(json.dumps([m for m in ("torch", "matplotlib") if m in sys.modules]), file=sys.stderr)
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("startup") / "runs")
    fake_run(store, "plain")
    fake_sweep(store)
    return store


@pytest.mark.parametrize(
    "args",
    [["--help"], ["recipes"], ["ls"], ["show", "last"], ["sweep", "ls"], ["sweep", "show", "last"]],
)
def test_a_command_that_trains_nothing_imports_no_torch(store, args):
    runs = ["--runs-dir", str(store.root)] if args[0] not in ("--help", "recipes") else []
    out = subprocess.run(
        [sys.executable, "-c", CHECK, json.dumps([*args, *runs])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    imported = json.loads(out.stderr.strip().splitlines()[-1])
    assert imported == [], f"learnscope {' '.join(args)} imported {imported}"


def test_run_takes_the_thread_count_asked_for(tmp_path, tiny_config, monkeypatch):
    """``run --threads N`` sets torch's threads; without it, the cores not busy at the start
    (``$OMP_NUM_THREADS`` when set wins): a busy machine trains on one thread."""
    import os

    import torch
    import yaml

    from learnscope.cli import common
    from tests.cli.test_output import invoke

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    before = torch.get_num_threads()
    try:
        res = invoke("run", path, "--threads", "1", "--runs-dir", tmp_path / "a", "-q")
        assert res.exit_code == 0 and torch.get_num_threads() == 1
        torch.set_num_threads(2)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 0.0, 0.0))
        common.set_threads(None)
        assert torch.get_num_threads() == 1
        res = invoke("run", path, "--threads", "0", "--runs-dir", tmp_path / "b")
        assert res.exit_code == 2 and "--threads" in res.output
    finally:
        torch.set_num_threads(before)


def test_run_verbose_says_where_the_time_went(tmp_path, tiny_config):
    import yaml

    from tests.cli.test_output import invoke

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    res = invoke("run", path, "--verbose", "-q", "--runs-dir", tmp_path / "runs")
    assert res.exit_code == 0, res.output
    assert "time: imports (torch, the trainer)" in res.output and "(training " in res.output
    assert "in all since the command started" in res.output
    quiet = invoke("run", path, "-q", "--runs-dir", tmp_path / "runs")
    assert "time: imports" not in quiet.output
