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


def head_uas(pattern: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
    """Unlabelled attachment score of each head read as a parser, ``(h,)``.

    ``pattern: (b, h, T, T)`` attention probabilities (query, key), ``parents: (b, T)`` the
    position of each token's syntactic head (``-1``: the root or padding, not scored). A head
    attaches token ``i`` to ``argmax_j A[i, j]`` (Clark et al. 2019, "What does BERT look
    at?"); ``UAS_h`` is the fraction of dependency edges ``(i, parent(i))`` it gets right. A
    tie among ``k`` maxima that includes the parent counts ``1 / k`` (the expected score of a
    random tie-break), so uniform attention over ``T`` keys scores exactly ``1 / T``.

    >>> parents = torch.tensor([[1, -1, 1]])
    >>> gold = torch.zeros(1, 1, 3, 3); gold[0, 0, [0, 2], [1, 1]] = 1.0
    >>> head_uas(gold, parents).tolist(), head_uas(torch.full((1, 1, 3, 3), 1 / 3), parents)
    ([1.0], tensor([0.3333]))
    """
    if pattern.dim() != 4 or parents.shape != (pattern.shape[0], pattern.shape[2]):
        raise ValueError(
            f"expected pattern (b, h, T, T) and parents (b, T), got {tuple(pattern.shape)} "
            f"and {tuple(parents.shape)}"
        )
    p = pattern.detach().double()
    edge = parents >= 0  # (b, T)
    top = p == p.max(-1, keepdim=True).values  # (b, h, T, T): the maxima of each row
    at_parent = top.gather(-1, parents.clamp(min=0)[:, None, :, None].expand(-1, p.shape[1], -1, 1))
    score = at_parent[..., 0] / top.sum(-1)  # (b, h, T): 1/k if the parent is among k maxima
    n = edge.sum().clamp(min=1)
    return ((score * edge[:, None]).sum((0, 2)) / n).to(pattern.dtype)


def sas(patterns: list[torch.Tensor], parents: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Syntactic attention structure (Chen et al. 2024, "Sudden drops in the loss"): the best
    head's unlabelled attachment score, ``SAS = max over layers l and heads h of UAS_{l,h}``
    (:func:`head_uas`), and the per-head scores ``(L, h)``.

    Chen et al. take, per dependency relation, the head that best predicts it and average
    over relations; our toy grammar's trees are unlabelled, so one best head over all edges.
    Attention equal to the gold parent map gives 1; uniform attention gives ``1 / T``.

    >>> parents = torch.tensor([[2, 2, -1, 2]])
    >>> value, per_head = sas([torch.full((1, 2, 4, 4), 0.25)], parents)
    >>> value, tuple(per_head.shape)
    (0.25, (1, 2))
    """
    per_head = torch.stack([head_uas(p, parents) for p in patterns])
    return float(per_head.max()), per_head
