"""``learnscope coord-check``: a table per site against width, a PNG, one sweep in the store
(whose report draws the coordinate check again); bad input ends in one line, exit 2."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.report.build import build_report
from learnscope.store import Store

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_coord_check_command(tmp_path, tiny_config):
    recipe = tmp_path / "tiny.yaml"
    tiny_config["model"].update(param="mup", base_width=8)
    recipe.write_text(yaml.safe_dump(tiny_config))
    out, runs = tmp_path / "coord.png", tmp_path / "runs"
    res = invoke(
        "coord-check", recipe, "--widths", "8,16,32", "--steps", "2", "-o", out, "--runs-dir", runs
    )
    assert res.exit_code == 0, res.output
    assert "layers.0.hook_post" in res.output and "slope" in res.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    store = Store(runs)
    sweep = store.sweeps()["id"].iloc[0]
    assert len(store.runs()) == 3
    report = build_report(store, [], tmp_path / "r.html", sweep=sweep)
    assert "coord-check" in report.panels


def test_coord_check_bad_input(tmp_path):
    res = invoke("coord-check", "grokking-mlp", "--widths", "8,x", "--runs-dir", tmp_path)
    assert res.exit_code == 2 and "--widths" in res.output
    res = invoke("coord-check", "grokking-mlp", "--widths", "8", "--runs-dir", tmp_path)
    assert res.exit_code == 2 and "--widths" in res.output
    res = invoke("coord-check", "grokking-mlp", "--steps", "0", "--runs-dir", tmp_path)
    assert res.exit_code == 2 and "--steps" in res.output
    assert not (tmp_path / "learnscope.db").exists() or not len(Store(tmp_path).runs())


def test_coord_check_resumes_its_sweep(tmp_path, tiny_config):
    """The check is a sweep: run again with --resume, nothing is trained twice."""
    import yaml

    from learnscope.store import Store

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_config))
    runs = tmp_path / "runs"
    args = ["coord-check", recipe, "--widths", "8,16", "--steps", "2", "-o", tmp_path / "c.png"]
    assert invoke(*args, "--runs-dir", runs).exit_code == 0
    res = invoke(*args, "--resume", "last", "--runs-dir", runs)
    assert res.exit_code == 0, res.output
    store = Store(runs)
    assert len(store.sweeps()) == 1 and len(store.runs()) == 2
    assert set(store.runs()["status"]) == {"finished"}
