"""Probes on attention patterns."""

from __future__ import annotations

import torch


def attention_entropy(pattern: torch.Tensor) -> torch.Tensor:
    """Entropy of attention rows per head, ``pattern: (..., h, q, k)`` -> ``(h,)``.

    ``Ent(A_i) = -sum_j A_ij log A_ij`` for every query row (rows sum to 1; causally masked
    entries are 0 and ``0 log 0 = 0``), averaged over queries and every leading dimension
    (batch), separately for each head. Zhai et al. (2023, σReparam) show training becomes
    unstable when it collapses towards 0. Uniform rows over ``k`` keys give ``log k``, one-hot
    rows give 0, a uniform causal row ``i`` gives ``log(i + 1)``.

    >>> attention_entropy(torch.full((2, 3, 4, 4), 0.25))  # log 4 for each of 3 heads
    tensor([1.3863, 1.3863, 1.3863])
    """
    if pattern.dim() < 3:
        raise ValueError(f"expected pattern: (..., h, q, k), got shape {tuple(pattern.shape)}")
    p = pattern.detach().double()
    ent = -torch.special.xlogy(p, p).sum(-1)  # (..., h, q)
    h = ent.shape[-2]
    return ent.movedim(-2, 0).reshape(h, -1).mean(1).to(pattern.dtype)
