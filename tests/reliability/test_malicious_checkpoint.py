"""A checkpoint file planted in a runs directory cannot run code: every command that reads
checkpoints refuses it with one line, and the code in it never runs."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
import yaml
from typer.testing import CliRunner

from learnscope import checkpoint
from learnscope.cli import app
from learnscope.errors import UserError
from learnscope.runner import execute
from learnscope.store import Store


class Payload:
    """Unpickling this calls ``os.system`` (the classic pickle exploit)."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(run_dir, marker, step: int = 99_999_999) -> None:
    """A ``step_*.pt`` newer than every real checkpoint, in torch's own zip format, whose
    pickle runs ``touch marker`` when loaded with weights_only=False."""
    path = checkpoint.path_for(run_dir / "checkpoints", step)
    torch.save({"model": {}, "step": step, "evil": Payload(marker)}, path)
    assert not marker.exists()


@pytest.fixture
def planted(tiny_config, runs_dir, tmp_path):
    tiny_config["train"]["checkpoint_every"] = 10
    result = execute(tiny_config, Store(runs_dir))
    marker = tmp_path / "pwned"
    plant(result.dir, marker)
    return result, marker


def test_the_payload_would_run_if_loaded_unsafely(planted):
    """The planted file really is an exploit: an unsafe load runs it."""
    result, marker = planted
    path = checkpoint.path_for(result.dir / "checkpoints", 99_999_999)
    torch.load(path, weights_only=False)
    assert marker.exists()


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    "command",
    [
        lambda run_id, runs: ["run", "--resume", run_id, "--runs-dir", runs, "-q"],
        lambda run_id, runs: ["probe", run_id, "--runs-dir", runs],
    ],
    ids=["run --resume", "probe"],
)
def test_commands_refuse_the_file(planted, runs_dir, command):
    result, marker = planted
    res = invoke(*command(result.run_id, runs_dir))
    assert res.exit_code == 2, res.output
    assert "refusing" in res.output and "step_99999999.pt" in res.output
    assert "Traceback" not in res.output
    assert not marker.exists()


def test_report_leaves_the_panel_out_and_says_why(planted, runs_dir, tmp_path):
    result, marker = planted
    res = invoke("report", result.run_id, "--runs-dir", runs_dir, "-o", tmp_path / "r.html")
    assert res.exit_code == 0, res.output
    assert "refusing" in res.output and not marker.exists()


def test_sweep_resume_refuses_it(tmp_path):
    from learnscope.sweep import load_spec, run_sweep

    store = Store(tmp_path / "runs")
    spec = load_spec(
        {
            "name": "s",
            "config": {
                "task": {"name": "modular", "p": 7},
                "model": {"kind": "mlp", "width": 8},
                "train": {"steps": 10, "eval_every": 5, "checkpoint_every": 5},
            },
        }
    )
    run_sweep(spec, store, chunk=1)
    (run_id,) = store.runs()["id"]
    store.set_status(run_id, "interrupted")  # as if cut short: resume continues it in place
    marker = tmp_path / "pwned"
    plant(store.root / run_id, marker)
    with pytest.raises(UserError, match="refusing"):
        run_sweep(spec, store, resume="last")
    assert not marker.exists()


def test_a_plain_pickle_is_refused_too(tmp_path):
    """Not only torch's zip format: a bare pickle stream is refused as well."""
    marker = tmp_path / "pwned"
    path = tmp_path / "step_00000001.pt"
    path.write_bytes(pickle.dumps({"model": Payload(marker)}))
    with pytest.raises(UserError):
        checkpoint.load(path)
    assert not marker.exists()


def test_real_checkpoints_still_load(tiny_config, runs_dir):
    """weights_only reads every key of a learnscope checkpoint (optimiser, scheduler, RNG)."""
    tiny_config["train"].update(batch_size=8, optimizer="sgd", momentum=0.9)
    tiny_config["train"]["schedule"] = "warmup_cosine"
    result = execute(tiny_config, Store(runs_dir))
    step, state = checkpoint.latest(result.dir / "checkpoints")
    assert step == 30 and {"model", "optimizer", "scheduler", "generator", "order"} <= set(state)
    assert yaml.safe_load((result.dir / "config.yaml").read_text())["name"] == "tiny"
