"""Neural collapse: how tightly the samples of a class gather around their class mean."""

from __future__ import annotations

import torch


def _class_means(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means ``(C, d)`` of the classes present and each row's class index ``(n,)``."""
    if z.dim() != 2 or y.shape != z.shape[:1]:
        raise ValueError(f"expected z: (n, d) and y: (n,), got {tuple(z.shape)}, {tuple(y.shape)}")
    classes, index = torch.unique(y, return_inverse=True)
    sums = torch.zeros(len(classes), z.shape[1], dtype=z.dtype).index_add_(0, index, z)
    counts = torch.bincount(index, minlength=len(classes)).to(z.dtype)
    return sums / counts[:, None], index


def nc1(z: torch.Tensor, y: torch.Tensor) -> float:
    """Neural collapse NC1 of features ``z: (n, d)`` with labels ``y: (n,)``.

    ``NC1 = tr(S_W S_B^+) / C`` (Papyan, Han & Donoho 2020), with the within-class covariance
    ``S_W = (1/N) sum_i (z_i - mu_{y_i})(z_i - mu_{y_i})^T``, the between-class covariance
    ``S_B = (1/C) sum_c (mu_c - mu_G)(mu_c - mu_G)^T`` about the global mean ``mu_G`` of all
    samples, ``^+`` the pseudo-inverse and ``C`` the number of classes present. 0 when every
    sample sits on its class mean.

    >>> z = torch.tensor([[-2.0], [-2.0], [2.0], [2.0]])
    >>> nc1(z, torch.tensor([0, 0, 1, 1]))
    0.0
    """
    z = z.detach().double()
    means, index = _class_means(z, y)
    c = len(means)
    within = z - means[index]
    s_w = within.T @ within / len(z)
    between = means - z.mean(0)
    s_b = between.T @ between / c
    return float(torch.trace(s_w @ torch.linalg.pinv(s_b, hermitian=True)) / c)


def ncc_accuracy(z: torch.Tensor, y: torch.Tensor) -> float:
    """Nearest class-centre accuracy: the fraction of rows of ``z: (n, d)`` whose nearest
    class mean (Euclidean, means from ``z, y`` themselves) is their own class's
    (Ben-Shaul, Shwartz-Ziv, Galanti, Dekel & LeCun 2023, "Reverse engineering SSL").

    >>> ncc_accuracy(torch.tensor([[0.0], [0.2], [1.0], [0.3]]), torch.tensor([0, 0, 1, 1]))
    0.75
    """
    z = z.detach().double()
    means, index = _class_means(z, y)
    return float((torch.cdist(z, means).argmin(1) == index).double().mean())
