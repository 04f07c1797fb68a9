"""Lanczos top eigenvalues, stochastic Lanczos quadrature and Hessian-vector products, against
matrices and quadratic losses whose spectra are known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from learnscope.probes.lanczos import (
    count_outliers,
    hessian_matvec,
    lanczos,
    slq_density,
    slq_nodes,
    top_eigenvalues,
)


def with_spectrum(eigs: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A dense symmetric matrix ``Q diag(eigs) Q^T`` (``Q`` a seeded random rotation)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    return q @ torch.diag(eigs.double()) @ q.T


def test_full_lanczos_recovers_every_eigenvalue_without_ghosts():
    # n steps with full reorthogonalisation: T is similar to A (no spurious copies)
    eigs = torch.linspace(-3, 5, 60, dtype=torch.float64) ** 3
    a = with_spectrum(eigs)
    alpha, beta, q = lanczos(lambda v: a @ v, 60, 60, generator=torch.Generator().manual_seed(1))
    t = torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)
    assert torch.allclose(torch.linalg.eigvalsh(t), eigs.sort().values, atol=1e-8)
    assert torch.allclose(q @ q.T, torch.eye(len(alpha), dtype=torch.float64), atol=1e-10)


def test_top_k_of_outliers_over_a_bulk():
    c = 10  # as in a 10-class Hessian: 10 outliers over a bulk near zero
    outliers = torch.linspace(20, 200, c, dtype=torch.float64)
    bulk = torch.rand(990, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = with_spectrum(torch.cat([outliers, bulk]))
    top = top_eigenvalues(lambda v: a @ v, 1000, k=20, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(top[:c], outliers.flip(0), rtol=1e-8)
    assert top[c] <= 1.0 and count_outliers(top) == c


def test_count_outliers_reads_the_largest_log_gap():
    assert count_outliers(torch.tensor([9.0, 8.0, 7.0, 0.1, 0.09])) == 3
    assert count_outliers(torch.tensor([100.0, 1.0, 0.9, 0.8])) == 1
    assert count_outliers(torch.tensor([100.0, 1.0, 0.9, 0.01]), bulk_from=2) == 1
    assert count_outliers(torch.tensor([5.0, -1.0])) == 1  # only positive ones count


def test_slq_density_matches_the_broadened_true_density():
    eigs = torch.cat([torch.zeros(150), torch.linspace(0.5, 1.5, 40), torch.tensor([8.0, 9, 10])])
    a = with_spectrum(eigs.double(), seed=3)
    n, sigma = len(eigs), 0.3
    grid = torch.linspace(-2, 12, 1401, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    phi = slq_density(lambda v: a @ v, n, grid, sigma, n_vectors=30, steps=40, generator=g)
    true = torch.exp(-((grid[:, None] - eigs.double()) ** 2) / (2 * sigma**2)).sum(1)
    true = true / (n * sigma * math.sqrt(2 * math.pi))
    dx = float(grid[1] - grid[0])
    assert float(phi.sum() * dx) == pytest.approx(1.0, abs=1e-3)
    assert float((phi - true).abs().sum() * dx) < 0.15  # L1 distance of two densities (<= 2)
    # the quadrature's first moment is tr(A) / n in expectation
    nodes, weights = slq_nodes(lambda v: a @ v, n, 30, 40, torch.Generator().manual_seed(1))
    assert float((nodes * weights).sum(1).mean()) == pytest.approx(float(eigs.mean()), rel=0.15)


def test_hessian_matvec_of_a_quadratic_over_two_tensors():
    a = with_spectrum(torch.tensor([4.0, 3.0, 1.0, 0.5, 0.0]))
    x1 = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    x2 = torch.zeros(3, dtype=torch.float64, requires_grad=True)

    def loss():
        x = torch.cat([x1, x2])
        return 0.5 * x @ a @ x + x.sum()  # the linear term changes no second derivative

    hv, n = hessian_matvec(loss, [x1, x2])
    v = torch.randn(5, dtype=torch.float64)
    assert n == 5 and torch.allclose(hv(v), a @ v)
    top = top_eigenvalues(hv, n, k=2)
    assert top.tolist() == pytest.approx([4.0, 3.0])
