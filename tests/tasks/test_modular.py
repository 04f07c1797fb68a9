from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnscope.errors import UserError
from learnscope.number_theory import is_prime
from learnscope.tasks import make_task

BRUTE = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": lambda a, b, p: next(c for c in range(p) if (c * b) % p == a % p),
    "x2+y2": lambda a, b, p: (a**2 + b**2) % p,
    "x2+xy+y2": lambda a, b, p: (a**2 + a * b + b**2) % p,
    "x3+xy": lambda a, b, p: (a**3 + a * b) % p,
}


def all_rows(task) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.cat([task.split("train")["x"], task.split("test")["x"]])
    y = torch.cat([task.split("train")["y"], task.split("test")["y"]])
    return x, y


@pytest.mark.parametrize("op", sorted(BRUTE))
@pytest.mark.parametrize("p", [5, 7, 11])
def test_tables_match_brute_force(op, p):
    task = make_task("modular", op=op, p=p, train_fraction=0.5, seed=3)
    x, y = all_rows(task)
    expected = {
        (a, b): BRUTE[op](a, b, p)
        for a, b in itertools.product(range(p), repeat=2)
        if not (op == "div" and b == 0)
    }
    got = {(int(a), int(b)): int(c) for (a, b), c in zip(x.tolist(), y.tolist())}
    assert got == expected


def test_poly_matches_brute_force():
    coefficients = [[2, 1, 3], [0, 3, -1], [1, 0, 5], [0, 0, 4]]  # 3a^2 b - b^3 + 5a + 4
    task = make_task("modular", op="poly", coefficients=coefficients, p=13, train_fraction=0.5)
    x, y = all_rows(task)
    for (a, b), c in zip(x.tolist(), y.tolist()):
        assert c == (3 * a * a * b - b**3 + 5 * a + 4) % 13
    assert len(x) == 169


def test_many_term_addition_full_and_sampled():
    task = make_task("modular", op="add", p=5, n_terms=3, train_fraction=0.5)
    x, y = all_rows(task)
    assert x.shape == (125, 3) and len({tuple(r) for r in x.tolist()}) == 125
    assert torch.equal(y, x.sum(1) % 5)
    sampled = make_task("modular", op="add", p=97, n_terms=8, n_examples=500, train_fraction=0.5)
    x, y = all_rows(sampled)
    assert x.shape == (500, 8) and len({tuple(r) for r in x.tolist()}) == 500
    assert torch.equal(y, x.sum(1) % 97)


@settings(max_examples=25, deadline=None)
@given(p=st.integers(2, 23), frac=st.floats(0.05, 0.95), seed=st.integers(0, 2**31))
def test_splits_disjoint_cover_and_sized(p, frac, seed):
    n = p * p
    if not 1 <= round(frac * n) <= n - 1:
        return
    task = make_task("modular", op="add", p=p, train_fraction=frac, seed=seed)
    train = {tuple(r) for r in task.split("train")["x"].tolist()}
    test = {tuple(r) for r in task.split("test")["x"].tolist()}
    assert not train & test
    assert len(train | test) == n
    assert len(train) == round(frac * n)


def test_splits_deterministic_in_seed():
    a = make_task("modular", op="mul", p=31, train_fraction=0.4, seed=7, noise=0.2)
    b = make_task("modular", op="mul", p=31, train_fraction=0.4, seed=7, noise=0.2)
    c = make_task("modular", op="mul", p=31, train_fraction=0.4, seed=8, noise=0.2)
    for name in a.splits:
        assert torch.equal(a.split(name)["x"], b.split(name)["x"])
        assert torch.equal(a.split(name)["y"], b.split(name)["y"])
    assert not torch.equal(a.split("train")["x"], c.split("train")["x"])
    # the same rows on any machine: pinned to NumPy's PCG64 stream
    assert a.split("train")["x"][:3].tolist() == b.split("train")["x"][:3].tolist()


