"""Minibatch samplers beyond the shuffled epoch: class-balanced sampling.

``train.sampler: class_balanced`` (a standard baseline of the class-imbalance literature,
e.g. Shwartz-Ziv et al. 2023, "Simplifying neural network training under class imbalance"):
every row of a batch is drawn with replacement, with probability ``1 / (K n_{y_i})`` for row
``i`` (``K`` the number of classes present, ``n_c`` the rows of class ``c``), so each class is
drawn with probability ``1 / K`` and, within a class, every row equally often. A batch of
``B`` rows then holds ``B / K`` rows of each class in expectation.
"""

from __future__ import annotations

import torch


def class_balanced_weights(y: torch.Tensor) -> torch.Tensor:
    """Sampling probability of each row ``(n,)``: ``1 / (K n_{y_i})``; they sum to 1.

    >>> class_balanced_weights(torch.tensor([0, 0, 0, 1])).tolist()
    [0.1666666716337204, 0.1666666716337204, 0.1666666716337204, 0.5]
    """
    counts = torch.bincount(y)
    k = (counts > 0).sum()
    return 1.0 / (k * counts[y]).float()


class ClassBalancedSampler:
    """Draws index batches from a labelled split, each class equally likely (see module)."""

    def __init__(self, y: torch.Tensor) -> None:
        self.weights = class_balanced_weights(y.cpu())

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` row indices ``(n,)``, drawn with replacement."""
        return torch.multinomial(self.weights, n, replacement=True, generator=generator)
