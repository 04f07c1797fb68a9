from __future__ import annotations

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


def parse(prompt: list[str], answer: list[str], hints: bool, reverse: bool):
    """Operands, sum and hint lists read back from the tokens."""
    plus, eq = prompt.index("+"), prompt.index("=")
    a, b = prompt[:plus], prompt[plus + 1 : eq]
    if not hints:
        return int("".join(a)), int("".join(b)), int("".join(answer[::-1] if reverse else answer))
    a_h, a_d, b_h, b_d = a[0::2], a[1::2], b[0::2], b[1::2]
    s_h, s_d = answer[0::2], answer[1::2]
    if reverse:
        s_h, s_d = s_h[::-1], s_d[::-1]
    # every digit's hint names its column: consecutive, the same in both operands and the sum
    assert a_h == b_h == s_h
    first = int(a_h[0][1:])
    assert a_h == [f"h{first + k}" for k in range(len(a_h))]
    assert len(a_d) == len(b_d) == len(s_d) and a_d[0] == b_d[0] == "0"
    return int("".join(a_d)), int("".join(b_d)), int("".join(s_d))


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("hints", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_sums_match_python_and_lengths(reverse, hints, seed):
    lo, hi, tests = 1 + seed, 3 + seed, [5 + seed, 8 + seed]
    task = make_task(
        "addition", lo=lo, hi=hi, test_lengths=tests, reverse=reverse, index_hints=hints,
        n_train=200, n_test=30, seed=seed,
    )  # fmt: skip
    check_contract(task)
    assert task.eval_splits == ["train", "test", *(f"test_len_{n}" for n in tests)]
    for split in task.eval_splits:
        lengths = set()
        for r, value in zip(rows_text(task, split), task.answers(split)):
            a, b, total = parse(r["prompt"], r["answer"], hints, reverse)
            assert a + b == total == value
            assert len(str(a)) == len(str(b))  # both operands have L digits
            lengths.add(len(str(a)))
            assert r["generated"] == r["answer"]
        if split.startswith("test_len_"):
            assert lengths == {int(split.removeprefix("test_len_"))}
        else:
            assert lengths == set(range(lo, hi + 1))  # every training length is drawn


def test_hints_cover_all_tokens_in_training():
    task = make_task("addition", lo=2, hi=4, test_lengths=[9], index_hints=True, n_train=500)
    seen = {w for r in rows_text(task, "train") for w in r["prompt"] if w.startswith("h")}
    assert seen == {f"h{i}" for i in range(10)}


@pytest.mark.parametrize("hints", [False, True])
def test_score(hints):
    task = make_task("addition", lo=2, hi=4, test_lengths=[6], index_hints=hints, n_train=50)
    check_score(task)
    check_score(task, "test_len_6")
    check_determinism(lambda s: make_task("addition", lo=2, hi=4, test_lengths=[6],
                                          index_hints=hints, seed=s))  # fmt: skip


def test_short_answer_scores_wrong():
    """A sum generated one digit short (eos early) is wrong even if its digits match."""
    task = make_task("addition", lo=3, hi=3, test_lengths=[4], n_train=50, n_test=20)
    s = task.split("test")
    pred = s["tokens"].clone()
    end = int((pred[0] == task.eos_id).nonzero()[0])
    pred[0, end - 1] = task.eos_id
    assert task.score(pred, "test") == 19 / 20


@pytest.mark.parametrize("hints", [False, True])
def test_fresh(hints):
    task = make_task("addition", lo=1, hi=5, test_lengths=[7], index_hints=hints, fresh=True,
                     n_train=10, n_test=200)  # fmt: skip
    check_sample(task, n=400)
    batch = task.sample(400, torch.Generator().manual_seed(1))
    longest = int((batch["tokens"] != 0).sum(1).max())
    assert longest <= task.max_example_len() + 2 <= task.model_dims()["block_size"]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"lo": 0}, "task.lo"),
        ({"lo": 5, "hi": 3}, "lo must be <= hi"),
        ({"hi": 5, "test_lengths": [5]}, "test_lengths must all be > hi"),
        ({"hi": 5, "test_lengths": [7, 7]}, "distinct"),
        ({"lo": 1, "hi": 1, "test_lengths": [3], "n_test": 50, "n_train": 60}, "task.n_train"),
        ({"n_test": 0}, "task.n_test"),
    ],
)
def test_bad_params(params, field):
    with pytest.raises(UserError, match=field.replace(".", r"\.")):
        make_task("addition", **params)
