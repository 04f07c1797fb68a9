"""Rank and entropy of representations: how many directions a batch of activations uses.

All functions take ``z: (n, d)`` (rows are samples) unless stated, compute in float64 and
return Python floats. Natural logarithms throughout; ``0 log 0 = 0``.
"""

from __future__ import annotations

import torch


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy ``-sum p log p`` with ``0 log 0 = 0``."""
    return -torch.special.xlogy(p, p).sum()


def _singular_values(z: torch.Tensor) -> torch.Tensor:
    """Singular values of ``z`` in float64, largest first; all NaN if ``z`` is not finite.

    Computed as the square roots of the eigenvalues of the smaller Gram matrix (``z z^T`` or
    ``z^T z``), several times faster than an SVD. Eigenvalues below ``min(n, d) * eps64``
    times the largest are rounding noise and set to 0, so a rank-``k`` matrix has exactly
    ``k`` non-zero values; the others are accurate to about ``1e-8`` of the largest, which
    moves an entropy of ``p = s / sum(s)`` by less than ``1e-6``.
    """
    if z.dim() != 2:
        raise ValueError(f"expected z: (n, d), got shape {tuple(z.shape)}")
    z = z.detach().double()
    if not torch.isfinite(z).all():
        return torch.full((min(z.shape),), float("nan"), dtype=z.dtype, device=z.device)
    gram = z @ z.T if z.shape[0] <= z.shape[1] else z.T @ z
    lam = torch.linalg.eigvalsh(gram).flip(0)
    lam = torch.where(lam > lam[0] * min(z.shape) * torch.finfo(lam.dtype).eps, lam, 0.0)
    return lam.sqrt()


def effective_rank(z: torch.Tensor, eps: float = 1e-12) -> float:
    """Effective rank of ``z: (n, d)`` (Roy & Vetterli 2007).

    With ``s`` the singular values of ``z`` (not centred), ``p_k = s_k / sum_j s_j`` and
    ``erank(z) = exp(-sum_k p_k log p_k)``, a real number in ``[1, min(n, d)]``: ``d`` for any
    multiple of an orthogonal matrix, at most ``k`` for a matrix of rank ``k``. An all-zero
    ``z`` (``sum s < eps``) has effective rank 0, like its rank.

    >>> effective_rank(torch.eye(4))
    4.0
    >>> round(effective_rank(torch.ones(5, 3)), 6)
    1.0
    """
    s = _singular_values(z)
    if s.sum() < eps:
        return 0.0
    p = s / s.sum()
    return float(torch.exp(_entropy(p)))


def rankme(z: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe of embeddings ``z: (n, d)`` (Garrido, Balestriero, Najman & LeCun 2023).

    ``p_k = s_k / sum_j s_j + eps`` with ``s`` the singular values of ``z``, and
    ``RankMe(z) = exp(-sum_k p_k log p_k)``: the effective rank with the paper's smoothing.

    >>> round(rankme(torch.eye(8)), 4)
    8.0
    """
    s = _singular_values(z)
    p = s / s.sum() + eps
    return float(torch.exp(_entropy(p)))


def matrix_entropy(z: torch.Tensor, alpha: float = 1.0) -> float:
    """Rényi matrix entropy of the Gram matrix ``K = z z^T`` of ``z: (n, d)``.

    With ``l_i`` the eigenvalues of ``K / tr(K)`` (``z`` neither centred nor normalised),
    ``S_alpha = log(sum_i l_i^alpha) / (1 - alpha)`` and, at ``alpha = 1``, the Shannon limit
    ``S_1 = -sum_i l_i log l_i``. ``log n`` for ``n`` orthonormal rows, 0 for rank one. Used
    by Seq-VCR (Arefin et al. 2024) to show representation collapse across layers. The
    non-zero eigenvalues of ``K`` are the squared singular values of ``z``.

    >>> round(matrix_entropy(torch.eye(3)), 6) == round(float(torch.log(torch.tensor(3.0))), 6)
    True
    """
    s2 = _singular_values(z) ** 2
    lam = s2 / s2.sum()
    if alpha == 1.0:
        return float(_entropy(lam))
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0 (got {alpha})")
    lam = lam[lam > 0]
    return float(torch.log((lam**alpha).sum()) / (1.0 - alpha))


