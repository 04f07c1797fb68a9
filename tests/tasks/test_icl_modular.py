from __future__ import annotations

import itertools

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


def consistent_tasks(triples: list[tuple[int, int, int]], p: int) -> list[tuple[int, int]]:
    """Brute force over all p^2 tasks: those that agree with every triple."""
    return [
        (a, b)
        for a, b in itertools.product(range(p), repeat=2)
        if all((a * x + b * y) % p == z for x, y, z in triples)
    ]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("context", [True, False])
def test_z_values_tasks_and_pairs(seed, context):
    p, k = 7, 6
    task = make_task("icl_modular", p=p, n_shots=k, n_tasks=10, pair_fraction=0.5,
                     loss_on_context=context, n_train=300, n_test=60, seed=seed)  # fmt: skip
    check_contract(task, targets_in_prompt=context)
    seen, unseen = set(task.seen_tasks), set(task.unseen_tasks)
    assert len(seen) == 10 and len(seen | unseen) == p * p and not seen & unseen
    train_pairs, test_pairs = set(task.train_pairs), set(task.test_pairs)
    assert not train_pairs & test_pairs and len(train_pairs | test_pairs) == p * p
    assert abs(len(train_pairs) - 0.5 * p * p) <= 1
    for split in task.eval_splits:
        s = task.split(split)
        for r, value, mask in zip(rows_text(task, split), task.answers(split), s["loss_mask"]):
            nums = [int(w) for w in r["prompt"]] + [int(r["answer"][0])]
            assert len(nums) == 3 * k and value == nums[-1]
            triples = [tuple(nums[i : i + 3]) for i in range(0, 3 * k, 3)]
            pairs = {(x, y) for x, y, _ in triples}
            assert len(pairs) == k  # distinct pairs within a row
            fits = consistent_tasks(triples, p)
            assert fits  # some task (a, b) produced every z of the row
            if split == "test_unseen_tasks":
                assert not set(fits) & seen if len(fits) == 1 else set(fits) & unseen
            else:
                assert set(fits) & seen
                assert pairs <= (train_pairs if split == "train" else test_pairs)
            # the loss: every z (positions 3i + 3 after <bos>) with context, else the last z
            z_pos = [3 * i + 3 for i in range(k)] if context else [3 * k]
            assert mask.nonzero().flatten().tolist() == [*z_pos, 3 * k + 1]


def test_score_sample_determinism():
    task = make_task("icl_modular", p=11, n_shots=8, n_tasks=20, n_test=50)
    check_score(task)
    check_score(task, "test_unseen_tasks")
    check_sample(task)
    check_sample(make_task("icl_modular", p=11, n_shots=8, n_tasks=20, fresh=True), 100)
    check_determinism(lambda s: make_task("icl_modular", p=11, n_shots=8, n_tasks=20, seed=s))


@pytest.mark.parametrize(
    "params, field",
    [
        ({"p": 5, "n_tasks": 25}, "n_tasks must be < p\\^2"),
        ({"n_tasks": 0}, "task.n_tasks"),
        ({"n_shots": 0}, "task.n_shots"),
        ({"pair_fraction": 1.0}, "task.pair_fraction"),
        ({"p": 5, "n_shots": 20, "n_tasks": 3}, "task.pair_fraction"),
    ],
)
def test_bad_params(params, field):
    with pytest.raises(UserError, match=field.replace(".", r"\.") if "\\" not in field else field):
        make_task("icl_modular", **params)
