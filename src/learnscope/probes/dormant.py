"""Dormant units: the fraction of a layer's units that (nearly) never fire.

Sokar, Agarwal, Castro & Evci (ICML 2023), "The Dormant Neuron Phenomenon in Deep
Reinforcement Learning", eq. 1: unit ``i`` of a layer with ``H`` units is *tau-dormant* on a
batch ``D`` when its normalised score is at most ``tau``,

    s_i = E_{x in D} |h_i(x)|  /  ( (1/H) sum_k E_{x in D} |h_k(x)| )  <=  tau.

With ``tau = 0`` a unit is dormant when its activation is exactly 0 on every row: the *dead
units* Dohare et al. (2024, "Loss of plasticity in deep continual learning") count for ReLU
networks (``m.abs().sum(dim=0) == 0``). A layer whose every unit is silent has all of them
dormant.
"""

from __future__ import annotations

import torch

__all__ = ["dormant_fraction", "dormant_scores"]


def dormant_scores(h: torch.Tensor) -> torch.Tensor:
    """``s_i`` of Sokar et al. (2023) for activations ``h: (n, H)`` -> ``(H,)`` (float64; all
    zeros when the whole layer is silent).

    >>> dormant_scores(torch.tensor([[0.0, 1.0, 2.0], [0.0, 3.0, 2.0]])).tolist()
    [0.0, 1.5, 1.5]
    """
    m = h.detach().double().abs().mean(0)  # E_x |h_i(x)|, (H,)
    mean = m.mean()
    return m / mean if mean > 0 else torch.zeros_like(m)


def dormant_fraction(h: torch.Tensor, tau: float = 0.0) -> float:
    """Fraction of the ``H`` units of ``h: (n, H)`` that are tau-dormant (``s_i <= tau``).

    >>> h = torch.tensor([[0.0, 1.0, 0.01, 2.0], [0.0, 3.0, 0.01, 2.0]])
    >>> dormant_fraction(h), dormant_fraction(h, tau=0.025)
    (0.25, 0.5)
    """
    if tau < 0:
        raise ValueError(f"tau must be >= 0 (got {tau})")
    return float((dormant_scores(h) <= tau).double().mean())
