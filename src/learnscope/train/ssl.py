"""Self-supervised objectives on augmented views (VICReg, MMCR) and the downstream linear probe.

The model embeds each of a sample's ``V`` views: ``z: (b, V, D)`` (the ``views`` task,
``learnscope.tasks.views``). Evaluation reports, per split, the objective's ``loss`` on the
split's views and ``acc``: the accuracy of a linear probe fitted in closed form on the frozen
embeddings of the *training* split's clean inputs ``x`` (:func:`linear_probe_accuracy`), the
downstream quality that RankMe and LiDAR are meant to predict.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from learnscope.train.base_objective import Objective
from learnscope.train.regularizers import variance_covariance

EVAL_ROWS = 4096  # samples per forward pass when embedding a split


def vicreg_loss(
    z: torch.Tensor, inv: float = 25.0, var: float = 25.0, cov: float = 1.0, eps: float = 1e-4
) -> torch.Tensor:
    """VICReg (Bardes, Ponce & LeCun 2022) on views ``z: (b, V, D)``.

    ``loss = inv * s + var * sum_j v(Z_j) + cov * sum_j c(Z_j)`` with ``s`` the mean over the
    ``V (V - 1) / 2`` pairs of views of the mean squared difference ``||z_i - z_j||^2 / (b D)``,
    ``v(Z) = (1/D) sum_k max(0, 1 - sqrt(Var z_k + eps))`` and
    ``c(Z) = (1/D) sum_{k != l} Cov(Z)_kl^2`` per view ``Z_j: (b, D)``; for ``V = 2`` this is the
    paper's loss (weights 25, 25, 1).

    >>> round(vicreg_loss(torch.zeros(8, 2, 4)).item(), 4)  # collapsed: 2 * 25 * (1 - 0.01)
    49.5
    """
    _, v, _ = z.shape
    pairs = [F.mse_loss(z[:, i], z[:, j]) for i, j in itertools.combinations(range(v), 2)]
    l_var, l_cov = variance_covariance(z, eps)  # each the mean over views
    return inv * torch.stack(pairs).mean() + v * (var * l_var + cov * l_cov)


def mmcr_loss(z: torch.Tensor, local: float = 0.0) -> torch.Tensor:
    """MMCR (Yerxa, Kuang, Simoncelli & Chung 2023, "Learning efficient coding of natural images
    with maximum manifold capacity representations"; ThomasYerxa/mmcr ``loss_mmcr.py``).

    Each view ``z_bj`` of ``z: (b, V, D)`` is normalised to unit length; ``C: (b, D)`` holds the
    centroids ``c_b = mean_j z_bj``; ``loss = local * mean_b ||Z_b||_* - ||C||_*`` with
    ``||.||_*`` the nuclear norm (sum of singular values) and ``Z_b: (V, D)`` sample ``b``'s
    views. For ``b <= D`` at least ``-b``, reached when each sample's views coincide and the
    centroids are orthonormal.

    >>> round(mmcr_loss(torch.eye(3)[:, None].expand(3, 2, 3)).item(), 4)
    -3.0
    """
    z = F.normalize(z, dim=-1)
    loss = -torch.linalg.svdvals(z.mean(1)).sum()
    if local:
        loss = loss + local * torch.linalg.svdvals(z).sum(-1).mean()
    return loss


def linear_probe_accuracy(
    z_fit: torch.Tensor,
    y_fit: torch.Tensor,
    z_eval: torch.Tensor,
    y_eval: torch.Tensor,
    ridge: float = 1e-3,
) -> float:
    """Accuracy on ``(z_eval: (m, D), y_eval: (m,))`` of a ridge-regression classifier fitted
    on ``(z_fit: (n, D), y_fit: (n,))``, in closed form (float64).

    Features are standardised with the fit set's mean and std, a bias column is added; ``W =
    (Z^T Z + ridge n I)^-1 Z^T Y`` for one-hot targets ``Y`` and the prediction is
    ``argmax z W``.

    >>> z = torch.tensor([[0.0], [1.0], [4.0], [5.0]])
    >>> linear_probe_accuracy(z, torch.tensor([0, 0, 1, 1]), z, torch.tensor([0, 0, 1, 1]))
    1.0
    """
    z_fit, z_eval = z_fit.detach().double(), z_eval.detach().double()
    mean, std = z_fit.mean(0), z_fit.std(0).clamp_min(1e-8)

    def features(z: torch.Tensor) -> torch.Tensor:
        z = (z - mean) / std
        return torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype, device=z.device)], 1)

    a = features(z_fit)
    n_classes = int(max(y_fit.max(), y_eval.max())) + 1
    target = F.one_hot(y_fit, n_classes).double()
    gram = a.T @ a + ridge * len(a) * torch.eye(a.shape[1], dtype=a.dtype, device=a.device)
    w = torch.linalg.solve(gram, a.T @ target)
    return float((features(z_eval) @ w).argmax(1).eq(y_eval).double().mean())


class ViewsSSLObjective(Objective):
    """``train.objective: vicreg`` or ``mmcr`` on a ``views`` task; weights from ``train.ssl``."""

    def __init__(self, name: str, ssl) -> None:
        self.name, self.ssl = name, ssl

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Embeddings of the views ``(b, V, dim) -> (b, V, D)`` (the model sees ``b V`` rows)."""
        views = batch["views"]
        b, v = views.shape[:2]
        return model(views.flatten(0, 1)).view(b, v, -1)

    def loss(self, z: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        z = z.float()
        if self.name == "vicreg":
            return vicreg_loss(z, self.ssl.inv, self.ssl.var, self.ssl.cov)
        return mmcr_loss(z, self.ssl.mmcr_local)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        return {"loss": self.loss(self.forward(model, batch), batch).item()}

    @staticmethod
    @torch.no_grad()
    def embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(n, D)`` of clean inputs ``x: (n, dim)``, in chunks."""
        return torch.cat([model(x[i : i + EVAL_ROWS]) for i in range(0, len(x), EVAL_ROWS)])

    @torch.no_grad()
    def evaluate_split(self, model: nn.Module, task, name: str, split) -> dict[str, float]:
        """``loss`` on the split's views (one batch) and ``acc``, the linear probe's accuracy
        on the split (fitted on the training split's embeddings)."""
        train = task.split("train")
        device = split["x"].device
        z_fit = self.embed(model, train["x"].to(device))
        z_eval = z_fit if name == "train" else self.embed(model, split["x"])
        acc = linear_probe_accuracy(z_fit, train["y"].to(device), z_eval, split["y"])
        return {"loss": self.evaluate(model, split.tensors)["loss"], "acc": acc}
