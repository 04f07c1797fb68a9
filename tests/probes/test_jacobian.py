from __future__ import annotations

import pytest
import torch
from torch import nn

from learnscope.probes import hessian_top_eigenvalue, local_rank, partial_jacobian_norm


def matrix_of_rank(n: int, m: int, k: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g) @ torch.randn(k, m, generator=g)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_local_rank_of_linear_map_is_rank_of_w(k):
    w = matrix_of_rank(8, 6, k)
    x = torch.randn(5, 6)
    assert local_rank(lambda v: v @ w.T, x) == k


def test_local_rank_relu_counts_active_units():
    # x -> relu(W x) with W = I: the Jacobian is diag(x > 0), rank = number of positives
    x = torch.tensor([[1.0, -1.0, 2.0, 3.0], [-1.0, -1.0, -1.0, 2.0]])
    assert local_rank(torch.relu, x) == pytest.approx((3 + 1) / 2)


def test_local_rank_works_with_batch_only_modules():
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3)).eval()
    r = local_rank(net, torch.randn(7, 4))
    assert r == 3.0  # a generic 4 -> 3 map has full rank 3


def test_apjn_of_linear_map_is_frobenius_over_n():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(20, 12, generator=g, dtype=torch.float64)
    h = torch.randn(9, 12, generator=g, dtype=torch.float64)
    expected = (w**2).sum().item() / 20
    assert partial_jacobian_norm(lambda v: v @ w.T, h) == pytest.approx(expected, rel=1e-12)


def test_apjn_random_projection_estimate():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(300, 50, generator=g, dtype=torch.float64)
    h = torch.randn(32, 50, generator=g, dtype=torch.float64)
    expected = (w**2).sum().item() / 300
    est = partial_jacobian_norm(lambda v: v @ w.T, h, exact_max=10, n_proj=16, generator=g)
    assert est != expected and est == pytest.approx(expected, rel=0.05)


def test_apjn_of_tanh_layer_matches_hand_derivative():
    w = torch.randn(5, 4, dtype=torch.float64)
    h = torch.randn(3, 4, dtype=torch.float64)
    deriv = 1 - torch.tanh(h @ w.T) ** 2  # (b, n)
    expected = ((deriv[:, :, None] * w[None]) ** 2).sum((1, 2)).mean().item() / 5
    assert partial_jacobian_norm(lambda v: torch.tanh(v @ w.T), h) == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hessian_top_eigenvalue_of_quadratic_form(seed):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    eig = torch.tensor([5.0, 2.0, 1.0, 0.5, 0.1, 0.0], dtype=torch.float64)
    a = q @ torch.diag(eig) @ q.T
    x = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    got = hessian_top_eigenvalue(lambda: 0.5 * x @ a @ x, [x], generator=g)
    assert got == pytest.approx(5.0, rel=1e-6)


def test_hessian_over_several_parameter_tensors():
    # loss = 0.5 * (a^2 + 3 b^2 + 2 c . c): block-diagonal Hessian diag(1, 3, 2, 2)
    a = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    c = torch.ones(2, dtype=torch.float64, requires_grad=True)
    got = hessian_top_eigenvalue(
        lambda: 0.5 * (a**2 + 3 * b**2 + 2 * (c * c).sum()),
        [a, b, c],
        iters=200,
        tol=1e-12,
        generator=torch.Generator().manual_seed(0),
    )
    assert got == pytest.approx(3.0, rel=1e-8)
