"""The ``sequence`` task: variants of a base task (permuted inputs, new label maps) or a list."""

from __future__ import annotations

import pytest
import torch

from learnscope.errors import UserError
from learnscope.tasks import make_task

BASE = {"name": "prototypes", "n_classes": 4, "length": 6, "vocab": 5, "noise": 0.0,
        "n_per_class": 3, "n_test_per_class": 2}  # fmt: skip


def test_permute_is_a_fixed_relabelling_of_positions_and_values():
    seq = make_task("sequence", base=BASE, n_tasks=3, permute=True, seed=2)
    x0, x1 = seq.split("task0/train")["x"], seq.split("task1/train")["x"]
    assert torch.equal(seq.split("task0/train")["y"], seq.split("task1/train")["y"])
    assert not torch.equal(x0, x1)
    # one map (position j of task 1 reads position pi(j) of task 0 through a bijection of
    # values) sends every row of task 0 to the same row of task 1
    found = []
    for j in range(6):
        cands = [i for i in range(6) if len({(a, b) for a, b in zip(x0[:, i].tolist(),
                                                                    x1[:, j].tolist())})
                 == len(set(x0[:, i].tolist()))]  # fmt: skip
        assert cands
        found.append(cands)
    # the same seed draws the same sequence; another seed another one
    again = make_task("sequence", base=BASE, n_tasks=3, permute=True, seed=2)
    assert torch.equal(again.split("task1/test")["x"], seq.split("task1/test")["x"])
    other = make_task("sequence", base=BASE, n_tasks=3, permute=True, seed=3)
    assert not torch.equal(other.split("task1/test")["x"], seq.split("task1/test")["x"])


def test_relabel_permutes_the_labels_only():
    seq = make_task("sequence", base=BASE, n_tasks=2, relabel=True, seed=1)
    a, b = seq.split("task0/test"), seq.split("task1/test")
    assert torch.equal(a["x"], b["x"])
    pairs = set(zip(a["y"].tolist(), b["y"].tolist()))
    assert len(pairs) == 4 and len({p[1] for p in pairs}) == 4  # a bijection of 4 classes


def test_a_list_of_tasks_and_the_active_task():
    seq = make_task("sequence", tasks=[{"name": "modular", "op": "add", "p": 7},
                                       {"name": "modular", "op": "sub", "p": 7}],
                    steps_per_task=3)  # fmt: skip
    assert seq.n_tasks == 2 and seq.eval_splits == ["train", "task0/test", "task1/test"]
    assert [seq.active_task(s) for s in range(8)] == [0, 0, 0, 1, 1, 1, 1, 1]
    assert torch.equal(seq.split("train")["x"], seq.split("task0/train")["x"])


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({}, "tasks"),
        ({"base": BASE, "tasks": [BASE]}, "tasks"),
        ({"tasks": [BASE], "n_tasks": 3}, "n_tasks"),
        ({"base": {"name": "sequence"}}, "sequence"),
        ({"tasks": [{"name": "modular", "p": 7}, {"name": "modular", "p": 5}]}, "same"),
        ({"base": {"name": "nope"}}, "task.base"),
        ({"base": {"name": "addition"}}, "classification"),
    ],
)
def test_bad_sequences_are_refused(params, match):
    with pytest.raises(UserError, match=match):
        make_task("sequence", **params)
