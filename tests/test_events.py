from __future__ import annotations

import numpy as np
import pandas as pd

from learnscope.events import detect, grokking


def series(train, test, every=10):
    steps = np.arange(len(train)) * every
    return pd.DataFrame({"train/acc": train, "test/acc": test}, index=steps)


def test_grokking_found_with_gap():
    n = 100
    train = np.minimum(1.0, np.arange(n) / 10)  # fits at index 10 (step 100)
    test = np.where(np.arange(n) >= 60, 1.0, 0.05)  # generalises at step 600
    e = grokking(series(train, test))
    assert e.data["train_step"] == 100 and e.data["test_step"] == 600
    assert e.data["gap"] == 500 and e.data["ratio"] == 6.0 and e.step == 600


def test_memorisation_only_has_no_test_step():
    e = grokking(series(np.ones(50), np.full(50, 0.3)))
    assert e.data["train_step"] == 0 and e.data["test_step"] is None and e.data["gap"] is None


def test_no_event_when_training_set_never_fitted():
    assert grokking(series(np.full(50, 0.9), np.full(50, 0.9))) is None
    assert detect(series(np.full(50, 0.9), np.full(50, 0.9))) == []


def test_threshold_respected_and_nan_ignored():
    train = np.array([0.2, np.nan, 0.96, 0.97, 1.0])
    test = np.array([0.0, 0.0, 0.5, 0.96, 0.96])
    e = grokking(series(train, test), threshold=0.95)
    assert e.data["train_step"] == 20 and e.data["test_step"] == 30
