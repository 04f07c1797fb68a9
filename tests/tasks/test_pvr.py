from __future__ import annotations

import pytest

from learnscope.errors import UserError
from learnscope.tasks import make_task
from tests.tasks.seqcheck import (
    check_contract,
    check_determinism,
    check_sample,
    check_score,
    rows_text,
)


def follow(x: list[int], hops: int) -> list[int]:
    """The positions visited: start at x[0], then move to the value found, ``hops`` times."""
    at, seen = x[0], []
    for _ in range(hops):
        at = x[at]
        seen.append(at)
    return seen


@pytest.mark.parametrize("fmt", ["plain", "cot"])
@pytest.mark.parametrize("seed", range(3))
def test_pointer_chains_and_hops(fmt, seed):
    n, K, tests = 6 + seed, 1 + seed, [4 + seed, 6 + seed]
    task = make_task("pvr", n=n, max_hops=K, test_hops=tests, format=fmt, n_train=200,
                     n_test=40, n_pause=1, seed=seed)  # fmt: skip
    check_contract(task)
    assert task.eval_splits == ["train", "test", *(f"test_hops_{k}" for k in tests)]
    for split in task.eval_splits:
        hop_counts = set()
        for r, value in zip(rows_text(task, split), task.answers(split)):
            q = r["prompt"]
            assert q[-2:] == ["=", "<pause>"]
            hops = q.index(":")
            assert q[:hops] == [">"] * hops
            x = [int(w) for w in q[hops + 1 : -2]]
            assert len(x) == n
            chain = follow(x, hops)
            assert r["answer"] == [str(chain[-1])] and value == chain[-1]
            if fmt == "cot":
                assert r["generated"][:-1] == [*map(str, chain[:-1]), "####"]
            hop_counts.add(hops)
        if split.startswith("test_hops_"):
            assert hop_counts == {int(split.removeprefix("test_hops_"))}
        else:
            assert hop_counts == set(range(1, K + 1))


def test_a_hop_count_within_training_has_its_own_split():
    """``test_hops`` at or below ``max_hops``: exactly that many hops (per-hop accuracy)."""
    task = make_task("pvr", n=8, max_hops=3, test_hops=[1, 3, 5], n_train=10, n_test=30)
    assert task.eval_splits == ["train", "test", "test_hops_1", "test_hops_3", "test_hops_5"]
    for k in (1, 3, 5):
        hops = {r["prompt"].index(":") for r in rows_text(task, f"test_hops_{k}")}
        assert hops == {k}


def test_score_fresh_determinism():
    task = make_task("pvr", n=8, max_hops=3, test_hops=[5], format="cot", n_train=100)
    check_score(task)
    check_score(task, "test_hops_5")
    check_sample(make_task("pvr", n=8, max_hops=3, fresh=True, n_train=10), 200)
    check_determinism(lambda s: make_task("pvr", n=8, n_train=100, seed=s))


@pytest.mark.parametrize(
    "params, field",
    [
        ({"n": 1}, "task.n"),
        ({"max_hops": 0}, "task.max_hops"),
        ({"n": 4, "max_hops": 5, "test_hops": [6]}, "max_hops must be <= n"),
        ({"n": 6, "max_hops": 2, "test_hops": [7]}, "test_hops must be in 1..n=6"),
        ({"max_hops": 3, "test_hops": [0]}, "test_hops must be in 1..n=10"),
        ({"n_pause": -1}, "task.n_pause"),
    ],
)
def test_bad_params(params, field):
    with pytest.raises(UserError, match=field.replace(".", r"\.")):
        make_task("pvr", **params)
