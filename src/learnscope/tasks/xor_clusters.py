"""XOR clusters: four Gaussian clusters in high dimension labelled by XOR, with flipped labels.

The data of Xu, Wang, Frei, Vardi & Hu (ICLR 2024, "Benign overfitting and grokking in ReLU
networks for XOR cluster data"). Seeded from ``seed``: two orthonormal directions ``u1, u2`` of
``R^dim`` (a QR of a Gaussian matrix) and the cluster means ``mu1 = mu * u1``, ``mu2 = mu *
u2`` (orthogonal, of equal norm ``mu``). An example picks one of the four clusters ``+mu1,
-mu1, +mu2, -mu2`` uniformly and is

    x = cluster mean + xi,   xi ~ N(0, sigma^2 I_dim)

with the label ``y = 0`` for ``+-mu1`` and ``y = 1`` for ``+-mu2``: in the coordinates
``(s1, s2)`` of the cluster (``s_i`` in {-1, 0, +1}) the label is an XOR, so no linear
classifier does better than chance. Labels are flipped by the ``label_noise`` every
classification task has (:meth:`learnscope.tasks.base.Task.add_label_noise`: exactly
``round(label_noise * n_train)`` training rows, a seeded choice; the paper's label-flip rate
``eta``); the test split stays clean. Rows: ``x: (n, dim)`` float32, ``y: (n,)`` int64.

Splits: ``train`` (labels as trained on, flipped ones included), ``test`` (clean), and with
``label_noise > 0`` ``train_noisy`` (the flipped rows: ``y`` the flipped label, ``y_true``
the true one, so the run reports ``train_noisy/acc``, the flipped labels fitted, and
``train_noisy/true_acc``).

Bayes accuracy (:meth:`XorClustersTask.bayes_accuracy`, closed form). With equal priors and
equal norms, ``p(x | y=0) ∝ cosh(<x, mu1> / sigma^2)``, so the Bayes rule predicts 0 iff
``|<x, mu1>| > |<x, mu2>|``. For ``x`` from ``+mu1``, with ``a = mu / sigma`` and ``z1, z2``
independent N(0, 1), it is right iff ``|a + z1| > |z2|``, i.e. iff ``(a + z1 - z2)`` and
``(a + z1 + z2)`` have the same sign; these are independent ``N(a, 2)``, so

    Bayes accuracy (clean labels) = B(a) = Phi(a / sqrt 2)^2 + Phi(-a / sqrt 2)^2

(0.5 at ``a = 0``, -> 1 as ``a`` grows). Against labels flipped at rate ``eta < 1/2`` it is
``(1 - eta) B + eta (1 - B)``.

>>> task = make_task("xor_clusters", dim=50, mu=4.0, n_train=20, n_test=10, label_noise=0.1)
>>> task.split("train")["x"].shape, len(task.split("train_noisy")), task.model_dims()
(torch.Size([20, 50]), 2, {'n_inputs': 50, 'embed': 'none', 'n_out': 2})
>>> round(task.bayes_accuracy(), 4)
0.9953
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from learnscope.tasks.base import ClassificationParams, Split, Task, make_task

__all__ = ["XorClustersParams", "XorClustersTask", "bayes_accuracy", "make_task"]


def bayes_accuracy(a: float, eta: float = 0.0) -> float:
    """Accuracy of the Bayes rule on XOR clusters at signal-to-noise ``a = mu / sigma``,
    against labels flipped at rate ``eta`` (module docstring):
    ``B = Phi(a / sqrt 2)^2 + Phi(-a / sqrt 2)^2``, then ``(1 - eta) B + eta (1 - B)``.

    >>> bayes_accuracy(0.0), round(bayes_accuracy(10.0), 6), round(bayes_accuracy(10.0, 0.2), 6)
    (0.5, 1.0, 0.8)
    """
    phi = 0.5 * (1 + math.erf(a / 2))  # Phi(a / sqrt 2) = (1 + erf(a / 2)) / 2
    b = phi**2 + (1 - phi) ** 2
    return (1 - eta) * b + eta * (1 - b)


class XorClustersParams(ClassificationParams):
    dim: int = Field(1000, ge=2, le=100_000, description="input dimension p")
    mu: float = Field(6.0, ge=0, le=1e4, description="norm of each cluster mean")
    sigma: float = Field(1.0, gt=0, le=1e4, description="std of each noise coordinate")
    n_train: int = Field(200, ge=2, le=10**6)
    n_test: int = Field(1000, ge=1, le=10**6)


class XorClustersTask(Task):
    """Four Gaussian clusters at ``+-mu1, +-mu2`` labelled by XOR, training labels flipped."""

    name = "xor_clusters"
    Params = XorClustersParams
    kind = "classification"
    params: XorClustersParams

    def __init__(self, params: XorClustersParams) -> None:
        super().__init__(params)
        g = torch.Generator().manual_seed(params.seed)
        q, _ = torch.linalg.qr(torch.randn(params.dim, 2, generator=g, dtype=torch.float64))
        self.means = (params.mu * q.T).float()  # (2, dim): mu1, mu2
        self.splits = {"train": self._draw(params.n_train, g), "test": self._draw(params.n_test, g)}

    def _draw(self, n: int, g: torch.Generator) -> Split:
        """``n`` rows: a cluster per row (which mean, which sign), then Gaussian noise."""
        p = self.params
        y = torch.randint(0, 2, (n,), generator=g)
        sign = torch.randint(0, 2, (n, 1), generator=g).float() * 2 - 1
        xi = torch.randn(n, p.dim, generator=g) * p.sigma
        return Split({"x": sign * self.means[y] + xi, "y": y})

    def bayes_accuracy(self, eta: float = 0.0) -> float:
        """The Bayes rule's accuracy in closed form (:func:`bayes_accuracy`) at this task's
        ``mu / sigma``: on clean labels (``eta = 0``, the test split) or flipped at ``eta``."""
        return bayes_accuracy(self.params.mu / self.params.sigma, eta)

    def bayes_rule(self, x: torch.Tensor) -> torch.Tensor:
        """The Bayes rule's predictions ``1[|<x, mu2>| > |<x, mu1>|]``; ``x: (n, dim)``."""
        proj = (x @ self.means.T).abs()  # (n, 2)
        return (proj[:, 1] > proj[:, 0]).long()

    def model_dims(self) -> dict[str, int]:
        return {"n_inputs": self.params.dim, "embed": "none", "n_out": 2}

    def score(self, predictions: torch.Tensor, split: str) -> float:
        y = self.split(split)["y"]
        return (predictions.to(y.device) == y).float().mean().item()
