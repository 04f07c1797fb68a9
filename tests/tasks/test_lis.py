from __future__ import annotations

import bisect
import itertools

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


def lis_subsets(x: list[int]) -> int:
    """Brute force: the largest subset of positions whose values strictly increase."""
    for k in range(len(x), 0, -1):
        for idx in itertools.combinations(range(len(x)), k):
            if all(x[a] < x[b] for a, b in zip(idx, idx[1:])):
                return k
    return 0


def lis_patience(x: list[int]) -> int:
    """Patience sorting, O(n log n): pile tops kept sorted, strict increase via bisect_left."""
    tops: list[int] = []
    for v in x:
        i = bisect.bisect_left(tops, v)
        tops[i : i + 1] = [v]
    return len(tops)


@pytest.mark.parametrize("fmt", ["plain", "cot"])
@pytest.mark.parametrize("seed", range(3))
def test_lis_against_two_solvers(fmt, seed):
    n, values = 5 + 2 * seed, 4 + 3 * seed
    task = make_task("lis", n=n, values=values, format=fmt, n_train=200, n_test=40, seed=seed)
    check_contract(task)
    lengths = set()
    for split in task.eval_splits:
        for r, value in zip(rows_text(task, split), task.answers(split)):
            assert r["prompt"][-1] == "="
            x = [int(w) for w in r["prompt"][:-1]]
            assert len(x) == n and all(0 <= v < values for v in x)
            expected = lis_patience(x)
            if n <= 9:
                assert lis_subsets(x) == expected
            assert r["answer"] == [str(expected)] and value == expected
            lengths.add(expected)
            if fmt == "cot":
                cot = r["generated"][:-1]
                assert cot[-1] == "####"
                # dp_i is the LIS of the prefix ending at (and including) x_i
                dp = [lis_patience([v for v in x[:i] if v < x[i]]) + 1 for i in range(n)]
                assert [int(w) for w in cot[:-1]] == dp
            else:
                assert r["generated"] == r["answer"]
    assert len(lengths) > 2  # answers vary


def test_score_and_fresh():
    task = make_task("lis", n=7, values=10, format="cot", n_train=100, n_test=50)
    check_score(task)
    s = task.split("test")
    pred = s["tokens"].clone()
    p = int(s["prompt_len"][3])
    row = [*pred[3, :p].tolist(), task.token_id["####"], int(pred[3][s["answer_mask"][3]][0])]
    row.append(task.eos_id)
    pred[3] = torch.tensor(row + [0] * (pred.shape[1] - len(row)))
    assert task.score(pred, "test") == 1.0
    fresh = make_task("lis", n=7, values=10, fresh=True, n_train=10)
    check_sample(fresh, 200)
    check_determinism(lambda s: make_task("lis", n=6, values=5, n_train=100, seed=s))


@pytest.mark.parametrize(
    "params, field",
    [
        ({"n": 0}, "task.n"),
        ({"values": 0}, "task.values"),
        ({"format": "table"}, "task.format"),
        ({"n": 2, "values": 3, "n_train": 50, "n_test": 5}, "task.n_train"),
        ({"n_pause": -2}, "task.n_pause"),
    ],
)
def test_bad_params(params, field):
    with pytest.raises(UserError, match=field.replace(".", r"\.")):
        make_task("lis", **params)
