"""The memory-scaling study: fitted exponents against the paper's laws, and its errors."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from learnscope.errors import UserError
from learnscope.studies.memory_scaling import fit_exponent, measure, theory

SMALL = {
    "n_tokens": 5000,
    "n_outputs": 100,
    "dims": [128, 256, 512],
    "samples": [100, 1000, 10000],
    "d_samples": 256,
}


def test_fit_exponent_recovers_a_power_law():
    xs = [10, 20, 40, 80]
    assert fit_exponent(xs, [3 * x**-0.7 for x in xs]) == pytest.approx(-0.7)
    assert math.isnan(fit_exponent(xs, [0.0, 0.0, 0.0, 1e-3]))


@pytest.mark.parametrize("alpha", [2.0])
def test_small_sweeps_follow_the_laws(alpha):
    out = measure({**SMALL, "alpha": alpha}, seed=0)
    law = theory(alpha)
    assert out["d_exponent"] == pytest.approx(law["d_exponent_theory"], abs=0.2)
    assert out["T_exponent"] == pytest.approx(law["T_exponent_theory"], abs=0.1)
    for t in SMALL["samples"]:  # the seen tokens are recalled: E is about the unseen mass
        assert out[f"error_T{t}"] <= out[f"unseen_T{t}"] + 1e-12
        assert out[f"error_T{t}"] >= 0.9 * out[f"unseen_T{t}"]


def test_an_empty_or_tiny_memory_fails_the_claims():
    """No reproduces claim holds for a memory that stores nothing (W = 0) or has d = 1."""
    from learnscope.studies.study import load_study

    claims = {c.key: float(c.threshold.lstrip("<=")) for c in load_study("memory-scaling").claims}
    empty = measure({**SMALL, "top_factor": 0, "d_samples": 1}, seed=0)
    assert all(empty[f"error_d{d}"] == 1.0 for d in SMALL["dims"])
    assert empty["d_exponent_gap"] > claims["d_exponent_gap"]
    assert empty["T_exponent_gap"] > claims["T_exponent_gap"]


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"widths": [1, 2]}, r"unknown widths; allowed: n_tokens"),
        ({"dims": [64]}, r"options\.dims: a list of 2 or more"),
        ({"alpha": 1.0}, r"options\.alpha"),
        ({"n_tokens": True}, r"options\.n_tokens"),
        ({"dims": [8, 10**5]}, r"options\.dims: at most 4096"),
    ],
)
def test_bad_options_are_user_errors(bad, match):
    with pytest.raises(UserError, match=match):
        measure(bad, seed=0)


def test_the_command_prints_the_exponents_and_refuses_bad_input():
    from learnscope.cli.app import app

    args = ["memory-scaling", "--n-tokens", "2000", "--n-outputs", "20", "--dims", "32,64",
            "--samples", "100,1000", "--d-samples", "128"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "fitted exponent" in result.output and "-0.5" in result.output
    bad = CliRunner().invoke(app, ["memory-scaling", "--dims", "64"])
    assert bad.exit_code == 2 and "--dims" in bad.output


def test_memories_trained_by_sgd_through_the_runner(tmp_path):
    from learnscope.store import Store

    opts = {**SMALL, "n_tokens": 300, "n_outputs": 10, "dims": [16, 32], "samples": [10, 100],
            "d_samples": 64, "sgd_dims": [16], "sgd_samples": 2000, "sgd_steps": 40}  # fmt: skip
    store = Store(tmp_path)
    out = measure(opts, seed=0, store=store)
    assert 0 <= out["error_sgd_d16"] < 0.2  # an empty memory errs on every token: 1.0
    assert list(store.runs()["name"]) == ["memory-scaling-sgd-d16"]
    with pytest.raises(UserError, match="needs a run store"):
        measure(opts, seed=0)
    with pytest.raises(UserError, match="sgd_lr"):
        measure({**opts, "sgd_lr": -1}, seed=0, store=store)
