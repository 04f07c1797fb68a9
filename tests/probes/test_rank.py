from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnscope.probes import (
    effective_rank,
    incremental_rank,
    lidar,
    matrix_entropy,
    mmcr,
    rankme,
)


def orthogonal(d: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q.to(dtype)


def low_rank(n: int, d: int, k: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g, dtype=torch.float64) @ torch.randn(
        k, d, generator=g, dtype=torch.float64
    )


# -- effective rank / RankMe -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d", [1, 3, 10, 64])
def test_identity_and_scaled_orthogonal_give_d(d, dtype):
    assert effective_rank(torch.eye(d, dtype=dtype)) == pytest.approx(d, rel=1e-6)
    assert effective_rank(7.5 * orthogonal(d, dtype=dtype)) == pytest.approx(d, rel=1e-5)
    assert rankme(torch.eye(d, dtype=dtype)) == pytest.approx(d, rel=1e-4)


def test_rank_one_is_one_and_rank_k_at_most_k():
    assert effective_rank(torch.ones(6, 4)) == pytest.approx(1.0, abs=1e-6)
    for k in (1, 2, 5):
        z = low_rank(40, 20, k)
        assert 1.0 <= effective_rank(z) <= k + 1e-6


def test_known_spectrum():
    # singular values (3, 1): p = (3/4, 1/4), erank = exp(H(p))
    z = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert effective_rank(z) == pytest.approx(math.exp(h), rel=1e-12)


def test_rankme_adds_its_epsilon_to_each_probability():
    z = torch.diag(torch.tensor([3.0, 1.0, 0.0], dtype=torch.float64))
    p = torch.tensor([0.75, 0.25, 0.0], dtype=torch.float64) + 1e-7
    expected = math.exp(-(p * p.log()).sum().item())
    assert rankme(z) == pytest.approx(expected, rel=1e-12)
    assert rankme(z) != effective_rank(z)


def test_matches_svd_reference_in_float32_and_float64():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(300, 40, generator=g, dtype=torch.float64) * torch.linspace(0.01, 3, 40)
    s = torch.linalg.svdvals(z)
    p = s / s.sum()
    reference = math.exp(-(p * p.log()).sum().item())
    assert effective_rank(z) == pytest.approx(reference, rel=1e-10)
    assert effective_rank(z.float()) == pytest.approx(reference, rel=1e-5)
    assert effective_rank(z.T) == pytest.approx(reference, rel=1e-10)


def test_all_zero_matrix_has_rank_zero_and_nan_gives_nan():
    assert effective_rank(torch.zeros(3, 3)) == 0.0
    assert incremental_rank(torch.ones(3, 2), torch.ones(3, 2)) == 0.0
    assert math.isnan(effective_rank(torch.tensor([[1.0, float("nan")]])))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 12),
    d=st.integers(1, 12),
    scale=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**16),
)
def test_effective_rank_bounds_and_invariances(n, d, scale, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    r = effective_rank(z)
    assert 1.0 - 1e-9 <= r <= min(n, d) + 1e-9
    assert effective_rank(scale * z) == pytest.approx(r, rel=1e-7)
    rotated = orthogonal(n, seed) @ z @ orthogonal(d, seed + 1)
    assert effective_rank(rotated) == pytest.approx(r, rel=1e-7)
    assert effective_rank(z.T) == pytest.approx(r, rel=1e-7)
    assert matrix_entropy(rotated) == pytest.approx(matrix_entropy(z), rel=1e-7, abs=1e-9)


# -- matrix entropy -----------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 5, 16])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
def test_matrix_entropy_orthonormal_rows_is_log_n(n, alpha):
    z = orthogonal(20)[:n]  # n orthonormal rows in R^20: K = I_n
    assert matrix_entropy(z, alpha) == pytest.approx(math.log(n), abs=1e-10)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_matrix_entropy_rank_one_is_zero(alpha):
    z = torch.arange(1.0, 7.0)[:, None] * torch.tensor([[1.0, -2.0, 0.5]])
    assert matrix_entropy(z, alpha) == pytest.approx(0.0, abs=1e-6)


def test_matrix_entropy_renyi_two_closed_form():
    # eigenvalues of K / tr K: (4, 1) / 5 -> S_2 = -log(16/25 + 1/25)
    z = torch.diag(torch.tensor([2.0, 1.0], dtype=torch.float64))
    assert matrix_entropy(z, 2.0) == pytest.approx(-math.log(17 / 25), rel=1e-12)
    s1 = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))
    assert matrix_entropy(z, 1.0) == pytest.approx(s1, rel=1e-12)
    assert matrix_entropy(z, 1.0 + 1e-6) == pytest.approx(s1, rel=1e-4)  # Shannon limit


