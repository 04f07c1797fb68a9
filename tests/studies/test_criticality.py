"""Criticality from partial Jacobians (Doshi, He & Gromov 2023): the mean-field critical points
in closed form, the APJN of linear chains, and the measured scan recovering both."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learnscope.probes.jacobian import partial_jacobian_norm
from learnscope.studies.criticality import (
    critical_sigma_w2,
    gaussian_mean,
    mean_field_chi,
    scan,
)


def test_gauss_hermite_moments():
    assert gaussian_mean(lambda h: h**2, 2.0) == pytest.approx(2.0)
    assert gaussian_mean(lambda h: h**4, 2.0) == pytest.approx(12.0)  # 3 K^2
    assert gaussian_mean(lambda h: np.maximum(h, 0) ** 2, 3.0) == pytest.approx(1.5)


@pytest.mark.parametrize("sigma_b", [0.0, 0.3, 1.0])
def test_relu_chi_is_half_sigma_w2_and_critical_at_two(sigma_b):
    for sw2 in (0.5, 2.0, 3.5):
        assert mean_field_chi("relu", sw2, sigma_b**2) == pytest.approx(sw2 / 2)
    assert critical_sigma_w2("relu", sigma_b**2) == pytest.approx(2.0, abs=1e-9)


def test_tanh_critical_point_is_one_and_its_line_rises_with_sigma_b():
    assert mean_field_chi("tanh", 0.7, 0.0) == pytest.approx(0.7, abs=1e-6)  # K -> 0: phi'(0)=1
    assert critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, abs=0.01)
    line = [critical_sigma_w2("tanh", b * b) for b in (0.0, 0.1, 0.2, 0.3, 0.5)]
    assert all(a < b for a, b in zip(line, line[1:]))
    # the fixed point of the variance map at the critical point: chi_J = 1 there
    sw2 = line[3]
    k = 1.0
    for _ in range(3000):
        k = sw2 * gaussian_mean(lambda h: np.tanh(h) ** 2, k) + 0.09
    assert sw2 * gaussian_mean(lambda h: (1 - np.tanh(h) ** 2) ** 2, k) == pytest.approx(
        1, abs=1e-6
    )


def test_layernorm_relu_chi_is_the_closed_form_and_critical_along_sigma_b_zero():
    for sw2, sb in [(0.5, 0.0), (2.0, 0.3), (4.0, 1.0)]:
        want = sw2 / (sw2 + 2 * sb * sb)
        assert mean_field_chi("relu", sw2, sb * sb, layernorm=True) == pytest.approx(want)
    assert critical_sigma_w2("relu", 0.0, layernorm=True) is None  # chi_J = 1 everywhere


def test_apjn_of_a_linear_chain_is_the_product_of_sigma_w2():
    """Orthogonal layers scaled by sigma_l: J^{1,L} = prod sigma_l^2 exactly."""
    g = torch.Generator().manual_seed(0)
    sigmas = [1.3, 0.6, 2.0, 0.9]
    ws = [s * torch.linalg.qr(torch.randn(24, 24, generator=g, dtype=torch.float64))[0]
          for s in sigmas]  # fmt: skip

    def chain(h):
        for w in ws:
            h = h @ w.T
        return h

    h = torch.randn(5, 24, generator=g, dtype=torch.float64)
    want = math.prod(s * s for s in sigmas)
    assert partial_jacobian_norm(chain, h) == pytest.approx(want, rel=1e-10)
    est = partial_jacobian_norm(chain, h, exact_max=0, n_proj=64, generator=g)
    assert est == pytest.approx(want, rel=0.05)


def test_scan_recovers_relu_and_tanh_critical_points():
    grid = np.linspace(0.5, 3.0, 11).tolist()
    relu = scan("relu", 24, 64, grid, [0.0], rows=8)
    assert relu.crossing(0) == pytest.approx(2.0, abs=0.15)
    # deep in the ordered (chaotic) phase J^{1,L} is exponentially small (large)
    assert relu.apjn[0, 0] < 1e-4 and relu.apjn[0, -1] > 1e3
    tanh = scan("tanh", 24, 64, grid, [0.0, 0.3], rows=8)
    assert 0.95 <= tanh.crossing(0) <= 1.2  # finite depth puts it a little above 1
    assert tanh.crossing(1) == pytest.approx(critical_sigma_w2("tanh", 0.09), rel=0.1)


def test_scan_with_layernorm_is_critical_along_sigma_b_zero():
    ln = scan("relu", 24, 64, [0.5, 1.0, 2.0, 4.0], [0.0, 0.5], layernorm=True, rows=8)
    assert np.all(np.abs(np.log(ln.chi[0])) < 0.06)  # chi_J ~ 1 whatever sigma_w
    assert np.all(ln.chi[1] < 0.95)  # sigma_b > 0: ordered
    assert ln.crossing(0) is None


def test_scan_refuses_bad_arguments():
    with pytest.raises(ValueError, match="act"):
        scan("sigmoid", 10, 8, [1.0], [0.0])
    with pytest.raises(ValueError, match="depth"):
        scan("relu", 2, 8, [1.0], [0.0])
