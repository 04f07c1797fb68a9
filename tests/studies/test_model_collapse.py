"""The linear-regression closed forms of model collapse (Gerstgrasser et al. 2024), checked
against actual least-squares fits by Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learnscope.studies.model_collapse import accumulate_bound, expected_error, simulate

SIGMA, D, T, GENERATIONS, TRIALS = 1.0, 5, 26, 8, 400  # sigma^2 d / (T - d - 1) = 0.25


def test_closed_forms():
    unit = SIGMA**2 * D / (T - D - 1)
    assert unit == 0.25
    assert [expected_error(n, "replace", SIGMA, D, T) for n in (1, 2, 8)] == [0.25, 0.5, 2.0]
    assert expected_error(2, "accumulate", SIGMA, D, T) == pytest.approx(0.25 * 1.25)
    assert accumulate_bound(SIGMA, D, T) == pytest.approx(0.25 * math.pi**2 / 6)
    with pytest.raises(ValueError, match="T > d"):
        expected_error(1, "replace", 1.0, 10, 11)


@pytest.mark.parametrize("mode", ["replace", "accumulate"])
def test_monte_carlo_matches_the_closed_form(mode):
    got = simulate(GENERATIONS, mode, SIGMA, D, T, TRIALS, seed=1)
    want = np.array([expected_error(n, mode, SIGMA, D, T) for n in range(1, GENERATIONS + 1)])
    # the error of each generation is a sum of chi-square-like terms: within 12% at 400 trials
    np.testing.assert_allclose(got, want, rtol=0.12)


def test_replacing_grows_linearly_and_accumulating_stays_bounded():
    replace = simulate(GENERATIONS, "replace", SIGMA, D, T, TRIALS, seed=2)
    accumulate = simulate(GENERATIONS, "accumulate", SIGMA, D, T, TRIALS, seed=2)
    slope = np.polyfit(np.arange(1, GENERATIONS + 1), replace, 1)[0]
    assert slope == pytest.approx(0.25, rel=0.15)  # sigma^2 d / (T - d - 1) per generation
    assert accumulate.max() < 1.1 * accumulate_bound(SIGMA, D, T)
    assert accumulate[-1] - accumulate[GENERATIONS // 2] < 0.05  # flat late on
    assert replace[-1] > 4 * accumulate[-1]
