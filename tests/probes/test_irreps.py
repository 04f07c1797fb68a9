"""The irrep_power probe against embeddings built from known irreducible representations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learnscope.errors import UserError
from learnscope.groups import characters, make_group
from learnscope.probes.irreps import irrep_power, top_power


def _sign(p: tuple[int, ...]) -> int:
    return -1 if sum(p[i] > p[j] for i in range(len(p)) for j in range(i + 1, len(p))) % 2 else 1


def standard_rep(name: str) -> np.ndarray:
    """S_n's standard irrep, ``(|G|, n-1, n-1)``: the permutation matrices restricted to the
    vectors whose coordinates sum to 0 (an orthonormal basis of that subspace)."""
    g = make_group(name)
    n = len(g.elements[0])
    basis = np.linalg.qr(np.eye(n)[:, :-1] - 1.0 / n)[0]  # (n, n-1), orthogonal to ones
    mats = []
    for p in g.elements:
        perm = np.zeros((n, n))
        perm[list(p), range(n)] = 1.0  # e_v -> e_p(v)
        mats.append(basis.T @ perm @ basis)
    return np.stack(mats)


def dihedral_rep(n: int, k: int) -> np.ndarray:
    """D_n's 2-dim irrep of frequency k: r^i s^j -> R(2 pi k i / n) F^j."""
    mats = []
    for j in (0, 1):
        for i in range(n):
            t = 2 * math.pi * k * i / n
            rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
            mats.append(rot @ np.diag([1.0, -1.0]) if j else rot)
    return np.stack(mats)


def embedding(mats: np.ndarray) -> torch.Tensor:
    """One row per element: its matrix's entries (the irrep's matrix elements)."""
    return torch.from_numpy(mats.reshape(len(mats), -1))


def test_the_standard_rep_is_a_homomorphism_with_the_3a_character():
    g, rho = make_group("S4"), standard_rep("S4")
    a, b = 5, 17
    assert np.allclose(rho[a] @ rho[b], rho[g.table[a, b]])
    chi, classes, names = characters(g)
    traces = np.array([np.trace(rho[c[0]]) for c in classes])
    assert np.allclose(chi[names.index("3a")], traces)


@pytest.mark.parametrize(
    "mats, group, irrep",
    [
        (standard_rep("S4"), "S4", "3a"),
        (standard_rep("S4") * np.array([_sign(p) for p in make_group("S4").elements])[:, None,
                                                                                       None],
         "S4", "3b"),  # standard x sign
        (standard_rep("S5"), "S5", "4a"),
        (np.array([[[float(_sign(p))]] for p in make_group("S4").elements]), "S4", "1b"),
        (np.ones((24, 1, 1)), "S4", "1a"),
    ],
)  # fmt: skip
def test_an_embedding_built_from_one_irrep_has_power_one_in_it(mats, group, irrep):
    powers = irrep_power(embedding(mats), group)
    assert powers[irrep] == pytest.approx(1.0, abs=1e-10)
    assert sum(powers.values()) == pytest.approx(1.0, abs=1e-12)
    assert top_power(powers, 1) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("n, k", [(5, 1), (5, 2), (6, 1), (6, 2), (8, 3)])
def test_each_dihedral_2d_irrep_is_found_whole(n, k):
    powers = irrep_power(embedding(dihedral_rep(n, k)), f"D{n}")
    best = max(powers, key=powers.get)
    assert best.startswith("2") and powers[best] == pytest.approx(1.0, abs=1e-10)
    other = irrep_power(embedding(dihedral_rep(n, 1 if k != 1 else 2)), f"D{n}")
    assert other[best] == pytest.approx(0.0, abs=1e-10)  # another frequency, another irrep


@pytest.mark.parametrize("group", ["S4", "A4", "A5", "D6", "S5"])
def test_powers_sum_to_one_and_a_random_embedding_spreads_as_d_squared(group):
    g = make_group(group)
    w = torch.randn(g.order, 4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    powers = irrep_power(w, group)
    assert sum(powers.values()) == pytest.approx(1.0, abs=1e-12)
    for name, v in powers.items():
        d = int("".join(c for c in name if c.isdigit()))
        assert v == pytest.approx(d * d / g.order, abs=0.02)


def test_complex_conjugate_characters_share_a_real_embeddings_power():
    w = torch.randn(12, 50, generator=torch.Generator().manual_seed(1))
    powers = irrep_power(w, "A4")  # 1b and 1c are complex conjugates
    assert powers["1b"] == pytest.approx(powers["1c"], abs=1e-6)


def test_a_first_layer_reads_both_operands_blocks():
    rho = embedding(standard_rep("S4")).float()  # (24, 9)
    left_right = torch.cat([rho, 2 * rho], 0).T  # (9 neurons, 2 x 24): a one-hot first layer
    assert irrep_power(left_right, "S4")["3a"] == pytest.approx(1.0, abs=1e-6)
    assert irrep_power(torch.zeros(24, 3), "S4")["3a"] == 0.0


def test_the_probe_in_a_run_and_its_errors(tiny_config):
    from learnscope.config import validate_config
    from learnscope.runner import build, probe_plan

    base = {**tiny_config, "task": {"name": "group", "group": "S3", "train_fraction": 0.5}}
    spec = {"probe": "irrep_power", "sites": ["layers.0.linear.weight"], "group": "S3"}
    cfg = validate_config({**base, "probes": [spec]})
    trainer = build(cfg)
    plan = probe_plan(cfg, trainer)
    values = plan.compute(trainer.model, trainer.objective.forward, trainer.objective.loss)
    site = "irrep_power/layers.0.linear.weight"
    assert set(values) == {f"{site}/{k}" for k in ("1a", "1b", "2a", "top1", "top2")}
    assert sum(values[f"{site}/{k}"] for k in ("1a", "1b", "2a")) == pytest.approx(1.0, abs=1e-9)
    for bad, match in [
        ({**spec, "group": None}, r"probes\.0\.group: irrep_power needs the group"),
        ({**spec, "group": "Q8"}, r"probes\.0\.group: unknown group"),
        ({**spec, "group": "S4"}, r"probes\.0\.sites: irrep_power"),  # 2 x 6 columns, not 24
    ]:
        cfg = validate_config({**base, "probes": [bad]})
        with pytest.raises(UserError, match=match):
            probe_plan(cfg, build(cfg))
