"""The group task and the groups it is built on: composition tables, splits, characters."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from learnscope.errors import UserError
from learnscope.groups import characters, isotypic_projectors, make_group
from learnscope.tasks import make_task


@pytest.mark.parametrize("name, order", [("S3", 6), ("S4", 24), ("A4", 12), ("A5", 60),
                                         ("D5", 10), ("D6", 12)])  # fmt: skip
def test_the_table_is_composition_of_permutations(name, order):
    g = make_group(name)
    assert g.order == order
    for a in range(order):
        for b in range(0, order, 5):
            ab = tuple(g.elements[a][v] for v in g.elements[b])
            assert g.elements[g.table[a, b]] == ab
    # a group: identity, inverses, associativity on a sample
    assert (g.table[g.identity] == np.arange(order)).all()
    assert (g.table[np.arange(order), g.inverse] == g.identity).all()
    t = g.table
    for a, b, c in [(1, 2, 3), (order - 1, 2, 1), (3, order - 2, order - 1)]:
        assert t[t[a, b], c] == t[a, t[b, c]]


def test_dihedral_elements_are_rotations_then_reflections():
    g = make_group("D5")
    r, s = g.elements[1], g.elements[5]
    assert r == (1, 2, 3, 4, 0) and s == (0, 4, 3, 2, 1)
    assert g.elements[g.table[5, 5]] == tuple(range(5))  # s^2 = e
    assert g.table[5, 1] == g.table[g.inverse[1], 5]  # s r = r^-1 s


def test_the_task_labels_and_splits():
    task = make_task("group", group="S4", train_fraction=0.4, seed=3)
    tr, te = task.split("train"), task.split("test")
    assert len(tr) == round(0.4 * 576) and len(tr) + len(te) == 576
    pairs = {tuple(r) for r in torch.cat([tr["x"], te["x"]]).tolist()}
    assert len(pairs) == 576  # disjoint and covering
    table = torch.from_numpy(task.group.table)
    assert (table[tr["x"][:, 0], tr["x"][:, 1]] == tr["y"]).all()
    again = make_task("group", group="S4", train_fraction=0.4, seed=3)
    assert torch.equal(again.split("train")["x"], tr["x"])
    other = make_task("group", group="S4", train_fraction=0.4, seed=4)
    assert not torch.equal(other.split("train")["x"], tr["x"])
    assert task.model_dims() == {"n_inputs": 2, "vocab": 24, "n_out": 24}


@pytest.mark.parametrize("bad", ["S9", "Z5", "D2", "s4", ""])
def test_a_bad_group_is_a_user_error_naming_the_field(bad):
    with pytest.raises(UserError, match=r"task\.group.*allowed"):
        make_task("group", group=bad)


def test_the_character_table_of_s4():
    chi, classes, names = characters(make_group("S4"))
    assert names == ["1a", "1b", "2a", "3a", "3b"]
    assert [len(c) for c in classes] == [1, 6, 8, 3, 6]  # e, (ab), (abc), (ab)(cd), (abcd)
    want = [[1, 1, 1, 1, 1], [1, -1, 1, 1, -1], [2, 0, -1, 2, 0], [3, 1, 0, -1, -1],
            [3, -1, 0, -1, 1]]  # fmt: skip
    assert np.allclose(chi, want, atol=1e-9)


@pytest.mark.parametrize("n", [5, 6, 7, 8])
def test_dihedral_characters_have_the_closed_form_count(n):
    chi, classes, names = characters(make_group(f"D{n}"))
    ones = 2 if n % 2 else 4
    assert sum(name.startswith("1") for name in names) == ones
    assert sum(name.startswith("2") for name in names) == (n - 1) // 2 if n % 2 else n // 2 - 1
    assert len(classes) == ((n + 3) // 2 if n % 2 else n // 2 + 3)


@pytest.mark.parametrize("name", ["S3", "S4", "S5", "A4", "A5", "D6", "D7"])
def test_the_projectors_are_orthogonal_and_sum_to_the_identity(name):
    g = make_group(name)
    p, names = isotypic_projectors(g)
    eye = np.eye(g.order)
    assert np.allclose(p.sum(0), eye, atol=1e-10)
    for i in range(len(names)):
        assert np.allclose(p[i] @ p[i], p[i], atol=1e-10)
        assert np.allclose(p[i], p[i].conj().T, atol=1e-12)
        d = int(re.match(r"\d+", names[i]).group())
        assert np.isclose(np.trace(p[i]).real, d * d)  # the isotypic component has dim d^2
