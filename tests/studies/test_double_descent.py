"""Double descent: the closed form of ridgeless least squares against Monte Carlo, the teacher
task's exact answers and noise, gradient descent from zero reaching the min-norm solution
through the runner, the peak finder, the study's options, and the report panel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learnscope.errors import UserError
from learnscope.runner import execute
from learnscope.store import Store
from learnscope.studies.double_descent import (
    measure,
    peak_of,
    ridgeless_risk,
    run_config,
    simulate_ridgeless,
    threshold_width,
)
from learnscope.tasks import make_task


@pytest.mark.parametrize(
    "n, p, sigma", [(40, 10, 1.0), (60, 20, 0.5), (10, 40, 0.5), (20, 60, 1.0), (30, 33, 0.0)]
)
def test_closed_form_matches_monte_carlo(n, p, sigma):
    want = ridgeless_risk(n, p, sigma**2, 1.0)
    got = simulate_ridgeless(n, p, sigma, 1.0, trials=600, seed=1)
    assert got == pytest.approx(want, rel=0.1)


def test_closed_form_peaks_at_the_interpolation_threshold():
    risks = {p: ridgeless_risk(50, p, 0.25, 1.0) for p in (10, 30, 45, 48, 50, 52, 55, 100, 400)}
    assert math.isinf(risks[50])
    assert risks[48] > risks[45] > risks[30] > risks[10]  # under-parametrised: grows to n
    assert risks[52] > risks[55] > risks[100]  # over-parametrised: falls back
    assert risks[400] < 1.0  # far past it: below the null predictor's ||beta||^2 = 1 ... plus noise


def test_teacher_regression_targets_are_exact_plus_the_noise():
    clean = make_task("teacher", d=8, n_train=4000, n_test=50, sigma=0.0, seed=3)
    noisy = make_task("teacher", d=8, n_train=4000, n_test=50, sigma=0.5, seed=3)
    x, y = noisy.split("train")["x"], noisy.split("train")["y"]
    assert torch.equal(x, clean.split("train")["x"])
    assert torch.allclose(clean.split("train")["y"], x @ noisy.w_star / 8**0.5)
    residual = y - clean.split("train")["y"]
    assert float(residual.std()) == pytest.approx(0.5, rel=0.05)
    test = noisy.split("test")  # test targets stay clean
    assert torch.allclose(test["y"], test["x"] @ noisy.w_star / 8**0.5)


def test_teacher_rank_and_label_noise():
    task = make_task("teacher", d=10, rank=3, n_train=50, n_test=5, seed=0)
    assert torch.linalg.matrix_rank(task.split("train")["x"]) == 3
    task = make_task(
        "teacher", d=6, n_train=200, n_test=20, target="classification", n_classes=3,
        label_noise=0.25, seed=1,
    )  # fmt: skip
    train = task.split("train")
    wrong = train["y"] != train["y_true"]
    assert int(wrong.sum()) == 50  # exactly round(0.25 * 200), every one wrong
    assert torch.equal(train["y_true"], task.answer(train["x"]))
    assert task.model_dims() == {"n_inputs": 6, "embed": "none", "n_out": 3}
    with pytest.raises(UserError, match="label_noise"):
        make_task("teacher", label_noise=0.1)
    with pytest.raises(UserError, match="rank"):
        make_task("teacher", d=4, rank=5)


def _pinv_test_error(task) -> float:
    x = task.split("train")["x"].double().numpy()
    y = task.split("train")["y"].double().numpy()
    w = np.linalg.pinv(x) @ y
    xt = task.split("test")["x"].double().numpy()
    return float(np.mean((xt @ w - task.split("test")["y"].double().numpy()) ** 2))


@pytest.mark.parametrize("n_train, d", [(40, 20), (20, 40)])
def test_gradient_descent_from_zero_reaches_the_min_norm_solution(tmp_path, n_train, d):
    """A linear model (the MLP at depth 1, no bias, zero init) trained by full-batch gradient
    descent on the teacher converges to X^+ y: its test loss is the pseudo-inverse's."""
    task = {"name": "teacher", "d": d, "n_train": n_train, "n_test": 500, "sigma": 0.5, "seed": 2}
    cfg = {
        "name": "linear",
        "task": task,
        "model": {"kind": "mlp", "depth": 1, "bias": False, "init_scale": 0.0},
        "train": {"optimizer": "sgd", "lr": 0.05, "loss": "mse", "steps": 1500, "eval_every": 500},
        "probes": [],
    }
    result = execute(cfg, Store(tmp_path))
    want = _pinv_test_error(make_task(**task))
    assert result.summary["test_loss"] == pytest.approx(want, rel=1e-3)


