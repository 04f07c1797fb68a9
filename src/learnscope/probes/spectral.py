"""Fourier spectrum of weights indexed by a residue, and the inverse participation ratio."""

from __future__ import annotations

import torch

from learnscope.number_theory import primitive_root


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


#: The Fourier basis each modular operation's solutions are sparse in: the additive group
#: ``Z_p`` for ``add``/``sub``, the multiplicative group (residues ``1..p-1`` indexed by their
#: discrete logarithm, a cyclic group of order ``p - 1``) for ``mul``/``div`` (Doshi, Das &
#: Gromov 2024, "Grokking modular polynomials").
BASES = {"add": "add", "sub": "add", "mul": "mul", "div": "mul"}


def basis_for(op: str | None) -> str:
    """``"mul"`` for ``mul``/``div``, else ``"add"``.

    >>> basis_for("div"), basis_for("add"), basis_for(None)
    ('mul', 'add', 'add')
    """
    return BASES.get(op or "add", "add")


def basis_name(basis: str) -> str:
    """How a report or a log names the basis."""
    if basis == "mul":
        return "the discrete-log basis (residues 1..p-1 as g^0, g^1, ...; 0 left out)"
    return "the Fourier basis of Z_p"


def residue_order(p: int, basis: str = "add") -> torch.Tensor:
    """The residues in the order a basis reads them: ``0..p-1`` (``add``), or ``g^0, g^1,
    ..., g^(p-2)`` for the primitive root ``g`` (``mul``: a function of the discrete log).

    >>> residue_order(7, "mul").tolist()  # g = 3
    [1, 3, 2, 6, 4, 5]
    """
    if basis == "add":
        return torch.arange(p)
    if basis != "mul":
        raise ValueError(f"basis must be 'add' or 'mul' (got {basis!r})")
    g = primitive_root(p)
    return torch.tensor([pow(g, t, p) for t in range(p - 1)])


def residue_weight(
    w: torch.Tensor, residue_rows: list[int] | None, n_tokens: int | None
) -> torch.Tensor:
    """``w`` as a weight read by residues. An embedding or unembedding of a sequence task, one
    row per token ``(n_tokens, d)``, gives the rows of the p number tokens ``residue_rows``,
    transposed ``(d, p)`` (one block, whatever ``d``); any other weight is returned as is.

    >>> residue_weight(torch.arange(12.0).view(6, 2), [2, 3, 4], 6).tolist()
    [[4.0, 6.0, 8.0], [5.0, 7.0, 9.0]]
    """
    if residue_rows is not None and w.dim() == 2 and w.shape[0] == n_tokens:
        return w[residue_rows].T
    return w


def residue_blocks(w: torch.Tensor, p: int, basis: str = "add") -> list[torch.Tensor]:
    """A weight matrix as ``(n, m)`` blocks whose rows are indexed by a residue, in the order
    of :func:`residue_order` (``n = p``; ``p - 1`` for ``basis="mul"``).

    A layer's weight ``(out, k * p)`` reading one-hot operands gives its ``k`` input blocks,
    transposed (one column per neuron); otherwise a matrix ``(k * p, m)`` (an embedding table,
    the last layer's ``(p, width)``) gives its ``k`` row blocks. Anything else: ValueError.

    >>> [tuple(b.shape) for b in residue_blocks(torch.zeros(8, 2 * 5), 5)]
    [(5, 8), (5, 8)]
    >>> [tuple(b.shape) for b in residue_blocks(torch.zeros(8, 2 * 5), 5, "mul")]
    [(4, 8), (4, 8)]
    """
    if w.dim() == 2 and w.shape[1] % p == 0:
        blocks = [w[:, i * p : (i + 1) * p].T for i in range(w.shape[1] // p)]
    elif w.dim() == 2 and w.shape[0] % p == 0:
        blocks = [w[i * p : (i + 1) * p] for i in range(w.shape[0] // p)]
    else:
        raise ValueError(f"weight of shape {tuple(w.shape)} has no axis of a multiple of p={p}")
    if basis == "add":
        return blocks
    order = residue_order(p, basis).to(w.device)
    return [b[order] for b in blocks]


def neuron_ipr(w: torch.Tensor, p: int, basis: str = "add") -> torch.Tensor:
    """IPR of each neuron of a weight read by residues, ``(m,)``: the mean of :func:`ipr` over
    the weight's :func:`residue_blocks` (the operands' blocks of a first layer, the rows of an
    embedding). Doshi, Das, He & Gromov (2024) score a neuron by the mean over its blocks.
    ``basis="mul"`` reads each block over the discrete logarithm (:func:`residue_order`),
    where the networks that solve multiplication are Fourier-sparse.

    >>> n = torch.arange(5.0)
    >>> w = torch.cos(2 * torch.pi * torch.cat([n, n]) / 5)[None]  # one neuron, both operands
    >>> neuron_ipr(w, 5)
    tensor([1.])
    """
    blocks = residue_blocks(w, p, basis)
    n = blocks[0].shape[0]
    return ipr(torch.cat(blocks, 1), n).view(len(blocks), -1).mean(0)


def block_power(w: torch.Tensor, p: int, basis: str = "add") -> torch.Tensor:
    """The mean over :func:`residue_blocks` of :func:`fourier_power`: ``(n // 2 + 1, m)``,
    one column per neuron (``n = p``, or ``p - 1`` in the ``mul`` basis)."""
    blocks = residue_blocks(w, p, basis)
    return torch.stack([fourier_power(b, b.shape[0]) for b in blocks]).mean(0)


def frequency_profile(
    weight: torch.Tensor, p: int, op: str = "add"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per first-layer neuron: its IPR and its dominant frequency, from ``weight: (width,
    n_inputs * p)`` (``layers.0.linear.weight`` of an analytic or a trained network).

    Each operand block ``weight[:, j*p:(j+1)*p]`` is read as a function on ``Z_p`` (for
    ``op="mul"`` or ``"div"``: residues ``1..p-1`` in the order ``g^0, g^1, ...``, a function on
    ``Z_(p-1)``, and residue 0 is left out). Its spectrum is
    :func:`fourier_power`; the IPR ``sum_k nu_k^2`` is averaged over
    the blocks (1 for a single frequency, ``~2/p`` for a flat spectrum; ``> 0.5`` is the usual
    "single-frequency" cut) and the dominant frequency is the argmax of the summed spectra.
    Returns ``ipr: (width,)`` and ``freq: (width,)`` int64. A neuron with no weight in the
    basis (the ``mul`` zero neuron) has IPR 0.
    """
    if weight.dim() != 2 or weight.shape[1] % p or weight.shape[1] == 0:
        raise ValueError(f"expected weight: (width, n_inputs * {p}), got {tuple(weight.shape)}")
    weight, n_inputs = weight.detach().cpu(), weight.shape[1] // p
    order = residue_order(p, basis_for(op))
    power = torch.stack(
        [
            fourier_power(weight[:, j * p : (j + 1) * p][:, order].T, len(order))
            for j in range(n_inputs)
        ]
    )  # (n_inputs, n_freq, width)
    ipr = (power.double() ** 2).sum(1).mean(0)
    return ipr.to(weight.dtype), power.sum(0).argmax(0)
