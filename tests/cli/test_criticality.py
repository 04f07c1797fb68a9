from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from learnscope.cli import app


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_criticality_prints_the_relu_critical_point_and_draws_the_diagram(tmp_path):
    out = tmp_path / "relu.png"
    args = ["--depth", 24, "--width", 64, "--points", 11, "--sigma-w2", 1, 3, "--b-points", 3]
    res = invoke("criticality", "--act", "relu", *args, "--rows", 8, "--out", out)
    assert res.exit_code == 0, res.output
    found = float(re.search(r"^sigma_w\^2 = ([\d.]+)$", res.output, re.M)[1])
    assert found == pytest.approx(2.0, abs=0.15)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, field",
    [
        (["--act", "sigmoid"], "--act"),
        (["--depth", 2], "--depth"),
        (["--width", 0], "--width"),
        (["--sigma-w2", 3, 1], "--sigma-w2"),
        (["--sigma-w2", 0, 1], "--sigma-w2"),
        (["--points", 1], "--points"),
        (["--sigma-b", -1], "--sigma-b"),
        (["--sigma-b", 0, "--b-points", 3], "--b-points"),
        (["--rows", 0], "--rows"),
        (["--n-proj", 0], "--n-proj"),
        (["--depth", 1000, "--width", 4096], "--depth, --width"),
        (["--out", "x.pdf"], "--out"),
        (["--out", "/no/such/dir/x.png"], "--out"),
    ],
)
def test_criticality_bad_arguments_exit_2(args, field, tmp_path):
    res = invoke("criticality", *args)
    assert res.exit_code == 2, res.output
    assert f"error: {field}" in res.output
    assert not list(tmp_path.iterdir())
