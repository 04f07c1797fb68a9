"""learnscope data-diet: a small run prints score-based against random pruning per keep
fraction; a mistake is one line and exit code 2."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from learnscope.cli import app
from tests.studies.test_data_diet import TINY

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--score", "loss"], "--score: 'loss'; allowed: el2n, grand, forgetting"),
        (["--keep", "0.5,x"], "--keep:"),
        (["--keep", "0"], "--keep:"),
        (["--offset", "1"], "--offset:"),
        (["--set", "task.label_noise=2"], "task.label_noise"),
    ],
)
def test_mistakes_are_one_line(args, message, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    res = invoke("data-diet", path, *args, "--runs-dir", tmp_path / "runs")
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_unknown_recipe(tmp_path):
    res = invoke("data-diet", "prototypes-label-nois", "--runs-dir", tmp_path)
    assert res.exit_code == 2 and "did you mean 'prototypes-label-noise'" in res.output


def test_prints_score_against_random(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    res = invoke(
        "data-diet", path, "--keep", "0.5", "--offset", "0,0.2", "--seeds", "1",
        "--score-seeds", "1", "--runs-dir", tmp_path / "runs",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "seed 0" in res.output and "el2n - random" in res.output
    assert "full training set: test acc" in res.output
    assert "flipped labels among the top 20% el2n scores: precision" in res.output
