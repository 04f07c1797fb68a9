from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnscope.probes import nc1, ncc_accuracy


def test_collapsed_classes_give_zero():
    means = torch.randn(5, 8, dtype=torch.float64)
    y = torch.arange(5).repeat(4)
    z = means[y]
    assert nc1(z, y) == pytest.approx(0.0, abs=1e-12)
    assert ncc_accuracy(z, y) == 1.0


def test_one_dimensional_closed_form():
    # two classes at -m and +m (global mean 0), each with samples at +-s around its mean:
    # S_W = s^2, S_B = m^2, NC1 = s^2 / m^2 / C
    m, s = 3.0, 0.5
    z = torch.tensor([[-m - s], [-m + s], [m - s], [m + s]])
    y = torch.tensor([0, 0, 1, 1])
    assert nc1(z, y) == pytest.approx(s**2 / m**2 / 2, rel=1e-12)


def test_within_variance_in_null_space_of_between_is_ignored():
    # the pseudo-inverse: spread orthogonal to the class means does not count
    z = torch.tensor([[-1.0, 5.0], [-1.0, -5.0], [1.0, 5.0], [1.0, -5.0]])
    assert nc1(z, torch.tensor([0, 0, 1, 1])) == pytest.approx(0.0, abs=1e-12)


def test_ncc_accuracy_counts_nearest_means():
    z = torch.tensor([[0.0], [0.2], [1.0], [0.3], [0.9]])
    y = torch.tensor([5, 5, 7, 7, 7])  # arbitrary label values; means 0.1 and 0.7333
    assert ncc_accuracy(z, y) == pytest.approx(4 / 5)


@settings(max_examples=20, deadline=None)
@given(c=st.integers(2, 5), per=st.integers(2, 6), d=st.integers(1, 6), seed=st.integers(0, 999))
def test_invariant_to_rotation_translation_and_label_names(c, per, d, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(c).repeat(per)
    z = 3 * torch.randn(c, d, generator=g, dtype=torch.float64)[y] + torch.randn(
        c * per, d, generator=g, dtype=torch.float64
    )
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    moved = z @ q + torch.randn(d, generator=g, dtype=torch.float64)
    assert nc1(moved, y * 10 + 3) == pytest.approx(nc1(z, y), rel=1e-6, abs=1e-9)
    assert ncc_accuracy(moved, y * 10 + 3) == ncc_accuracy(z, y)
    assert nc1(z, y) >= 0 and 0 <= ncc_accuracy(z, y) <= 1
