"""Distances between the representations of different layers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def angular_distance(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> float:
    """Mean angular distance between paired rows of ``a, b: (n, d)`` (also ``(..., d)``).

    ``d(a_i, b_i) = arccos(a_i . b_i / (|a_i| |b_i|)) / pi`` in ``[0, 1]``, averaged over rows:
    0 for equal directions, 0.5 for orthogonal, 1 for opposite. Gromov et al. (2024, "The
    unreasonable ineffectiveness of the deeper layers") prune the block of layers whose input
    and output are closest. Computed in float64 (arccos is steep near 1).

    >>> angular_distance(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]))
    0.5
    """
    if a.shape != b.shape:
        raise ValueError(f"a and b differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    a = a.detach().double().reshape(-1, a.shape[-1])
    b = b.detach().double().reshape(-1, b.shape[-1])
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(eps)
    return float(torch.arccos(cos.clamp(-1.0, 1.0)).mean() / math.pi)


def layer_distances(hiddens: Sequence[torch.Tensor], n: int = 1) -> list[float]:
    """``d(h_l, h_{l+n})`` (:func:`angular_distance`) for every ``l`` of a list of hidden states.

    ``hiddens[l]`` is the representation entering layer ``l`` (all of one shape); the result
    has ``len(hiddens) - n`` entries, the ``l``-th scoring the removal of layers
    ``l .. l+n-1`` (Gromov et al. 2024).

    >>> h = [torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 1.0]])]
    >>> [round(d, 6) for d in layer_distances(h, 1)], layer_distances(h, 2)
    ([0.25, 0.25], [0.5])
    """
    if n < 1:
        raise ValueError(f"n must be >= 1 (got {n})")
    return [angular_distance(hiddens[i], hiddens[i + n]) for i in range(len(hiddens) - n)]
