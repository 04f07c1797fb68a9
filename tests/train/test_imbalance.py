"""Training under class imbalance: label smoothing, class weights, class-balanced sampling and
the per-class metrics (Shwartz-Ziv et al. 2023)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from learnscope.config import validate_config
from learnscope.errors import UserError
from learnscope.runner import build
from learnscope.tasks import make_task
from learnscope.train.objectives import (
    ClassificationObjective,
    LongTailObjective,
    class_accuracy,
    inverse_frequency,
)
from learnscope.train.sampling import ClassBalancedSampler, class_balanced_weights


def test_class_balanced_sampling_gives_equal_class_counts_in_expectation() -> None:
    y = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)
    w = class_balanced_weights(y)
    per_class = torch.zeros(3).index_add_(0, y, w.double().float())
    assert per_class.tolist() == pytest.approx([1 / 3] * 3)  # exactly, in expectation
    index = ClassBalancedSampler(y).draw(30000, torch.Generator().manual_seed(0))
    counts = torch.bincount(y[index]).double()
    assert (counts / 30000).tolist() == pytest.approx([1 / 3] * 3, abs=0.01)
    assert len(set(index[y[index] == 2].tolist())) == 1  # the only row of class 2


def test_label_smoothing_and_weights_match_their_formulas() -> None:
    torch.manual_seed(0)
    logits, y = torch.randn(6, 3), torch.tensor([0, 0, 0, 0, 1, 2])
    e = 0.2
    target = (1 - e) * F.one_hot(y, 3) + e / 3
    smoothed = ClassificationObjective("ce", e).loss(logits, {"y": y})
    expected = -(target * logits.log_softmax(-1)).sum(-1).mean()
    assert smoothed.item() == pytest.approx(expected.item(), rel=1e-6)
    w = inverse_frequency([4, 1, 1])
    assert w.tolist() == pytest.approx([0.5, 2.0, 2.0])
    weighted = ClassificationObjective("ce", 0.0, w).loss(logits, {"y": y})
    nll = -logits.log_softmax(-1)[torch.arange(6), y]
    assert weighted.item() == pytest.approx(((w[y] * nll).sum() / w[y].sum()).item(), rel=1e-6)
    both = ClassificationObjective("ce", e, w).loss(logits, {"y": y})  # rows weighted by w[y]
    rows = -(target * logits.log_softmax(-1)).sum(-1)
    assert both.item() == pytest.approx(((w[y] * rows).sum() / w[y].sum()).item(), rel=1e-6)
    # the evaluated loss is the plain cross-entropy, whatever the training options
    out = ClassificationObjective("ce", e, w).evaluate(lambda x: logits, {"x": None, "y": y})
    assert out["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)


def test_per_class_balanced_and_minority_accuracy() -> None:
    assert class_accuracy(torch.tensor([0, 0, 2]), torch.tensor([0, 1, 2]), 3).tolist() == [
        1.0,
        0.0,
        1.0,
    ]
    task = make_task("prototypes", n_classes=4, n_per_class=40, noise=0.0, imbalance=4)
    obj = LongTailObjective("ce", 0.0, None, task.split("train").info["class_counts"])
    assert obj.minority.tolist() == [2, 3]

    def majority(x: torch.Tensor) -> torch.Tensor:  # always predicts class 0
        return F.one_hot(torch.zeros(len(x), dtype=torch.long), 4).float()

    m = obj.evaluate_split(majority, task, "test", task.split("test"))
    assert m["acc"] == m["balanced_acc"] == 0.25 and m["minority_acc"] == 0.0
    assert [m[f"class_acc/{c}"] for c in range(4)] == [1.0, 0.0, 0.0, 0.0]


def run_config(**train) -> dict:
    return {
        "task": {"name": "prototypes", "n_classes": 4, "n_per_class": 40, "imbalance": 10},
        "model": {"kind": "mlp", "width": 16},
        "train": {"steps": 20, "eval_every": 10, "batch_size": 8, **train},
        "probes": [],
    }


def test_imbalance_options_need_a_classification_task() -> None:
    cfg = {
        "task": {"name": "pcfg", "n_train": 8, "n_test": 4},
        "model": {"kind": "gpt", "causal": False, "n_layer": 1, "d_model": 8},
        "train": {"steps": 1, "batch_size": 4},
    }
    for train in ({"label_smoothing": 0.1}, {"sampler": "class_balanced"}):
        bad = {**cfg, "train": {**cfg["train"], **train}}
        with pytest.raises(UserError, match="classification"):
            build(validate_config(bad))


def test_trainer_records_per_class_metrics_and_samples_balanced() -> None:
    trainer = build(validate_config(run_config(sampler="class_balanced", label_smoothing=0.1)))
    metrics = trainer.fit()
    assert {"test/balanced_acc", "test/minority_acc", "test/class_acc/3"} <= set(metrics)
    assert isinstance(trainer.sampler, ClassBalancedSampler)


@pytest.mark.parametrize(
    ("train", "match"),
    [
        ({"loss": "mse", "label_smoothing": 0.1}, "label_smoothing"),
        ({"loss": "mse", "reweight": "inverse_frequency"}, "reweight"),
        ({"sampler": "class_balanced", "batch_size": None}, "batch_size"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"sampler": "balanced"}, "sampler"),
    ],
)
def test_bad_options_are_refused(train: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        validate_config(run_config(**train))
