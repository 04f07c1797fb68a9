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
    assert "learnscope show RUN --spectrum" in res.output  # the checkpoint is read on request
    res = invoke("show", run_id, "--spectrum", "--runs-dir", runs_dir)
    assert res.exit_code == 0 and "frequencies used" in res.output, res.output


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


def test_resume_keeps_the_config_but_may_train_longer(tiny_yaml, runs_dir):
    """--resume refuses a recipe and any --set but the resumable fields; more steps continue
    the finished run in place, row for row."""
    assert invoke("run", tiny_yaml, "--runs-dir", runs_dir, "-q").exit_code == 0
    store = Store(runs_dir)
    (run_id,) = store.runs()["id"]
    res = invoke("run", tiny_yaml, "--resume", run_id, "--runs-dir", runs_dir, "-q")
    assert res.exit_code == 2 and "not both" in res.output
    res = invoke("run", "--resume", run_id, "--set", "train.lr=1", "--runs-dir", runs_dir)
    assert res.exit_code == 2 and "train.lr" in res.output and "train.steps" in res.output
    before = store.metric_table(run_id)
    res = invoke("run", "--resume", run_id, "--set", "train.steps=50", "--runs-dir", runs_dir, "-q")
    assert res.exit_code == 0, res.output
    after = Store(runs_dir).metric_table(run_id)
    assert list(after.index) == [0, 10, 20, 30, 40, 50]
    assert after.loc[:20].equals(before.loc[:20])  # the rows before the checkpoint untouched
    assert Store(runs_dir).run(run_id)["config"]["train"]["steps"] == 50
    assert len(Store(runs_dir).runs()) == 1


def test_interrupted_run_says_how_to_continue(tiny_yaml, runs_dir, monkeypatch):
    from learnscope.train.loop import Trainer

    real = Trainer.evaluate

    def ctrl_c_at_step_20(self):
        if self.step == 20:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(Trainer, "evaluate", ctrl_c_at_step_20)
    res = invoke("run", tiny_yaml, "--runs-dir", runs_dir, "-q")
    run_id = Store(runs_dir).runs()["id"][0]
    assert res.exit_code == 1 and f"learnscope run --resume {run_id}" in res.output
    monkeypatch.undo()
    res = invoke("run", "--resume", run_id, "--runs-dir", runs_dir, "-q")
    assert res.exit_code == 0 and f"learnscope report {run_id}" in res.output
