"""The AutoInit pair (He, Doshi & Gromov 2022): a 50-layer ReLU MLP at a bad init does not
train; the same network after AutoInit does. Each run's ``expect`` holds what was measured,
over seeds 0..3 and three CPU kernels (docs/phenomena.md, "AutoInit"): 12 of 12 each."""

from __future__ import annotations

import math

import pytest

from learnscope.config import load_config
from learnscope.runner import execute
from learnscope.store import Store


def run(name, tmp_path):
    cfg = load_config(name)
    result = execute(cfg, Store(tmp_path))
    failed = {k: (cfg.expect[k], result.summary.get(k))
              for k, ok in result.summary["expect_met"].items() if not ok}  # fmt: skip
    assert not failed, f"{name}: expected vs measured {failed}"
    return result.summary


@pytest.mark.slow
def test_the_bad_init_does_not_train(tmp_path):
    s = run("autoinit-baseline", tmp_path)
    # uniform predictions: measured 2.8279 .. 2.8318 over seeds and kernels (ln 17 = 2.8332)
    assert s["train_loss"] == pytest.approx(math.log(17), abs=0.01)
    assert "autoinit_steps" not in s


@pytest.mark.slow
def test_autoinit_makes_it_train(tmp_path):
    s = run("autoinit", tmp_path)
    assert s["autoinit_converged"] and s["autoinit_max_log_apjn"] <= 0.05  # measured <= 0.046
    assert s["train_acc"] >= 0.95  # measured 1.000 in all 12 runs (chance 0.059)
    assert s["train_loss"] <= 0.1  # measured 6e-6 .. 5e-5 (ln 17 = 2.83 untrained)
