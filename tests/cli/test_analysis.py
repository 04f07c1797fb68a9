from __future__ import annotations

import re

import pytest
import yaml
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.store import Store


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("op, p", [("add", 7), ("add", 31), ("mul", 11), ("mul", 23)])
def test_analytic_is_exact_at_its_default_width(op, p):
    res = invoke("analytic", "--op", op, "--p", p)
    assert res.exit_code == 0, res.output
    assert "accuracy: 1.0000" in res.output
    assert re.search(r"frequencies used: .*\((\d+) of \1\)", res.output)  # every frequency


def test_analytic_accuracy_falls_gracefully_with_width():
    accs = []
    for width in (6, 12, 24, 200):
        res = invoke("analytic", "--p", 23, "--width", width)
        accs.append(float(re.search(r"accuracy: ([\d.]+)", res.output)[1]))
    assert accs[0] < accs[-1] == 1.0 and accs[0] > 1 / 23  # worse when narrow, never chance
    assert all(b >= a - 0.05 for a, b in zip(accs, accs[1:]))


def test_analytic_many_terms_and_bad_input():
    assert "accuracy: 1.0000" in invoke("analytic", "--p", 5, "--terms", 3).output
    for args, field in (
        (["--op", "div"], "--op"),
        (["--p", 21], "prime"),
        (["--width", 0], "--width"),
    ):
        res = invoke("analytic", *args)
        assert res.exit_code == 2 and field in res.output and "Traceback" not in res.output


def test_prune_memorizing_reports_before_and_after(tmp_path, tiny_config):
    tiny_config["task"].update(p=11, noise=0.3)
    tiny_config["model"].update(activation="quadratic", bias=False, width=64)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    runs = tmp_path / "runs"
    assert invoke("run", path, "--runs-dir", runs, "-q").exit_code == 0
    res = invoke("prune-memorizing", "last", "--runs-dir", runs, "--ipr-below", 0.9)
    assert res.exit_code == 0, res.output
    assert re.search(r"pruned \d+ of 64 neurons", res.output)
    for key in ("train_clean/acc", "train_corrupted/acc", "train_corrupted/true_acc", "test/acc"):
        assert key in res.output
    res = invoke("prune-memorizing", "last", "--runs-dir", runs, "--ipr-below", 2)
    assert res.exit_code == 2 and "--ipr-below" in res.output
    assert len(Store(runs).runs()) == 1  # pruning writes no run