# -- LiDAR -------------------------------------------------------------------------------


def lidar_reference(z: torch.Tensor, delta=1e-4, eps=1e-8) -> float:
    """The formula written out with numpy, independently of the implementation."""
    import numpy as np

    z = z.double().numpy()
    n, q, d = z.shape
    mu_i = z.mean(1)
    mu = mu_i.mean(0)
    s_b = sum(np.outer(m - mu, m - mu) for m in mu_i) / (n - 1)
    s_w = sum(np.outer(z[i, j] - mu_i[i], z[i, j] - mu_i[i]) for i in range(n) for j in range(q))
    s_w = s_w / (n * (q - 1)) + delta * np.eye(d)
    w, v = np.linalg.eigh(s_w)
    root = v @ np.diag(w**-0.5) @ v.T
    lam = np.clip(np.linalg.eigvalsh(root @ s_b @ root), 0, None)
    p = lam / lam.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_lidar_counts_orthogonal_class_directions(k):
    g = torch.Generator().manual_seed(k)
    n, q, d = 400, 8, 12
    basis = orthogonal(d, seed=k)[:k]  # k orthonormal directions
    means = 30 * torch.randn(n, k, generator=g, dtype=torch.float64) @ basis
    z = means[:, None, :] + torch.randn(n, q, d, generator=g, dtype=torch.float64)
    assert lidar(z) == pytest.approx(k, rel=0.05)  # the noise floor 1/q adds a little
    assert lidar(z) == pytest.approx(lidar_reference(z), rel=1e-9)


def test_lidar_matches_reference_on_random_data():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(7, 3, 5, generator=g)
    assert lidar(z) == pytest.approx(lidar_reference(z), rel=1e-6)


def test_lidar_rejects_single_view():
    with pytest.raises(ValueError, match="q >= 2"):
        lidar(torch.randn(5, 1, 3))


# -- incremental rank --------------------------------------------------------------------


def test_incremental_rank_is_effective_rank_of_update():
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(10, 8, generator=g, dtype=torch.float64)
    delta = low_rank(10, 8, 2, seed=3)
    assert incremental_rank(w0 + delta, w0) == pytest.approx(effective_rank(delta), rel=1e-9)
    assert incremental_rank(w0 + delta, w0) <= 2 + 1e-9
    assert incremental_rank(w0 + torch.eye(10, 8, dtype=torch.float64), w0) == pytest.approx(8)


def test_mmcr_orthonormal_centroids_of_coinciding_views_reach_n():
    """Views that coincide (at any length) and orthonormal centroids: ``||C||_* = n``."""
    q = orthogonal(6)[:4]  # (4, 6) orthonormal rows
    z = q[:, None] * torch.tensor([1.0, 2.0, 5.0], dtype=q.dtype)[None, :, None]  # (4, 3, 6)
    assert mmcr(z) == pytest.approx(4.0)


def test_mmcr_opposite_views_give_zero_and_a_known_spectrum():
    x = torch.randn(5, 1, 3, dtype=torch.float64)
    assert mmcr(torch.cat([x, -x], dim=1)) == pytest.approx(0.0, abs=1e-12)
    # every sample's two views at 90 degrees: centroid = (e_a + e_b) / 2, norm 1/sqrt(2)
    e = torch.eye(4, dtype=torch.float64)
    z = torch.stack([torch.stack([e[0], e[1]]), torch.stack([e[2], e[3]])])  # (2, 2, 4)
    assert mmcr(z) == pytest.approx(2 / math.sqrt(2))
    # the same centroid for every sample: rank one, ||C||_* = sqrt(n) |c|
    same = torch.stack([e[0], e[1]])[None].expand(9, 2, 4)
    assert mmcr(same) == pytest.approx(3 / math.sqrt(2))


def test_mmcr_is_bounded_by_sqrt_min_n_d_times_n():
    z = torch.randn(50, 4, 8, generator=torch.Generator().manual_seed(0))
    assert 0 < mmcr(z) <= math.sqrt(8 * 50)
