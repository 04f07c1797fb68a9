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


def number(tokens: list[str], reverse: bool) -> int:
    return int("".join(reversed(tokens) if reverse else tokens))


def parse_question(prompt: list[str], reverse: bool) -> tuple[int, int, list[str], list[str]]:
    q = [w for w in prompt if w != "<pause>"]
    star, eq = q.index("*"), q.index("=")
    assert eq == len(q) - 1
    return number(q[:star], reverse), number(q[star + 1 : eq], reverse), q[:star], q[star + 1 : eq]


@pytest.mark.parametrize("fmt", ["plain", "cot", "pause"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_products_match_python(fmt, reverse, seed):
    n, m = 2 + seed % 3, 1 + seed
    task = make_task(
        "multiplication", n_digits=n, m_digits=m, format=fmt, reverse=reverse,
        n_pause=3 if fmt == "pause" else 0, n_train=150, n_test=40, seed=seed,
    )  # fmt: skip
    check_contract(task)
    for split in task.eval_splits:
        for r, value in zip(rows_text(task, split), task.answers(split)):
            a, b, da, db = parse_question(r["prompt"], reverse)
            assert len(da) == n and len(db) == m
            assert len(str(a)) == n and len(str(b)) == m
            assert number(r["answer"], reverse) == a * b == value
            assert len(r["answer"]) == n + m
            pauses = r["prompt"].count("<pause>")
            assert pauses == (3 if fmt == "pause" else 0)
            assert r["prompt"][-pauses - 1 if pauses else -1] == "="
            cot = r["generated"][: -len(r["answer"])]
            if fmt != "cot":
                assert cot == []
                continue
            assert cot[-1] == "####"
            check_cot(cot[:-1], a, b, m, reverse)


def check_cot(cot: list[str], a: int, b: int, m: int, reverse: bool) -> None:
    """``P_0 + P_1 ( S_1 ) + ...``: P_j = a b_j 10^j, S_j the running sum, ends at a * b."""
    terms = " ".join(cot).split(" + ")
    assert len(terms) == m
    running = 0
    for j, term in enumerate(terms):
        words = term.split()
        if j:
            k = words.index("(")
            part, total = words[:k], words[k + 1 : -1]
            assert words[-1] == ")"
        else:
            part, total = words, None
        b_j = int(str(b)[::-1][j])
        assert number(part, reverse) == a * b_j * 10**j
        running += a * b_j * 10**j
        if total is not None:
            assert number(total, reverse) == running
    assert running == a * b


def test_score_and_cot_of_other_length():
    task = make_task("multiplication", n_digits=3, m_digits=2, format="cot", n_train=50, n_test=20)
    check_score(task)
    s = task.split("test")
    pred = s["tokens"].clone()
    marker, eos = task.token_id["####"], task.eos_id
    row = pred[0].tolist()
    p = int(s["prompt_len"][0])
    answer = [t for t, a in zip(row, s["answer_mask"][0].tolist()) if a]
    short = row[:p] + [marker] + answer + [eos]  # no chain of thought at all: still right
    pred[0] = torch.tensor(short + [0] * (len(row) - len(short)))
    assert task.score(pred, "test") == 1.0
    wrong = short[:]
    wrong[p + 1] = task.token_id["9" if task.vocab[wrong[p + 1]] != "9" else "8"]
    pred[0] = torch.tensor(wrong + [0] * (len(row) - len(wrong)))
    assert task.score(pred, "test") == 19 / 20


@pytest.mark.parametrize("fmt", ["plain", "cot"])
def test_fresh_sampling(fmt):
    task = make_task(
        "multiplication", n_digits=2, m_digits=2, format=fmt, fresh=True, n_train=20, n_test=300
    )
    check_sample(task, n=500)
    batch = task.sample(500, torch.Generator().manual_seed(3))
    assert batch["tokens"].shape[1] == task.model_dims()["block_size"]
    # the bound on row length holds and is reached (every product has n + m digits)
    assert int((batch["tokens"] != 0).sum(1).max()) == task.max_example_len() + 2


def test_fixed_sampling_draws_train_rows():
    task = make_task("multiplication", n_digits=2, m_digits=2, n_train=30, n_test=10)
    check_sample(task)
    batch = task.sample(40, torch.Generator().manual_seed(0))
    train = {tuple(r) for r in task.split("train")["tokens"].tolist()}
    assert all(tuple(r) in train for r in batch["tokens"].tolist())


def test_determinism():
    check_determinism(lambda s: make_task("multiplication", n_digits=3, m_digits=3, seed=s,
                                          n_train=100, n_test=20))  # fmt: skip


@pytest.mark.parametrize(
    "params, field",
    [
        ({"n_digits": 0}, "task.n_digits"),
        ({"m_digits": -1}, "task.m_digits"),
        ({"format": "pause"}, "n_pause"),
        ({"n_pause": 2}, "n_pause"),
        ({"n_pause": -1, "format": "pause"}, "task.n_pause"),
        ({"format": "scratch"}, "task.format"),
        ({"n_train": 0}, "task.n_train"),
        ({"n_digits": 1, "m_digits": 1, "n_train": 200}, "task.n_train"),
        ({"bogus": 1}, "task.bogus"),
    ],
)
def test_bad_params(params, field):
    with pytest.raises(UserError, match=field.replace(".", r"\.")):
        make_task("multiplication", **{"n_test": 10, **params})
