"""Generalisation measures (Jiang et al. 2020) against closed-form cases (linear models whose
norms, Hessians and sharpness are known), Kendall's tau (plain and granulated), the cache in
the store, ``learnscope sweep correlate`` and its bar chart."""

from __future__ import annotations

import itertools
import math

import pandas as pd
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from learnscope.cli.app import app
from learnscope.errors import UserError
from learnscope.store import Store
from learnscope.studies import gen_measures as gm

# -- the measures --------------------------------------------------------------------------------


def chain(weights, biases=None) -> nn.Sequential:
    """Linear layers (ReLU between) with the given weights ``(out, in)`` and biases."""
    layers = []
    for i, w in enumerate(weights):
        w = torch.as_tensor(w, dtype=torch.float32)
        lin = nn.Linear(w.shape[1], w.shape[0], bias=biases is not None)
        lin.weight.data.copy_(w)
        if biases is not None:
            lin.bias.data.copy_(torch.as_tensor(biases[i], dtype=torch.float32))
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def test_norms_of_a_diagonal_chain():
    m = chain([[[3.0, 0.0], [0.0, 4.0]], [[2.0, 0.0], [0.0, 1.0]]])
    got = gm.norm_measures(m)
    # spectral norms 4 and 2: prod of squares 64; Frobenius^2 25 and 5: 125
    assert math.exp(got["log_prod_spec"]) == pytest.approx(64.0)
    assert math.exp(got["log_prod_fro"]) == pytest.approx(125.0)
    assert math.exp(got["log_sum_fro"]) == pytest.approx(2 * math.sqrt(125.0))
    assert got["params"] == 8


def test_path_norm_is_the_sum_over_paths_of_squared_products():
    g = torch.Generator().manual_seed(0)
    ws = [
        torch.randn(3, 2, generator=g),
        torch.randn(4, 3, generator=g),
        torch.randn(2, 4, generator=g),
    ]
    brute = sum(
        float(ws[0][j, i] ** 2 * ws[1][k, j] ** 2 * ws[2][o, k] ** 2)
        for i, j, k, o in itertools.product(range(2), range(3), range(4), range(2))
    )
    assert gm.path_norm(chain(ws)) == pytest.approx(brute, rel=1e-5)
    # a bias is a weight from a unit that is always 1 (two layers, in closed form):
    # sum_o [ sum_j W2[o,j]^2 (sum_i W1[j,i]^2 + b1[j]^2) + b2[o]^2 ]
    w1, w2 = ws[0], ws[1][:2]
    b1, b2 = torch.randn(3, generator=g), torch.randn(2, generator=g)
    want = float((w2**2 @ ((w1**2).sum(1) + b1**2)).sum() + (b2**2).sum())
    assert gm.path_norm(chain([w1, w2], [b1, b2])) == pytest.approx(want, rel=1e-5)


def test_distance_from_init_and_margin():
    a = chain([[[1.0, 2.0]], [[3.0]]])
    b = chain([[[0.0, 0.0]], [[1.0]]])
    assert gm.distance_from_init(a, b) == pytest.approx(1 + 4 + 4)
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 2.5], [1.0, 1.0, 4.0]])
    y = torch.tensor([0, 1, 2])  # margins 2, -0.5, 3
    assert gm.margin(logits, y, q=0.0) == pytest.approx(-0.5)
    assert gm.margin(logits, y, q=0.5) == pytest.approx(2.0)


def quadratic(a_diag: torch.Tensor, w_star: torch.Tensor):
    """``L(w) = 0.5 sum_i a_i (w_i - w*_i)^2`` with ``w`` a parameter at ``w*``."""
    w = nn.Parameter(w_star.clone())
    return w, lambda: 0.5 * (a_diag * (w - w_star) ** 2).sum()


def test_worst_case_sharpness_reaches_the_corner_of_the_box():
    a = torch.tensor([1.0, 4.0, 0.5, 2.0], dtype=torch.float64)
    w_star = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    w, loss = quadratic(a, w_star)
    sigma = 0.1
    r = sigma * (w_star.abs() + gm.EPS)
    got = gm.worst_case_sharpness(
        loss, [w], sigma, steps=5, generator=torch.Generator().manual_seed(0)
    )
    assert got == pytest.approx(float(0.5 * (a * r**2).sum()), rel=1e-9)
    assert torch.equal(w.data, w_star)  # restored


def test_pacbayes_sigma_of_a_quadratic():
    a = torch.full((50,), 2.0, dtype=torch.float64)
    w_star = torch.linspace(-1, 1, 50, dtype=torch.float64)
    w, loss = quadratic(a, w_star)
    g = torch.Generator().manual_seed(0)
    tol = 0.1
    # E L(w + sigma z) - L(w) = 0.5 sigma^2 tr A: sigma*^2 = 2 tol / tr A
    s = gm.pacbayes_sigma(loss, [w], tol, samples=64, steps=30, generator=g)
    assert s**2 == pytest.approx(2 * tol / float(a.sum()), rel=0.1)
    # magnitude-aware: 0.5 sum_i a_i (sigma^2 w_i^2 + eps^2) = tol
    s = gm.pacbayes_sigma(loss, [w], tol, samples=64, magnitude=True, steps=30, generator=g)
    want = (2 * tol - float((a * gm.EPS**2).sum())) / float((a * w_star**2).sum())
    assert s**2 == pytest.approx(want, rel=0.1)
    assert torch.equal(w.data, w_star)


