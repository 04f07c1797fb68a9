from __future__ import annotations

import functools
import operator

import pytest
import torch

from learnscope.errors import UserError
from learnscope.tasks import make_task
from tests.tasks.seqcheck import (
    check_contract,
    check_determinism,
    check_sample,
    check_score,
    rows_text,
)


@pytest.mark.parametrize("scratchpad", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_parities_and_lengths(scratchpad, seed):
    lo, hi, tests = 2 + seed, 9, [12, 15 + seed]
    task = make_task("parity", lo=lo, hi=hi, test_lengths=tests, scratchpad=scratchpad,
                     n_train=300, n_test=40, seed=seed)  # fmt: skip
    check_contract(task)
    for split in task.eval_splits:
        lengths = set()
        for r, value in zip(rows_text(task, split), task.answers(split)):
            assert r["prompt"][-1] == "="
            bits = [int(w) for w in r["prompt"][:-1]]
            lengths.add(len(bits))
            parity = functools.reduce(operator.xor, bits)
            assert r["answer"] == [str(parity)] and value == parity
            if scratchpad:
                cot = r["generated"][:-1]
                assert cot[-1] == "####"
                assert [int(w) for w in cot[:-1]] == [sum(bits[: i + 1]) % 2 for i in
                                                      range(len(bits))]  # fmt: skip
            else:
                assert r["generated"] == r["answer"]
        if split.startswith("test_len_"):
            assert lengths == {int(split.removeprefix("test_len_"))}
        else:
            assert lengths <= set(range(lo, hi + 1))


def test_score_with_scratchpad_of_another_length():
    task = make_task("parity", lo=4, hi=6, test_lengths=[8], scratchpad=True, n_train=50, n_test=40)
    check_score(task)
    check_score(task, "test_len_8")
    s = task.split("test")
    pred = s["tokens"].clone()
    p = int(s["prompt_len"][0])
    answer = int(pred[0][s["answer_mask"][0]][0])
    row = [*pred[0, :p].tolist(), task.token_id["####"], answer, task.eos_id]
    pred[0] = torch.tensor(row + [0] * (pred.shape[1] - len(row)))
    assert task.score(pred, "test") == 1.0
    row[-2] = task.token_id["1"] if task.vocab[answer] == "0" else task.token_id["0"]
    pred[0] = torch.tensor(row + [0] * (pred.shape[1] - len(row)))
    assert task.score(pred, "test") == (len(pred) - 1) / len(pred)


def test_fresh_and_determinism():
    task = make_task("parity", lo=3, hi=12, test_lengths=[16], fresh=True, scratchpad=True,
                     n_train=10, n_test=100)  # fmt: skip
    check_sample(task, n=300)
    check_determinism(lambda s: make_task("parity", lo=3, hi=8, n_train=100, seed=s))


@pytest.mark.parametrize(
    "params, field",
    [
        ({"lo": 0}, "task.lo"),
        ({"lo": 4, "hi": 3}, "lo must be <= hi"),
        ({"hi": 8, "test_lengths": [4]}, "test_lengths must all be > hi"),
        ({"lo": 1, "hi": 3, "n_train": 100, "n_test": 10}, "task.n_train"),
        ({"scratchpad": "maybe"}, "task.scratchpad"),
    ],
)
def test_bad_params(params, field):
    with pytest.raises(UserError, match=field.replace(".", r"\.")):
        make_task("parity", **params)
