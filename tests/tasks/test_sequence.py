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


DOC_ROWS = [  # (task, params, split): its first row is quoted in docs/tasks.md
    ("multiplication", {"n_digits": 3, "m_digits": 3}, "train"),
    ("multiplication", {"n_digits": 3, "m_digits": 3, "reverse": True}, "train"),
    ("multiplication", {"n_digits": 3, "m_digits": 3, "format": "pause", "n_pause": 2}, "train"),
    ("multiplication", {"n_digits": 3, "m_digits": 3, "format": "cot"}, "train"),
    ("addition", {"lo": 1, "hi": 5, "test_lengths": [8]}, "test_len_8"),
    ("addition", {"lo": 1, "hi": 5, "test_lengths": [8], "reverse": True}, "train"),
    ("addition", {"lo": 1, "hi": 5, "test_lengths": [8], "index_hints": True}, "test"),
    ("parity", {"lo": 2, "hi": 8, "test_lengths": [12], "scratchpad": True}, "test_len_12"),
    ("arithmetic", {"p": 11, "n_ops": 3, "format": "cot"}, "train"),
    ("lis", {"n": 8, "values": 10, "format": "cot"}, "train"),
    ("pvr", {"n": 8, "max_hops": 3, "test_hops": [5], "format": "cot"}, "test_hops_5"),
    ("relational", {}, "test"),
    ("icl_modular", {"p": 7, "n_shots": 4, "n_tasks": 10}, "test_unseen_tasks"),
]


@pytest.mark.parametrize("name, params, split", DOC_ROWS)
def test_docs_quote_real_rows(name, params, split):
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "tasks.md").read_text()
    task = make_task(name, n_train=20, n_test=5, **params)
    assert task.decode(task.split(split)["tokens"][0]) in docs
