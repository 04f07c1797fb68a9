from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnscope.probes import angular_distance, layer_distances


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equal_orthogonal_opposite(dtype):
    a = torch.randn(16, 32, dtype=dtype)
    assert angular_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert angular_distance(a, 3 * a) == pytest.approx(0.0, abs=1e-6)
    assert angular_distance(a, -a) == pytest.approx(1.0, abs=1e-6)
    e = torch.eye(4, dtype=dtype)
    assert angular_distance(e, e.roll(1, 0)) == pytest.approx(0.5, abs=1e-12)


def test_known_angle_and_token_dims():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, 1.0]])  # 45 and 90 degrees
    assert angular_distance(a, b) == pytest.approx((0.25 + 0.5) / 2)
    assert angular_distance(a[None], b[None]) == pytest.approx((0.25 + 0.5) / 2)  # (1, n, d)


def test_layer_distances():
    h = [torch.randn(5, 3) for _ in range(4)]
    got = layer_distances(h, 2)
    assert got == [angular_distance(h[0], h[2]), angular_distance(h[1], h[3])]
    assert len(layer_distances(h, 1)) == 3 and layer_distances(h, 4) == []


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 8), d=st.integers(2, 8), s=st.floats(1e-2, 1e2))
def test_symmetric_scale_invariant_bounded(n, d, s):
    a, b = torch.randn(n, d, dtype=torch.float64), torch.randn(n, d, dtype=torch.float64)
    dist = angular_distance(a, b)
    assert 0.0 <= dist <= 1.0
    assert angular_distance(b, a) == pytest.approx(dist)
    assert angular_distance(s * a, b) == pytest.approx(dist)
    assert angular_distance(a, -b) == pytest.approx(1 - dist)
