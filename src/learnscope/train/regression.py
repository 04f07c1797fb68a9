"""The objective of regression tasks (``kind = "regression"``, e.g. ``learnscope.tasks.teacher``).

The model maps ``x: (b, d)`` to ``f: (b, 1)`` (or ``(b,)``); the loss is the mean squared error
``L = (1/b) sum_i (f(x_i) - y_i)^2`` (no 1/2: the test loss is then the excess risk that the
closed forms of ridgeless regression give, Advani & Saxe 2017, Belkin, Hsu & Xu 2019).
``acc`` is the fraction of rows with ``|f(x_i) - y_i| <= tolerance`` (the task's), an exact
answer up to that tolerance.
"""

from __future__ import annotations

import torch
from torch import nn

from learnscope.errors import UserError
from learnscope.train.base_objective import Objective


class RegressionObjective(Objective):
    """Mean squared error of a real output against ``y: (b,)`` float targets.

    >>> obj = RegressionObjective("mse", tolerance=0.5)
    >>> net = nn.Linear(1, 1, bias=False)
    >>> _ = net.weight.data.fill_(2.0)
    >>> obj.evaluate(net, {"x": torch.tensor([[1.0], [2.0]]), "y": torch.tensor([2.0, 3.0])})
    {'loss': 0.5, 'acc': 0.5}
    """

    def __init__(self, loss: str = "mse", tolerance: float = 0.1) -> None:
        if loss != "mse":
            raise UserError(
                f"train.loss: a regression task trains on mse (got {loss!r}); allowed: mse"
            )
        self.tolerance = tolerance

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["x"])

    def loss(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        y = batch["y"]
        return (out.reshape(y.shape) - y).pow(2).mean()

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Mean squared error and the fraction of rows within ``tolerance`` (one batch)."""
        y = batch["y"]
        err = self.forward(model, batch).reshape(y.shape) - y
        return {
            "loss": err.pow(2).mean().item(),
            "acc": (err.abs() <= self.tolerance).float().mean().item(),
        }
