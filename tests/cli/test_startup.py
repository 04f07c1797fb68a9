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
