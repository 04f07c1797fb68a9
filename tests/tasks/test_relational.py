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


def matches(string: list[str], template: str) -> bool:
    """Brute force: some one-to-one map from the template's variables to symbols writes it."""
    if len(string) != len(template):
        return False
    variables = sorted(set(template))
    symbols = sorted(set(string))
    if len(symbols) != len(variables):
        return False
    for image in itertools.permutations(symbols):
        assign = dict(zip(variables, image))
        if [assign[v] for v in template] == string:
            return True
    return False


@pytest.mark.parametrize(
    "mode, templates, seed",
    [
        ("same_different", None, 0),
        ("same_different", None, 1),
        ("template", ["aab", "aba", "abb"], 2),
        ("template", ["abab", "abba", "aabb", "abcd", "aaaa"], 3),
        ("template", ["ab", "aba", "abc"], 4),
    ],
)
def test_labels_match_brute_force_and_symbols_are_unseen(mode, templates, seed):
    task = make_task("relational", mode=mode, templates=templates, n_train_symbols=12,
                     n_test_symbols=8, n_train=100, n_test=40, seed=seed)  # fmt: skip
    check_contract(task)
    words = ["aa", "ab"] if mode == "same_different" else templates
    names = ["same", "different"] if mode == "same_different" else [f"t{i}" for i in
                                                                   range(len(words))]  # fmt: skip
    symbols = {}
    for split in task.eval_splits:
        labels = set()
        used = set()
        for r, value in zip(rows_text(task, split), task.answers(split)):
            string = r["prompt"][:-1]
            assert r["prompt"][-1] == "="
            fits = [k for k, t in enumerate(words) if matches(string, t)]
            assert fits == [value] and r["answer"] == [names[value]]
            labels.add(value)
            used |= set(string)
        assert labels == set(range(len(words)))  # every template occurs
        symbols[split] = used
    assert not symbols["train"] & symbols["test"]
    assert symbols["test"] <= {f"s{i}" for i in range(12, 20)}


def test_score_sample_determinism():
    task = make_task("relational", mode="template", templates=["aab", "aba"], n_test=40)
    check_score(task)
    check_sample(task)
    fresh = make_task("relational", fresh=True, n_train=10, n_test=40)
    check_sample(fresh, 200)
    check_determinism(lambda s: make_task("relational", n_train=200, seed=s))


@pytest.mark.parametrize(
    "params, field",
    [
        ({"mode": "template"}, "at least two templates"),
        ({"mode": "template", "templates": ["aba", "cdc"]}, "different up to renaming"),
        ({"mode": "template", "templates": ["aB", "ab"]}, "words over a-z"),
        ({"templates": ["ab", "aa"]}, "only used with mode 'template'"),
        ({"n_test_symbols": 1}, "n_test_symbols must be >= 2"),
        ({"n_train_symbols": 0}, "task.n_train_symbols"),
        ({"n_train_symbols": 3, "n_train": 50}, "task.n_train"),
        ({"mode": "odd"}, "task.mode"),
    ],
)
def test_bad_params(params, field):
    with pytest.raises(UserError, match=field.replace(".", r"\.")):
        make_task("relational", **params)
