"""The per-class accuracy panel (class imbalance): which columns it reads, and its figure."""

from __future__ import annotations

import pandas as pd
import pytest

from learnscope.report import plots


def run(values: dict[str, list[float]]) -> plots.Series:
    return plots.Series("r", "r", "tab:blue", pd.DataFrame(values, index=[0, 10]))


def test_class_accuracies_reads_the_last_test_values_only() -> None:
    s = run(
        {
            "test/class_acc/0": [0.1, 0.9],
            "test/class_acc/1": [0.0, 0.2],
            "train/class_acc/0": [0.5, 1.0],
            "test/acc": [0.0, 0.55],
        }
    )
    assert plots.class_accuracies(s).to_dict() == {0: 0.9, 1: 0.2}
    assert plots.class_accuracies(run({"test/acc": [0.1, 0.2]})) is None


def test_per_class_figure_pools_seeds_and_skips_runs_without_classes() -> None:
    a = run({"test/class_acc/0": [0.1, 0.9], "test/class_acc/1": [0.0, 0.2]})
    b = run({"test/class_acc/0": [0.1, 0.7], "test/class_acc/1": [0.0, 0.4]})
    fig = plots.per_class_accuracy([("two seeds", "tab:blue", [a, b])])
    line = fig.axes[0].lines[0]
    assert list(line.get_ydata()) == pytest.approx([0.8, 0.3])  # the mean over the seeds
    assert plots.per_class_accuracy([("none", "tab:red", [run({"test/acc": [0, 1]})])]) is None