def lidar(z: torch.Tensor, delta: float = 1e-4, eps: float = 1e-8) -> float:
    """LiDAR of ``z: (n, q, d)``: ``n`` surrogate classes with ``q`` views each
    (Thilak et al. 2023, "LiDAR: Sensing linear probing performance").

    Class means ``mu_i``, grand mean ``mu``;
    ``S_b = sum_i (mu_i - mu)(mu_i - mu)^T / (n - 1)``,
    ``S_w = sum_ij (z_ij - mu_i)(z_ij - mu_i)^T / (n (q - 1)) + delta I``,
    ``S = S_w^{-1/2} S_b S_w^{-1/2}`` with eigenvalues ``l``; ``p_k = l_k / sum(l) + eps``
    and ``LiDAR = exp(-sum_k p_k log p_k)``: the effective rank of the linear discriminant
    directions. Needs ``n >= 2`` and ``q >= 2``.

    >>> g = torch.Generator().manual_seed(0)
    >>> means = torch.zeros(200, 1, 6)
    >>> means[:, 0, :2] = 10 * torch.randn(200, 2, generator=g)
    >>> round(lidar(means + torch.randn(200, 4, 6, generator=g)))
    2
    """
    if z.dim() != 3 or z.shape[0] < 2 or z.shape[1] < 2:
        raise ValueError(f"expected z: (n >= 2, q >= 2, d), got shape {tuple(z.shape)}")
    z = z.detach().double()
    n, q, d = z.shape
    mu_i = z.mean(1)  # (n, d)
    between = mu_i - mu_i.mean(0)
    s_b = between.T @ between / (n - 1)
    within = (z - mu_i[:, None]).reshape(n * q, d)
    s_w = within.T @ within / (n * (q - 1)) + delta * torch.eye(d, dtype=z.dtype)
    w, v = torch.linalg.eigh(s_w)
    s_w_inv_sqrt = (v * w.rsqrt()) @ v.T
    lam = torch.linalg.eigvalsh(s_w_inv_sqrt @ s_b @ s_w_inv_sqrt).clamp_min(0)
    p = lam / lam.sum() + eps
    return float(torch.exp(_entropy(p)))


def mmcr(z: torch.Tensor) -> float:
    """Nuclear norm of the centroid matrix of ``z: (n, q, d)``, ``n`` samples with ``q`` views
    each (Yerxa, Kuang, Simoncelli & Chung 2023, "Learning efficient coding of natural images
    with maximum manifold capacity representations"; Schaeffer et al. 2024, "Towards an
    improved understanding and utilization of MMCR").

    Each view is normalised to unit length, ``c_i = (1/q) sum_j z_ij / ||z_ij||`` and
    ``MMCR = ||C||_* = sum_k s_k(C)`` for ``C: (n, d)``: the quantity the MMCR objective
    maximises. Every centroid has norm at most 1, so ``MMCR <= sqrt(min(n, d) n)``; for
    ``n <= d`` that is ``n``, reached when each sample's views coincide and the centroids are
    orthonormal. 0 when every centroid is 0 (views in opposite directions).

    >>> round(mmcr(3 * torch.eye(4)[:, None].expand(4, 5, 4)), 6)
    4.0
    """
    if z.dim() != 3:
        raise ValueError(f"expected z: (n, q, d), got shape {tuple(z.shape)}")
    z = torch.nn.functional.normalize(z.detach().double(), dim=-1)
    return float(_singular_values(z.mean(1)).sum())


def threshold_rank(z: torch.Tensor, threshold: float) -> float:
    """The number of singular values of ``z: (n, d)`` above ``threshold`` times the largest
    (0 for an all-zero ``z``): the rank as counted by Boix-Adsera et al. (2023) and by
    :func:`~learnscope.probes.jacobian.local_rank`.

    >>> threshold_rank(torch.diag(torch.tensor([1.0, 0.5, 0.01])), 0.1)
    2.0
    """
    s = _singular_values(z)
    if not s[0] > 0:
        return 0.0
    return float((s > threshold * s[0]).sum())


def incremental_rank(w: torch.Tensor, w0: torch.Tensor, threshold: float = 0.0) -> float:
    """Effective rank of the update ``w - w0`` of a weight matrix since initialisation; with
    ``threshold > 0``, the number of its singular values above ``threshold`` times the largest
    (:func:`threshold_rank`).

    Boix-Adsera, Littwin, Abbe, Bengio & Susskind (2023), "Transformers learn through gradual
    rank increase": from a small initialisation the difference between trained and initial
    weights grows in rank step by step. See :func:`effective_rank`.

    >>> w0 = torch.zeros(4, 4)
    >>> incremental_rank(w0 + torch.diag(torch.tensor([1.0, 1.0, 0.0, 0.0])), w0)
    2.0
    """
    delta = w.detach() - w0.detach().to(w.device)
    return threshold_rank(delta, threshold) if threshold > 0 else effective_rank(delta)
