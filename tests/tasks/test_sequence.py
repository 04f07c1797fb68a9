"""The shared machinery of ``tasks/sequence.py``, and every sequence family at its defaults."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learnscope.tasks import TASKS, make_task
from learnscope.tasks.sequence import SequenceTask, digits, draw_numbers, undigits
from tests.tasks.seqcheck import check_contract, check_sample, check_score

FAMILIES = sorted(n for n, cls in TASKS.items() if issubclass(cls, SequenceTask))


def test_all_families_registered():
    assert set(FAMILIES) >= {
        "multiplication", "addition", "parity", "arithmetic", "lis", "pvr", "relational",
        "icl_modular",
    }  # fmt: skip


@pytest.mark.parametrize("name", FAMILIES)
def test_defaults_follow_the_contract(name):
    task = make_task(name, n_train=60, n_test=20)
    assert task.kind == "sequence"
    check_contract(task, targets_in_prompt=name == "icl_modular")
    check_score(task)
    check_sample(task, 16)
    assert len(task.answers("test")) == 20
    # the declared bound holds for every row of the training distribution
    bound = task.max_example_len() + 2 + task.params.n_pause
    assert int((task.split("train")["tokens"] != 0).sum(1).max()) <= bound


def test_digits_and_numbers():
    assert digits(7, 3) == ["0", "0", "7"] and undigits(digits(907, 5, True), True) == 907
    with pytest.raises(ValueError):
        digits(1234, 3)
    rng = np.random.default_rng(0)
    big = draw_numbers(rng, 200, 30)  # beyond int64
    assert all(len(str(x)) == 30 for x in big)
    assert {len(str(x)) for x in draw_numbers(rng, 200, 1)} == {1} and 0 in draw_numbers(
        rng, 200, 1
    )


def test_encode_decode_and_score_shapes():
    task = make_task("addition", lo=1, hi=2, test_lengths=[3], n_train=20, n_test=10)
    ids = task.encode(["<bos>", "1", "+", "2", "=", "3", "<eos>"])
    assert task.decode(ids + [task.pad_id] * 3) == "<bos> 1 + 2 = 3 <eos>"
    assert task.decode(torch.tensor(ids)) == "<bos> 1 + 2 = 3 <eos>"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        task.encode(["x"])
    with pytest.raises(ValueError, match="predictions"):
        task.score(task.split("test")["tokens"][:, :-1], "test")
