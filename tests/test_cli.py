from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.store import Store

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def tiny_yaml(tmp_path, tiny_config):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    return path


def test_run_ls_show_end_to_end(tiny_yaml, runs_dir):
    res = invoke("run", tiny_yaml, "--runs-dir", runs_dir, "--quiet", "--set", "train.steps=20")
    assert res.exit_code == 0, res.output
    assert "test_acc" in res.output and "run" in res.output
    run_id = Store(runs_dir).runs()["id"][0]
    assert (runs_dir / run_id / "config.yaml").exists()
    assert (runs_dir / run_id / "checkpoints" / "step_00000020.pt").exists()
    res = invoke("ls", "--runs-dir", runs_dir)
    assert res.exit_code == 0 and run_id in res.output and "finished" in res.output
    res = invoke("show", run_id[:15], "--runs-dir", runs_dir)
    assert res.exit_code == 0 and "train/acc" in res.output and '"p": 11' in res.output


def test_progress_bar_and_env_runs_dir(tiny_yaml, tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNSCOPE_RUNS", str(tmp_path / "envruns"))
    res = invoke("run", tiny_yaml)
    assert res.exit_code == 0, res.output
    assert "tiny" in res.output and "30/30" in res.output
    assert len(Store(tmp_path / "envruns").runs()) == 1


def test_recipes_lists_builtins():
    res = invoke("recipes")
    assert res.exit_code == 0 and "grokking-mlp" in res.output and "grokking-mlp-slow" in res.output


BAD = [
    (["run", "no-such-recipe"], "unknown recipe"),
    (["run", "grokking-mlp", "--set", "task.name=nope"], "task.name"),
    (["run", "grokking-mlp", "--set", "task.op=pow"], "task.op"),
    (["run", "grokking-mlp", "--set", "train.wat=1"], "train.wat"),
    (["run", "grokking-mlp", "--set", "train.lr=fast"], "train.lr"),
    (["run", "grokking-mlp", "--set", "task.p=1"], "task.p"),
    (["run", "grokking-mlp", "--set", "task.op=div", "--set", "task.p=12"], "prime"),
    (["run", "grokking-mlp", "--set", "task.train_fraction=1.2"], "task.train_fraction"),
    (["run", "grokking-mlp", "--set", "task.noise=1"], "task.noise"),
    (["run", "grokking-mlp", "--set", "model.widht=3"], "model.widht"),
    (["run", "grokking-mlp", "--set", "train.lr.x=3"], "train.lr"),
    (["run", "grokking-mlp", "--device", "cuda:7"], "train.device"),
    (["run", "missing.yaml"], "cannot read"),
    (["show", "nope"], "run"),
]


@pytest.mark.parametrize("args, field", BAD)
def test_bad_input_exit_2_names_field_and_writes_nothing(args, field, runs_dir):
    if args[0] == "show":
        Store(runs_dir).create_run("x", {})  # a store exists, the run does not
    before = sorted(p.name for p in runs_dir.iterdir()) if runs_dir.exists() else None
    res = invoke(*args, "--runs-dir", runs_dir)
    assert res.exit_code == 2, res.output
    assert field in res.output and "Traceback" not in res.output
    after = sorted(p.name for p in runs_dir.iterdir()) if runs_dir.exists() else None
    assert after == before  # no run directory, no database created


def test_unreadable_yaml(tmp_path, runs_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    res = invoke("run", bad, "--runs-dir", runs_dir)
    assert res.exit_code == 2 and "not valid YAML" in res.output
    assert not runs_dir.exists()


def test_subprocess_prints_one_line_no_traceback(runs_dir):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "learnscope",
            "run",
            "grokking-mlp",
            "--set",
            "task.p=1",
            "--runs-dir",
            str(runs_dir),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "task.p" in proc.stderr
    assert not runs_dir.exists()
