"""task.label_noise (every classification task) and task.keep_rows (training on a subset)."""

from __future__ import annotations

import pytest
import torch

from learnscope.errors import UserError
from learnscope.tasks import TASKS, make_task
from learnscope.tasks.base import ClassificationParams, flip_labels

PROTO = {"n_classes": 5, "length": 6, "vocab": 4, "n_per_class": 20, "n_test_per_class": 10}


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.2, 0.37, 0.9])
def test_flip_labels_flips_exactly_round_f_n_to_another_class(fraction):
    y = torch.arange(7).repeat(13)  # 91 rows, 7 classes
    noisy, rows = flip_labels(y, 7, fraction, seed=3)
    assert len(rows) == round(fraction * 91)
    assert int((noisy != y).sum()) == round(fraction * 91)  # each flipped label is wrong
    assert (noisy[rows] != y[rows]).all()
    assert torch.equal(rows, rows.sort().values) and len(rows.unique()) == len(rows)
    assert noisy.min() >= 0 and noisy.max() < 7


def test_flip_labels_reaches_every_other_class():
    y = torch.zeros(3000, dtype=torch.long)
    noisy, rows = flip_labels(y, 4, 0.5, seed=0)
    counts = torch.bincount(noisy[rows], minlength=4).tolist()
    assert counts[0] == 0 and all(400 < c < 600 for c in counts[1:])


def test_prototypes_label_noise_keeps_the_test_split_clean():
    clean = make_task("prototypes", seed=4, **PROTO)
    noisy = make_task("prototypes", seed=4, label_noise=0.2, **PROTO)
    y, y0 = noisy.split("train")["y"], clean.split("train")["y"]
    assert int((y != y0).sum()) == round(0.2 * 100) == len(noisy.flipped)
    assert torch.equal((y != y0).nonzero()[:, 0], noisy.flipped)
    assert torch.equal(noisy.split("test")["y"], clean.split("test")["y"])
    assert torch.equal(noisy.split("train")["x"], clean.split("train")["x"])
    flipped = noisy.split("train_noisy")
    assert torch.equal(flipped["y_true"], y0[noisy.flipped])
    assert torch.equal(flipped["y"], y[noisy.flipped])
    assert len(clean.flipped) == 0 and "train_noisy" not in clean.splits


def test_label_noise_is_seeded():
    a = make_task("prototypes", seed=1, label_noise=0.3, **PROTO)
    b = make_task("prototypes", seed=1, label_noise=0.3, **PROTO)
    c = make_task("prototypes", seed=2, label_noise=0.3, **PROTO)
    assert torch.equal(a.flipped, b.flipped) and not torch.equal(a.flipped, c.flipped)


def test_every_classification_task_takes_label_noise():
    takes = [n for n, cls in TASKS.items() if issubclass(cls.Params, ClassificationParams)]
    assert {"modular", "prototypes"} <= set(takes)
    task = make_task("modular", p=11, train_fraction=0.5, label_noise=0.25)
    n = len(task.split("train"))
    assert len(task.flipped) == round(0.25 * n)


def test_label_noise_refused_on_a_sequence_task():
    with pytest.raises(UserError, match="task.label_noise"):
        make_task("modular_seq", p=7, label_noise=0.1)
    with pytest.raises(UserError, match="label_noise"):
        make_task("prototypes", label_noise=1.0, **PROTO)


def test_keep_rows_trains_on_a_subset_and_follows_the_flipped_rows(tmp_path):
    full = make_task("prototypes", seed=5, label_noise=0.2, **PROTO)
    keep = torch.tensor([0, 3, 5, 6, 10, 40, 41, 77, 99] + full.flipped[:4].tolist())
    path = tmp_path / "keep.pt"
    torch.save(keep, path)
    task = make_task("prototypes", seed=5, label_noise=0.2, keep_rows=str(path), **PROTO)
    kept = keep.unique()
    assert torch.equal(task.kept, kept)
    assert torch.equal(task.split("train")["x"], full.split("train")["x"][kept])
    assert torch.equal(task.split("train")["y"], full.split("train")["y"][kept])
    assert torch.equal(kept[task.flipped], kept[torch.isin(kept, full.flipped)])
    assert len(task.split("train_noisy")) == int(torch.isin(kept, full.flipped).sum())
    assert torch.equal(task.split("test")["y"], full.split("test")["y"])


def test_keep_rows_mistakes_are_user_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    with pytest.raises(UserError, match="task.keep_rows"):
        make_task("prototypes", keep_rows=str(tmp_path / "missing.pt"), **PROTO)
    torch.save(torch.tensor([0.5, 1.0]), bad)
    with pytest.raises(UserError, match="int64"):
        make_task("prototypes", keep_rows=str(bad), **PROTO)
    torch.save(torch.tensor([0, 100]), bad)  # 100 training rows: 0..99
    with pytest.raises(UserError, match=r"0\.\.99"):
        make_task("prototypes", keep_rows=str(bad), **PROTO)
    bad.write_text("not a tensor")
    with pytest.raises(UserError, match="task.keep_rows"):
        make_task("prototypes", keep_rows=str(bad), **PROTO)
