"""``learnscope capacity``, ``generations`` and ``transfer`` on the command line: a tiny
end-to-end search, and every bad argument a one-line error with exit code 2."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.store import Store

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def memoriser(tmp_path):
    cfg = {
        "name": "cap",
        "task": {"name": "modular", "op": "add", "p": 5, "train_fraction": 0.5},
        "model": {"kind": "mlp", "width": 64, "depth": 2, "activation": "relu"},
        "train": {"lr": 0.03, "steps": 300, "eval_every": 10, "loss": "ce"},
        "probes": [],
    }
    path = tmp_path / "cap.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_capacity_over_widths_prints_emc_and_parameters(memoriser, runs_dir):
    res = invoke(
        "capacity", memoriser, "--runs-dir", runs_dir, "--start", 12, "--over", "model.width=64"
    )
    assert res.exit_code == 0, res.output
    assert "n=12: fits" in res.output and "EMC = 24 samples" in res.output
    assert "reached the most samples tried" in res.output and "parameters" in res.output
    assert len(Store(runs_dir).runs()) == 2  # n = 12, 24


@pytest.mark.parametrize(
    "args, message",
    [
        (["--labels", "noisy"], "--labels"),
        (["--start", "0"], "--start"),
        (["--start", "100"], "--start"),
        (["--rtol", "1.5"], "--rtol"),
        (["--over", "model.width"], "--over"),
        (["--set", "task.p=1"], "task.p"),
    ],
)
def test_capacity_bad_arguments(memoriser, runs_dir, args, message):
    res = runner.invoke(app, ["capacity", str(memoriser), "--runs-dir", str(runs_dir), *args])
    assert res.exit_code == 2 and message in res.output, res.output
    assert not len(Store(runs_dir).runs())  # nothing trained


def test_capacity_needs_max_for_a_task_without_a_pool(runs_dir):
    res = runner.invoke(app, ["capacity", "model-collapse", "--runs-dir", str(runs_dir)])
    assert res.exit_code == 2 and "--max" in res.output


def test_generations_and_transfer_bad_arguments(memoriser, runs_dir):
    res = runner.invoke(app, ["generations", str(memoriser), "--mode", "mix"])
    assert res.exit_code == 2 and "--mode" in res.output
    res = runner.invoke(app, ["transfer", "--sweep", "x", "--runs-dir", str(runs_dir)])
    assert res.exit_code == 2 and "--task" in res.output
