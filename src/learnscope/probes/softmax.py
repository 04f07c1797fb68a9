"""Softmax collapse (Prieto, Barsbey, Mediano & Birdal 2025, "Grokking at the Edge of
Numerical Stability"; PAPERS.md 31), as the paper's code measures it: with the logits shifted
by their maximum, ``S = sum_j exp(z_j - max z)`` computed in the softmax's precision; a row
has collapsed when ``S == 1`` exactly: every non-maximal term was absorbed, so the gradient of
its correct class is exactly 0 and learning stops on it."""

from __future__ import annotations

import torch


@torch.no_grad()
def softmax_collapse(logits: torch.Tensor, dtype: torch.dtype = torch.float32) -> float:
    """The fraction of rows of ``logits (..., C)`` whose softmax sum is exactly 1 in ``dtype``.

    >>> softmax_collapse(torch.tensor([[0.0, 1.0], [0.0, 20.0]]))  # exp(-20) absorbed in float32
    0.5
    >>> softmax_collapse(torch.tensor([[0.0, 20.0]]), torch.float64)  # not in float64
    0.0
    """
    z = logits.reshape(-1, logits.shape[-1]).to(dtype)
    total = torch.exp(z - z.max(-1, keepdim=True).values).sum(-1)
    return float((total == 1).float().mean())
