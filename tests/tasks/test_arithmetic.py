from __future__ import annotations

import re
from fractions import Fraction

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


def evaluate(words: list[str], p: int) -> int:
    """The expression's value mod p, by Python's own parser over exact fractions."""
    text = re.sub(r"(\d+)", r"Fraction(\1)", " ".join(words))
    r = eval(text, {"Fraction": Fraction})  # noqa: S307 - our own generated text
    return r.numerator * pow(r.denominator, -1, p) % p


@pytest.mark.parametrize("fmt", ["plain", "cot"])
@pytest.mark.parametrize(
    "p, n_ops, ops, seed",
    [
        (7, 1, ["+", "-", "*", "/"], 0),
        (11, 3, ["+", "-", "*", "/"], 1),
        (13, 5, ["-", "/"], 2),
        (10, 4, ["+", "-", "*"], 3),  # no division: any modulus
        (5, 7, ["+", "-", "*", "/"], 4),
    ],
)
def test_values_match_python_eval(fmt, p, n_ops, ops, seed):
    task = make_task("arithmetic", p=p, n_ops=n_ops, ops=ops, format=fmt, n_train=150,
                     n_test=30, seed=seed)  # fmt: skip
    check_contract(task)
    used = set()
    for split in task.eval_splits:
        for r, value in zip(rows_text(task, split), task.answers(split)):
            q = r["prompt"]
            assert q[-1] == "="
            ops_in = [w for w in q if w in "+-*/"]
            assert len(ops_in) == n_ops and set(ops_in) <= set(ops)
            used |= set(ops_in)
            v = evaluate(q[:-1], p)
            assert r["answer"] == [str(v)] and value == v
            if fmt == "plain" or n_ops == 1:
                assert r["generated"] == r["answer"]
                continue
            steps = " ".join(r["generated"][:-1]).split(" = ")
            steps[-1] = steps[-1].removesuffix(" =")
            assert r["generated"][-2] == "="
            assert len(steps) == n_ops - 1
            for k, step in enumerate(steps):  # one operator fewer each step, same value
                words = step.split()
                assert sum(w in "+-*/" for w in words) == n_ops - 1 - k
                assert evaluate(words, p) == v
    assert used == set(ops)


def test_score_with_shorter_cot():
    task = make_task("arithmetic", p=11, n_ops=4, format="cot", n_train=100, n_test=50)
    check_score(task)
    s = task.split("test")
    pred = s["tokens"].clone()
    p = int(s["prompt_len"][0])
    answer = int(pred[0][s["answer_mask"][0]][0])
    row = [*pred[0, :p].tolist(), answer, task.eos_id]  # the value straight after the question
    pred[0] = torch.tensor(row + [0] * (pred.shape[1] - len(row)))
    assert task.score(pred, "test") == 1.0


def test_fresh_bound_and_determinism():
    task = make_task("arithmetic", p=11, n_ops=5, format="cot", fresh=True, n_train=10)
    check_sample(task, 300)
    batch = task.sample(300, torch.Generator().manual_seed(0))
    assert int((batch["tokens"] != 0).sum(1).max()) <= task.max_example_len() + 2
    check_determinism(lambda s: make_task("arithmetic", n_ops=3, n_train=100, seed=s))


@pytest.mark.parametrize(
    "params, field",
    [
        ({"n_ops": 0}, "task.n_ops"),
        ({"p": 1}, "task.p"),
        ({"p": 10}, "'/' needs a prime p"),
        ({"ops": ["^"]}, "task.ops"),
        ({"ops": []}, "task.ops"),
        ({"ops": ["+", "+"]}, "distinct"),
        ({"p": 2, "n_ops": 1, "ops": ["+"], "n_train": 10, "n_test": 2}, "task.n_train"),
    ],
)
def test_bad_params(params, field):
    with pytest.raises(UserError, match=field.replace(".", r"\.")):
        make_task("arithmetic", **params)
