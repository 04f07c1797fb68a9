from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnscope.probes import fourier_power, ipr


def cosine_columns(p: int, freqs: list[int], phases: list[float]) -> torch.Tensor:
    n = torch.arange(p, dtype=torch.float64)[:, None]
    f = torch.tensor(freqs, dtype=torch.float64)[None]
    return torch.cos(2 * math.pi * f * n / p + torch.tensor(phases, dtype=torch.float64))


@pytest.mark.parametrize("p", [7, 12, 97])
def test_pure_cosine_has_all_energy_at_its_frequency_and_ipr_one(p):
    freqs = [1, 2, p // 2 - 1]
    w = cosine_columns(p, freqs, [0.3, -1.0, 2.0])
    nu = fourier_power(w, p)
    assert nu.shape == (p // 2 + 1, 3)
    for col, f in enumerate(freqs):
        assert nu[f, col] == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(ipr(w, p), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("p", [8, 11, 97])
def test_parseval_energies_sum_to_p_times_norm(p):
    # undo the normalisation through a column whose energy we know: a spike on residue 0
    # has |W_k| = 1 for all k, so its energies are 1 (k=0), 2, ..., and 1 at p/2 if p is even
    spike = torch.zeros(p, 1, dtype=torch.float64)
    spike[0] = 1.0
    nu = fourier_power(spike, p)[:, 0]
    expected = torch.full((p // 2 + 1,), 2.0 / p, dtype=torch.float64)
    expected[0] = 1.0 / p
    if p % 2 == 0:
        expected[-1] = 1.0 / p
    assert torch.allclose(nu, expected)  # energies / (p * ||w||^2) with ||w|| = 1
    assert ipr(spike, p).item() == pytest.approx((expected**2).sum().item())
    if p % 2:
        assert ipr(spike, p).item() == pytest.approx((2 * p - 1) / p**2)  # about 2/p


def test_white_noise_ipr_about_four_over_p():
    # random (exponentially distributed) energies on ~p/2 frequencies: E[IPR] ~ 2/(p/2) = 4/p;
    # a flat spectrum (the spike above) gives ~2/p.
    p = 97
    w = torch.randn(p, 2000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert ipr(w, p).mean().item() == pytest.approx(4 / p, rel=0.1)


def test_constant_and_zero_columns():
    p = 9
    w = torch.zeros(p, 2)
    w[:, 0] = 3.0
    nu = fourier_power(w, p)
    assert nu[0, 0] == 1.0 and nu[1:, 0].abs().max() < 1e-6
    assert torch.equal(nu[:, 1], torch.zeros(p // 2 + 1))


@settings(max_examples=25, deadline=None)
@given(p=st.integers(2, 40), m=st.integers(1, 5), shift=st.integers(0, 39))
def test_normalised_bounded_and_shift_invariant(p, m, shift):
    w = torch.randn(p, m, dtype=torch.float64)
    nu = fourier_power(w, p)
    assert torch.allclose(nu.sum(0), torch.ones(m, dtype=torch.float64))
    r = ipr(w, p)
    assert (r <= 1 + 1e-12).all() and (r >= 1 / (p // 2 + 1) - 1e-12).all()
    # a cyclic shift of the residues only changes phases: same spectrum
    assert torch.allclose(fourier_power(w.roll(shift, 0), p), nu)
    assert torch.allclose(fourier_power(-2.5 * w, p), nu)