def test_random_features_threshold_and_peak_finder():
    assert threshold_width("random_features", 100, 20) == 100
    assert threshold_width("mlp", 100, 20) == pytest.approx(99 / 22)
    peak = peak_of([10, 50, 100, 200, 1000], [0.4, 0.5, 6.0, 0.5, 0.3], 100.0)
    assert peak == {"peak_width": 100.0, "peak_over_threshold": 1.0, "peak_test_loss": 6.0,
                    "peak_height": 15.0, "peak_offset": 0.0}  # fmt: skip
    assert peak_of([10, 50, 100], [0.4, 2.0, 0.9], 25.0)["peak_offset"] == 1.0
    flat = peak_of([10, 100, 1000], [1.0, 1.05, 1.0], 100.0)  # untrained: no peak
    assert math.isinf(flat["peak_offset"])


def test_bad_options_are_user_errors(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(UserError, match="double_descent.options: unknown depth"):
        measure({"depth": 3}, 0, store)
    with pytest.raises(UserError, match="options.model"):
        measure({"model": "gpt"}, 0, store)
    with pytest.raises(UserError, match="options.widths"):
        measure({"widths": [100, 10, 50]}, 0, store)


def test_the_study_spec_and_the_sweep_load():
    from learnscope.studies.study import load_study
    from learnscope.sweep.spec import expand, load_spec

    spec = load_study("double-descent")
    assert {c.name for c in spec.claims} >= {"peak-at-threshold", "weight-decay-removes-peak"}
    members = expand(load_spec("double-descent"))
    assert len(members) == 18
    assert {m.config.model.kind for m in members} == {"random_features"}
    assert run_config({**spec.options, "model": "random_features", "d": 20, "n_train": 100,
                       "n_test": 10, "sigma": 0.5, "optimizer": "adamw", "lr": 0.01,
                       "steps": 5, "eval_every": 5}, 100, 1.0, 3)["seed"] == 3  # fmt: skip


@pytest.mark.slow
def test_measure_small_curve_peaks_and_untrained_fails(tmp_path):
    """A small curve (n_train = 40) at one seed: the peak sits at width 40; the same study with
    one training step (an untrained readout) shows no peak, so the claim on it fails."""
    store = Store(tmp_path)
    opts = {"widths": [5, 20, 40, 80, 400], "n_train": 40, "n_test": 500, "steps": 2000,
            "eval_every": 500}  # fmt: skip
    out = measure(opts, 0, store)
    assert out["peak_width"] == 40 and out["peak_offset"] == 0.0
    assert out["peak_test_loss_wd"] < 0.5 * out["peak_test_loss"]
    untrained = measure({**opts, "steps": 1, "eval_every": 1}, 0, store)
    assert math.isinf(untrained["peak_offset"])


def test_report_panel_draws_the_curve():
    from learnscope.report.curves import double_descent_figure, width_curve

    result = {"test_loss/w10": 0.4, "test_loss/w100": 6.0, "test_loss/w1000": 0.2,
              "test_loss_wd/w10": 0.4, "test_loss_wd/w100": 0.2, "test_loss_wd/w1000": 0.2,
              "threshold_width": 100}  # fmt: skip
    assert width_curve(result) == [(10, 0.4), (100, 6.0), (1000, 0.2)]
    fig = double_descent_figure([result])
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.lines) == 3  # plain, decayed, threshold
    assert double_descent_figure([{}]) is None


def test_cli_prints_the_curve_and_saves_the_plot(tmp_path):
    from typer.testing import CliRunner

    from learnscope.cli.app import app

    runner = CliRunner()
    args = ["double-descent", "--runs-dir", str(tmp_path), "--option", "widths=[5, 20, 80]",
            "--option", "n_train=20", "--option", "n_test=100", "--option", "steps=300",
            "--option", "eval_every=100", "--plot", str(tmp_path / "dd.png")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "interpolation threshold 20" in result.output
    assert (tmp_path / "dd.png").stat().st_size > 0
    bad = runner.invoke(app, ["double-descent", "--runs-dir", str(tmp_path), "--option", "x=1"])
    assert bad.exit_code == 2 and "unknown x" in bad.output and "Traceback" not in bad.output