@pytest.mark.parametrize("noise", [0.1, 0.35, 0.5])
def test_corruption_exact_and_always_wrong(noise):
    p = 23
    task = make_task("modular", op="add", p=p, train_fraction=0.5, noise=noise, seed=1)
    train = task.split("train")
    n_train = len(train)
    true = (train["x"][:, 0] + train["x"][:, 1]) % p
    wrong = train["y"] != true
    assert int(wrong.sum()) == round(noise * n_train)
    assert torch.equal(wrong, task.corrupted)
    assert len(task.split("train_corrupted")) == round(noise * n_train)
    assert len(task.split("train_clean")) == n_train - round(noise * n_train)
    corrupted = task.split("train_corrupted")
    assert bool((corrupted["y"] != (corrupted["x"].sum(1) % p)).all())
    assert torch.equal(corrupted["y_true"], corrupted["x"].sum(1) % p)  # the truth, kept
    test = task.split("test")
    assert torch.equal(test["y"], test["x"].sum(1) % p)  # test labels clean


def test_score_is_exact_match():
    task = make_task("modular", op="add", p=7, train_fraction=0.5)
    y = task.split("test")["y"]
    assert task.score(y, "test") == 1.0
    assert task.score((y + 1) % 7, "test") == 0.0


@pytest.mark.parametrize(
    "params, field",
    [
        ({"p": 1}, "task.p"),
        ({"op": "div", "p": 8}, "prime"),
        ({"op": "pow"}, "task.op"),
        ({"train_fraction": 0.0}, "task.train_fraction"),
        ({"train_fraction": 1.0}, "task.train_fraction"),
        ({"noise": 1.0}, "task.noise"),
        ({"noise": -0.1}, "task.noise"),
        ({"bogus": 1}, "task.bogus"),
        ({"op": "poly"}, "coefficients"),
        ({"op": "mul", "n_terms": 3}, "n_terms"),
        ({"p": 97, "n_terms": 5}, "task.n_examples"),
        ({"p": 2, "train_fraction": 0.1}, "task.train_fraction"),
    ],
)
def test_bad_parameters_name_the_field(params, field):
    with pytest.raises(UserError, match=field.replace(".", r"\.")):
        make_task("modular", **{"train_fraction": 0.5, **params})


def test_unknown_task():
    with pytest.raises(UserError, match="unknown task 'nope'"):
        make_task("nope")


def test_is_prime():
    assert [n for n in range(30) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]


def test_n_train_takes_exactly_n_rows_nested_in_larger_counts():
    small = make_task("modular", p=11, n_train=10, seed=3)
    large = make_task("modular", p=11, n_train=40, seed=3)
    assert len(small.split("train")) == 10 and len(small.split("test")) == 121 - 10
    assert torch.equal(large.split("train")["x"][:10], small.split("train")["x"])
    with pytest.raises(UserError, match=r"task\.n_train"):
        make_task("modular", p=11, n_train=121)


def test_random_labels_are_uniform_nested_and_leave_the_test_labels_true():
    task = make_task("modular", p=11, n_train=100, random_labels=True, seed=1)
    x, y = task.split("train")["x"], task.split("train")["y"]
    right = ((x[:, 0] + x[:, 1]) % 11 == y).float().mean().item()
    assert right < 0.25  # chance is 1/11: the labels no longer follow a + b
    assert set(y.tolist()) == set(range(11))
    test = task.split("test")
    assert bool(((test["x"][:, 0] + test["x"][:, 1]) % 11 == test["y"]).all())
    fewer = make_task("modular", p=11, n_train=30, random_labels=True, seed=1)
    assert torch.equal(fewer.split("train")["y"], y[:30])
    with pytest.raises(UserError, match="noise must be 0"):
        make_task("modular", p=11, random_labels=True, noise=0.1)


def test_train_data_replaces_the_train_split_and_keeps_the_real_one(tmp_path):
    task = make_task("modular", p=7, train_fraction=0.5)
    real = task.split("train")
    data = {"x": real["x"].repeat(2, 1), "y": torch.zeros(2 * len(real), dtype=torch.long)}
    torch.save(data, tmp_path / "d.pt")
    swapped = make_task("modular", p=7, train_fraction=0.5, train_data=str(tmp_path / "d.pt"))
    assert list(swapped.splits) == ["train", "test", "train_real"]
    assert torch.equal(swapped.split("train")["y"], data["y"])
    assert torch.equal(swapped.split("train_real")["y"], real["y"])
    torch.save({"x": real["x"]}, tmp_path / "bad.pt")
    with pytest.raises(UserError, match=r"task\.train_data.*expected tensors \['x', 'y'\]"):
        make_task("modular", p=7, train_data=str(tmp_path / "bad.pt"))
    with pytest.raises(UserError, match=r"task\.train_data.*cannot be read"):
        make_task("modular", p=7, train_data=str(tmp_path / "missing.pt"))
