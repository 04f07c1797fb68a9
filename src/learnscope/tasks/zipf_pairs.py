"""Token pairs ``(x, f(x))`` with Zipf-distributed inputs: what an associative memory stores.

Cabannes, Dohmatob & Bietti (2024), "Scaling laws for associative memories": input tokens
``x in 1..N`` (token ids ``0..N-1``) drawn with ``p(x) = x^-alpha / sum_{k<=N} k^-alpha``, and
a fixed random map ``f: [N] -> [M]`` (each ``f(x)`` uniform in ``0..M-1``, drawn once from
the task's seed). The ``train`` split holds ``n_samples`` (the paper's ``T``) i.i.d. draws
``x_t ~ p`` with labels ``f(x_t)``; the ``test`` split holds every input token once, with its
probability ``p`` (a tensor ``p`` beside ``x`` and ``y``), so the paper's error

    E(f_hat) = P_{x ~ p}(f_hat(x) != f(x)) = sum_x p(x) 1[f_hat(x) != f(x)]

is exact (:meth:`ZipfPairsTask.zipf_error`); ``test/acc`` (a mean over the rows) is the
unweighted fraction of tokens recalled.

>>> task = make_task("zipf_pairs", n_tokens=100, n_outputs=10, alpha=2.0, n_samples=50)
>>> len(task.split("train")), len(task.split("test")), round(float(task.probs.sum()), 6)
(50, 100, 1.0)
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from learnscope.tasks.base import ClassificationParams, Split, Task, make_task

__all__ = ["ZipfPairsParams", "ZipfPairsTask", "make_task", "zipf_probs", "unseen_mass"]


class ZipfPairsParams(ClassificationParams):
    n_tokens: int = Field(1000, ge=2, le=10**6, description="input tokens N")
    n_outputs: int = Field(1000, ge=2, le=10**6, description="output tokens M")
    alpha: float = Field(2.0, gt=1, le=10, description="Zipf exponent: p(x) ~ x^-alpha")
    n_samples: int = Field(1000, ge=1, le=10**7, description="training samples T")


def zipf_probs(n: int, alpha: float) -> torch.Tensor:
    """``p(x) = x^-alpha / sum_{k<=n} k^-alpha`` for ``x = 1..n``, ``(n,)`` float64.

    >>> [round(v * 11, 12) for v in zipf_probs(3, 1.0).tolist()]
    [6.0, 3.0, 2.0]
    """
    w = torch.arange(1, n + 1, dtype=torch.float64) ** -float(alpha)
    return w / w.sum()


def unseen_mass(p: torch.Tensor, t: int) -> float:
    """The expected Zipf mass of the tokens not seen in ``t`` i.i.d. draws: ``sum_x p(x) (1 -
    p(x))^t``. For ``p(x) ~ x^-alpha`` it scales as ``t^-(1 - 1/alpha)`` (the tokens beyond
    ``x ~ t^(1/alpha)`` are unseen; Cabannes et al. 2024, the data-limited rate).

    >>> unseen_mass(torch.tensor([0.5, 0.5]), 1)
    0.5
    """
    p = p.double()
    return float((p * (1 - p) ** t).sum())


class ZipfPairsTask(Task):
    """``n_samples`` draws ``(x, f(x))``, ``x ~ Zipf(alpha)`` on ``N`` tokens; test: every token."""

    name = "zipf_pairs"
    Params = ZipfPairsParams
    kind = "classification"

    def __init__(self, params: ZipfPairsParams) -> None:
        super().__init__(params)
        rng = np.random.default_rng(params.seed)
        n, m = params.n_tokens, params.n_outputs
        self.targets = torch.from_numpy(rng.integers(0, m, size=n))  # f: (N,)
        self.probs = zipf_probs(n, params.alpha)  # p: (N,)
        x = torch.from_numpy(rng.choice(n, size=params.n_samples, p=self.probs.numpy()))
        self.counts = torch.bincount(x, minlength=n)  # samples per token
        every = torch.arange(n)
        self.splits = {
            "train": Split({"x": x[:, None], "y": self.targets[x]}),
            "test": Split({"x": every[:, None], "y": self.targets, "p": self.probs.float()}),
        }

    def model_dims(self) -> dict[str, int]:
        return {"n_inputs": 1, "vocab": self.params.n_tokens, "n_out": self.params.n_outputs}

    def score(self, predictions: torch.Tensor, split: str) -> float:
        y = self.split(split)["y"]
        return (predictions.to(y.device) == y).float().mean().item()

    def zipf_error(self, predictions: torch.Tensor) -> float:
        """``sum_x p(x) 1[pred(x) != f(x)]`` for predictions of every token ``(N,)``."""
        wrong = (predictions.cpu() != self.targets).double()
        return float((self.probs * wrong).sum())

    def seen_mass(self) -> float:
        """The Zipf mass of the tokens the training split holds."""
        return float(self.probs[self.counts > 0].sum())
