from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnscope.probes import attention_entropy


def test_uniform_rows_give_log_k_and_one_hot_give_zero():
    uniform = torch.full((3, 4, 6, 10), 0.1)
    assert torch.allclose(attention_entropy(uniform), torch.full((4,), math.log(10)))
    one_hot = torch.nn.functional.one_hot(torch.randint(0, 10, (3, 4, 6)), 10).float()
    assert torch.equal(attention_entropy(one_hot), torch.zeros(4))


def test_causal_uniform_rows():
    q = 7
    mask = torch.tril(torch.ones(q, q))
    pattern = (mask / mask.sum(-1, keepdim=True))[None, None]  # (1, 1, q, q), zeros above
    expected = sum(math.log(i + 1) for i in range(q)) / q
    assert attention_entropy(pattern).item() == pytest.approx(expected, rel=1e-6)


def test_heads_are_kept_apart_and_leading_dims_averaged():
    pattern = torch.zeros(2, 5, 3, 2, 4)  # (batch, layer-ish, h, q, k)
    pattern[..., 0, :, :] = 0.25  # head 0 uniform
    pattern[..., 1, :, 0] = 1.0  # head 1 one-hot
    pattern[..., 2, :, :2] = 0.5  # head 2 uniform over 2
    got = attention_entropy(pattern)
    assert got.shape == (3,)
    assert torch.allclose(got, torch.tensor([math.log(4), 0.0, math.log(2)]))


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 4), h=st.integers(1, 4), q=st.integers(1, 6), k=st.integers(1, 6))
def test_shape_bounds_and_key_permutation_invariance(b, h, q, k):
    pattern = torch.softmax(torch.randn(b, h, q, k, dtype=torch.float64), -1)
    ent = attention_entropy(pattern)
    assert ent.shape == (h,)
    assert (ent >= -1e-12).all() and (ent <= math.log(k) + 1e-9).all()
    perm = torch.randperm(k)
    assert torch.allclose(attention_entropy(pattern[..., perm]), ent)
    # the mean over a batch is the mean of its halves' means, weighted by size
    if b > 1:
        halves = [attention_entropy(pattern[:1]), attention_entropy(pattern[1:])]
        assert torch.allclose((halves[0] + (b - 1) * halves[1]) / b, ent)
