"""Bad sequence-task parameters stop the CLI with exit code 2, the field named, nothing written."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from learnscope.cli import app

BAD = [
    ({"name": "multiplication", "n_digits": 0}, "task.n_digits"),
    ({"name": "multiplication", "format": "pause"}, "n_pause"),
    ({"name": "addition", "lo": 5, "hi": 3}, "lo must be <= hi"),
    ({"name": "addition", "hi": 5, "test_lengths": [4]}, "test_lengths"),
    ({"name": "parity", "lo": 1, "hi": 2, "n_train": 50, "n_test": 2}, "task.n_train"),
    ({"name": "pvr", "n": 5, "max_hops": 2, "test_hops": [6]}, "test_hops"),
    ({"name": "arithmetic", "p": 12}, "prime"),
    ({"name": "lis", "n": 0}, "task.n"),
    ({"name": "relational", "mode": "template"}, "templates"),
    ({"name": "icl_modular", "p": 3, "n_tasks": 9}, "n_tasks"),
    ({"name": "multiplication", "n_pause": -1}, "task.n_pause"),
]


@pytest.mark.parametrize("task, field", BAD)
def test_bad_task_params_exit_2(task, field, tmp_path, tiny_config, runs_dir):
    tiny_config["task"] = task
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    res = CliRunner().invoke(app, ["run", str(path), "--runs-dir", str(runs_dir)])
    assert res.exit_code == 2, res.output
    assert field in res.output and "Traceback" not in res.output
    assert not runs_dir.exists()
