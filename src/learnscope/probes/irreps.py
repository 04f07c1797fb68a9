"""How much of a weight read by group elements lies in each irreducible representation.

Chughtai, Chan & Nanda (2023), "A toy model of universality: reverse engineering how networks
learn group operations": a network trained on a group's composition table embeds each element
``g`` through the matrix elements of a few irreducible representations ``rho(g)``; they
measure the fraction of the embeddings' variance that each irrep's matrix elements explain.

Here the same fraction is computed with characters only (no irrep matrices needed). A weight
``w`` whose rows are indexed by the group's elements, ``(|G|, m)`` (an embedding table, one
operand's block of a first layer that reads one-hot elements, transposed) is a set of ``m``
functions ``G -> R``. The regular representation splits ``R^G`` into isotypic components, one
per irreducible character ``chi`` (of degree ``d``), the span of the matrix elements ``g ->
rho(g)_ij`` (dimension ``d^2``), with the orthogonal projector
``P_chi[g, g'] = (d / |G|) chi(g g'^-1)`` (:func:`learnscope.groups.isotypic_projectors`).
The power of ``chi`` is

    power_chi(w) = ||P_chi w||_F^2 / ||w||_F^2 = tr(w^T P_chi w) / ||w||_F^2,

summed over the weight's blocks of ``|G|`` rows (both operands' blocks of a first layer).
The powers are in ``[0, 1]`` and sum to 1 over the characters; an embedding built from the
matrix elements of one irrep has power 1 in it; a random embedding has about ``d^2 / |G|`` in
each (``S_4``: 1/24, 1/24, 4/24, 9/24, 9/24 for ``1a, 1b, 2a, 3a, 3b``). ``1a`` (the trivial
character) is the mean over the elements.
"""

from __future__ import annotations

import numpy as np
import torch

from learnscope.errors import UserError
from learnscope.groups import GROUP_NAMES, isotypic_projectors, make_group
from learnscope.probes.spectral import residue_blocks


def irrep_power(w: torch.Tensor, group: str) -> dict[str, float]:
    """Per irreducible character of ``group`` (named like ``1a``, ``3b``: degree and letter),
    the fraction of ``||w||_F^2`` in its isotypic component (module docstring); ``w``: a
    ``(|G|, m)`` matrix, or any weight with an axis of ``k |G|`` read as ``k`` blocks
    (:func:`~learnscope.probes.spectral.residue_blocks`). An all-zero ``w`` gives zeros.

    >>> g = make_group("S3")
    >>> sign = torch.tensor([[1.0 - 2 * _odd(p)] for p in g.elements])  # the sign character
    >>> {k: round(v, 6) for k, v in irrep_power(sign, "S3").items()}
    {'1a': 0.0, '1b': 1.0, '2a': 0.0}
    """
    g = make_group(group)
    projectors, names = isotypic_projectors(g)
    blocks = [b.detach().double().cpu().numpy() for b in residue_blocks(w, g.order)]
    stacked = np.concatenate(blocks, axis=1)  # (|G|, k m): the blocks' columns side by side
    total = float((stacked**2).sum())
    if total == 0:
        return dict.fromkeys(names, 0.0)
    power = np.einsum("gm,rgh,hm->r", stacked, projectors, stacked).real / total
    return {name: float(v) for name, v in zip(names, power)}


def top_power(powers: dict[str, float], k: int) -> float:
    """The sum of the ``k`` largest powers: how concentrated the weight is on ``k`` irreps.

    >>> top_power({"1a": 0.125, "2a": 0.25, "3a": 0.625}, 2)
    0.875
    """
    return float(sum(sorted(powers.values(), reverse=True)[:k]))


def check_irrep_options(options: dict, weights: list[torch.Tensor], where: str) -> None:
    """A :class:`UserError` naming the option unless ``group`` names a group and every weight
    has an axis of a multiple of ``|G|`` (rows read by the group's elements)."""
    if options.get("group") is None:
        raise UserError(f"{where}.group: irrep_power needs the group; allowed: {GROUP_NAMES}")
    try:
        order = make_group(str(options["group"])).order
    except ValueError as err:
        raise UserError(f"{where}.group: {err}") from None
    for w in weights:
        try:
            residue_blocks(w, order)
        except ValueError as err:
            raise UserError(f"{where}.sites: irrep_power: {err} (|G| = {order})") from None


def _odd(p: tuple[int, ...]) -> int:
    return sum(p[i] > p[j] for i in range(len(p)) for j in range(i + 1, len(p))) % 2
