"""Fourier spectrum of weights indexed by a residue, and the inverse participation ratio."""

from __future__ import annotations

import torch


def fourier_power(w: torch.Tensor, p: int) -> torch.Tensor:
    """Normalised energy per frequency of each column of ``w: (p, m)`` -> ``(p // 2 + 1, m)``.

    Rows of ``w`` are indexed by the residue ``0..p-1`` (an operand's embedding or its block
    of first-layer weights, one column per neuron). With ``W_k`` the DFT along the residues,
    the energy of frequency ``k`` is ``|W_0|^2`` for ``k = 0``, ``2 |W_k|^2`` for
    ``0 < k < p/2`` and ``|W_{p/2}|^2`` when ``p`` is even, so that the energies of a column
    sum to ``p ||w||^2`` (Parseval); each column is divided by its total. An all-zero column
    gives zeros.

    >>> n = torch.arange(7.0)[:, None]
    >>> fourier_power(torch.cos(2 * torch.pi * 3 * n / 7), 7).squeeze(1).round(decimals=4).tolist()
    [0.0, 0.0, 0.0, 1.0]
    """
    if w.dim() != 2 or w.shape[0] != p:
        raise ValueError(f"expected w: (p={p}, m), got shape {tuple(w.shape)}")
    spec = torch.fft.rfft(w.detach().double(), dim=0).abs() ** 2  # (p // 2 + 1, m)
    weight = torch.full((spec.shape[0], 1), 2.0, dtype=spec.dtype)
    weight[0] = 1.0
    if p % 2 == 0:
        weight[-1] = 1.0
    energy = spec * weight
    return (energy / energy.sum(0).clamp_min(torch.finfo(energy.dtype).tiny)).to(w.dtype)


def ipr(w: torch.Tensor, p: int) -> torch.Tensor:
    """Inverse participation ratio of each neuron's spectrum: ``sum_k nu_k^2`` -> ``(m,)``.

    ``nu = fourier_power(w, p)``. 1 when a neuron uses one frequency (a generalising neuron
    of the modular-arithmetic solution), ``(2p - 1) / p^2 ~ 2/p`` for a spike on one residue
    (flat spectrum), about ``4/p`` for white noise (random energies). Doshi, Das, He & Gromov
    (2024, "To grok or not to grok") use it to tell generalising from memorising neurons.

    >>> n = torch.arange(11.0)[:, None]
    >>> ipr(torch.cat([torch.cos(2 * torch.pi * n / 11), torch.sin(4 * torch.pi * n / 11)], 1), 11)
    tensor([1., 1.])
    """
    return (fourier_power(w, p) ** 2).sum(0)
