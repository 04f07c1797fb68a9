"""``task.imbalance``: a long-tailed training split for any classification task; and the noisy
prototypes task it is meant for."""

from __future__ import annotations

import pytest
import torch

from learnscope.errors import UserError
from learnscope.tasks import make_task
from learnscope.tasks.base import long_tail


@pytest.mark.parametrize("rho", [1.0, 10.0, 100.0])
def test_long_tail_profile(rho: float) -> None:
    n, classes = 1000, 5
    y = torch.arange(classes).repeat_interleave(n)
    counts = torch.bincount(y[long_tail(y, classes, rho, seed=0)]).tolist()
    assert counts == [round(n * rho ** (-c / (classes - 1))) for c in range(classes)]
    assert counts[0] / counts[-1] == pytest.approx(rho)


def test_long_tail_is_seeded_and_keeps_a_row_of_every_class() -> None:
    y = torch.arange(3).repeat_interleave(4)
    assert torch.equal(long_tail(y, 3, 1e6, seed=1), long_tail(y, 3, 1e6, seed=1))
    assert torch.bincount(y[long_tail(y, 3, 1e6, seed=1)]).tolist() == [4, 1, 1]


def test_imbalanced_task_keeps_the_test_split_and_records_counts() -> None:
    plain = make_task("prototypes", n_classes=4, n_per_class=50, n_test_per_class=20)
    tail = make_task("prototypes", n_classes=4, n_per_class=50, n_test_per_class=20, imbalance=8)
    assert torch.equal(plain.split("test")["x"], tail.split("test")["x"])  # balanced test
    counts = tail.split("train").info["class_counts"]
    assert counts == [50, 25, 12, 6] and len(tail.split("train")) == sum(counts)
    assert "class_counts" not in plain.split("train").info
    train = {tuple(r) for r in plain.split("train")["x"].tolist()}
    assert {tuple(r) for r in tail.split("train")["x"].tolist()} <= train  # a subset
    modular = make_task("modular", p=7, train_fraction=0.8, imbalance=5)
    assert len(modular.split("train").info["class_counts"]) == 7


def test_bad_imbalance_is_refused() -> None:
    with pytest.raises(UserError, match="imbalance"):
        make_task("prototypes", imbalance=0.5)
    with pytest.raises(UserError, match="imbalance"):
        make_task("modular", p=7, noise=0.1, imbalance=2)
    with pytest.raises(UserError, match="imbalance"):
        make_task("pcfg", imbalance=2)  # not a classification task


def test_prototypes_bayes_accuracy_closed_forms() -> None:
    clean = make_task("prototypes", n_classes=5, noise=0.0)
    assert clean.bayes_accuracy("test") == 1.0
    pure = make_task("prototypes", n_classes=5, noise=1.0, n_test_per_class=2000)
    assert pure.bayes_accuracy("test") == pytest.approx(1 / 5, abs=0.02)  # chance
    x, y = clean.split("train")["x"], clean.split("train")["y"]
    assert torch.equal(x, clean.prototypes[y]) and clean.model_dims()["n_out"] == 5