def test_hessian_top_and_trace_of_linear_regression():
    # L(w) = mean((X w - y)^2): H = 2 X^T X / n, for any w
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g, dtype=torch.float64) * torch.arange(1, 7)
    y = torch.randn(40, generator=g, dtype=torch.float64)
    model = nn.Linear(6, 1, bias=False).double()
    h = 2 * x.T @ x / 40
    loss = lambda: ((model(x)[:, 0] - y) ** 2).mean()  # noqa: E731
    trace = gm.hutchinson_trace(loss, list(model.parameters()), probes=2000, generator=g)
    assert trace == pytest.approx(float(torch.trace(h)), rel=0.05)
    got = gm.model_measures(model, model, x, y, lambda f, t: ((f[:, 0] - t) ** 2).mean())
    assert got["hessian_top"] == pytest.approx(float(torch.linalg.eigvalsh(h)[-1]), rel=1e-4)
    assert got["dist_init"] == 0.0 and set(got) == set(gm.MEASURES)


# -- Kendall's tau -------------------------------------------------------------------------------


def test_kendall_tau_b_with_ties():
    x = [1, 2, 2, 3, 4]
    y = [1, 3, 2, 2, 5]
    # pairs: n0 = 10; ties in x: 1 (the two 2s); ties in y: 1 (the two 2s)
    # concordant 7, discordant 1 -> (7 - 1) / sqrt(9 * 9)
    assert gm.kendall_tau(x, y) == pytest.approx(6 / 9)
    assert gm.kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert math.isnan(gm.kendall_tau([1, 1], [1, 2]))
    assert gm.kendall_tau([1, float("nan"), 3, 4], [1, 9, 2, 3]) == 1.0


def test_granulated_tau_holds_the_other_axes_fixed():
    # the gap rises with a; the measure rises with a where b = 0 and falls where b = 1
    rows = []
    for a, b, s in itertools.product(range(3), range(2), range(2)):
        rows.append({"a": a, "b": b, "seed": s, "g": a + 0.1 * b, "m": a if b == 0 else -a})
    f = pd.DataFrame(rows)
    psi, groups = gm.granulated_taus(f, ["a", "b"], "g", ["m"], given=["seed"])
    assert groups == {"a": 4, "b": 6}
    assert psi["m"]["a"] == pytest.approx(0.0)  # +1 in the 2 groups b = 0, -1 in the 2 b = 1
    # a = 0: the measure ties (no tau, left out); a = 1, 2: discordant, -1
    assert psi["m"]["b"] == pytest.approx(-1.0)


# -- runs, the cache and the command ---------------------------------------------------------------


SWEEP = {
    "name": "gm-tiny",
    "config": {
        "name": "gm-tiny",
        "seed": 0,
        "task": {
            "name": "prototypes",
            "n_classes": 3,
            "length": 4,
            "vocab": 4,
            "noise": 0.5,
            "n_per_class": 10,
            "n_test_per_class": 20,
        },
        "model": {"kind": "mlp", "width": 8, "depth": 2},
        "train": {"lr": 0.01, "steps": 20, "eval_every": 10},
        "probes": [],
    },
    "grid": {"model.width": [8, 16], "train.lr": [0.01, 0.03]},
}


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    from learnscope.sweep import load_spec, run_sweep

    root = tmp_path_factory.mktemp("gm")
    store = Store(root)
    sweep_id = run_sweep(load_spec(SWEEP), store, workers=1, chunk=1)
    return root, sweep_id


def test_correlate_caches_the_measures_in_the_store(tiny_sweep, monkeypatch):
    root, sweep_id = tiny_sweep
    store = Store(root)
    corr = gm.correlate(store, sweep_id, "gap")
    assert corr.members == 4 and set(corr.overall) == set(gm.MEASURES)
    assert corr.axes == ["model.width", "train.lr"] and corr.groups == {
        "model.width": 2,
        "train.lr": 2,
    }
    run = corr.values["run"].iloc[0]
    stored = store.metrics(run, [gm.PREFIX + "sharpness"])
    assert len(stored) == 1
    # a second call reads them back: nothing is measured again
    monkeypatch.setattr(gm, "run_measures", lambda *a, **k: pytest.fail("measured twice"))
    again = gm.correlate(Store(root), sweep_id, "gap")
    assert again.overall == pytest.approx(corr.overall, nan_ok=True)


def test_sweep_correlate_prints_a_tau_per_measure_and_draws_them(tiny_sweep, tmp_path):
    root, sweep_id = tiny_sweep
    out = tmp_path / "taus.png"
    r = CliRunner().invoke(
        app,
        [
            "sweep",
            "correlate",
            sweep_id,
            "--target",
            "gap",
            "--plot",
            str(out),
            "--runs-dir",
            str(root),
            "-q",
        ],
        terminal_width=200,
    )
    assert r.exit_code == 0, r.output
    for m in gm.MEASURES:
        assert m in r.output
    assert "Psi" in r.output and "same sign under every axis:" in r.output
    assert out.stat().st_size > 1000


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target", "accuracy"], "--target: unknown target 'accuracy'; allowed: gap, loss_gap"),
        (["--plot", "x.pdf"], "--plot: give a .png file"),
        (["--min-train-acc", "2"], "--min-train-acc: must be in [0, 1] (got 2.0)"),
    ],
)
def test_sweep_correlate_refuses_bad_input(tiny_sweep, args, message):
    root, sweep_id = tiny_sweep
    r = CliRunner().invoke(app, ["sweep", "correlate", sweep_id, *args, "--runs-dir", str(root)])
    assert r.exit_code == 2 and message in r.output


def test_study_options_are_checked(tmp_path):
    with pytest.raises(
        UserError, match="unknown widths; allowed: sweep, target, measures, workers, min_train_acc"
    ):
        gm.measure({"sweep": "gen-measures", "widths": [1]}, 0, Store(tmp_path))
    with pytest.raises(UserError, match="measures: unknown option 'radius'"):
        gm._options({"radius": 1})
