"""Maximal initial learning rate (Iyer et al. 2023): the bisection on a case with a known
threshold (gradient descent on a quadratic), the power-law fit, the "trains" rule, the
options, and one small measurement through the runner."""

from __future__ import annotations

import math

import pytest

from learnscope.errors import UserError
from learnscope.store import Store
from learnscope.studies.max_lr import bisect_log, check_options, fit_power, measure, trains


def gd_trains(curvature: float, steps: int, factor: float):
    """GD on f(x) = L x^2 / 2 from x = 1, run step by step; trains when the final loss is
    below ``factor`` times the first (what the study asks of a network)."""

    def ok(lr: float) -> bool:
        x = 1.0
        for _ in range(steps):
            x -= lr * curvature * x
            if not math.isfinite(x) or abs(x) > 1e150:
                return False
        return curvature * x * x / 2 < factor * curvature / 2

    return ok


@pytest.mark.parametrize("curvature", [0.5, 4.0, 100.0])
def test_bisection_finds_the_gd_divergence_threshold_of_a_quadratic(curvature):
    """|1 - lr L|^(2N) < factor  <=>  lr < (1 + factor^(1/2N)) / L  (-> 2 / L)."""
    steps, factor = 60, 0.5
    exact = (1 + factor ** (1 / (2 * steps))) / curvature
    found = bisect_log(gd_trains(curvature, steps, factor), 0.1 / curvature, 100 / curvature, 40)
    assert found == pytest.approx(exact, rel=1e-6)
    assert found <= exact
    assert abs(found - 2 / curvature) < 0.02 / curvature  # close to the 2 / L edge


def test_bisection_precision_and_edges():
    threshold = 0.37
    for iters in (3, 6, 10):
        found = bisect_log(lambda lr: lr <= threshold, 1e-3, 10.0, iters)
        step = (math.log(10.0) - math.log(1e-3)) / 2**iters
        assert found <= threshold and math.log(threshold) - math.log(found) <= step + 1e-12
    assert bisect_log(lambda lr: False, 1e-3, 1.0, 5) == 0.0
    assert bisect_log(lambda lr: True, 1e-3, 1.0, 5) == 1.0
    with pytest.raises(ValueError):
        bisect_log(lambda lr: True, 1.0, 1.0, 5)


def test_fit_power_recovers_an_exact_law_and_rates_noise():
    xs = [64, 128, 256, 1024, 4096]
    slope, c, r2 = fit_power(xs, [7.0 * x**-0.8 for x in xs])
    assert (slope, c, r2) == (pytest.approx(-0.8), pytest.approx(7.0), pytest.approx(1.0))
    slope, _, r2 = fit_power([1, 2, 3, 4], [1.0, 3.0, 1.0, 3.0])
    assert r2 < 0.5


def test_trains_rule():
    assert trains({"train_loss": 0.3}, 0.69, 0.7)
    assert not trains({"train_loss": 0.6}, 0.69, 0.7)
    assert not trains({"train_loss": float("nan")}, 0.69, 0.7)
    assert not trains({"train_loss": 0.1, "diverged_step": 12}, 0.69, 0.7)
    assert not trains({}, 0.69, 0.7)


@pytest.mark.parametrize(
    "bad,field",
    [
        ({"depth": [2]}, "depth"),
        ({"depths": [1]}, "depths"),
        ({"widths": [0]}, "widths"),
        ({"depths": [2], "widths": [8]}, "depths"),
        ({"factor": 1.0}, "factor"),
        ({"lr_min": 1.0, "lr_max": 0.5}, "lr_min"),
        ({"iters": 0}, "iters"),
        ({"task": "xor"}, "task"),
    ],
)
def test_bad_options_name_the_field(bad, field):
    with pytest.raises(UserError, match=field):
        check_options(bad)


def test_measure_through_the_runner(tmp_path):
    """Four tiny members: every try is a run of the store; eta* falls with depth at width 128."""
    store = Store(tmp_path)
    out = measure(
        {"depths": [2, 8], "widths": [32, 128], "iters": 4},
        seed=0,
        store=store,
    )
    assert len(store.runs()) == out["tries"] and out["tries"] >= 4 * 2
    etas = {k: v for k, v in out.items() if k.startswith("max_lr/")}
    assert len(etas) == 4 and all(0.02 <= v <= 100 for v in etas.values())
    assert out["max_lr/depth8/width128"] < out["max_lr/depth2/width128"]
    assert "slope" in out and "r2" in out
