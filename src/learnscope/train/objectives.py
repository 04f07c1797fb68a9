"""What a batch's loss and accuracy are, for each kind of task.

The trainer does not know about labels, masks or decoding: it asks the objective of the
task's ``kind``. ``classification``: the model maps ``x`` to logits ``(b, C)``; the loss is
cross-entropy, or MSE on one-hot targets (the squared error summed over the C classes and
averaged over the batch, as in Gromov 2023); accuracy is argmax == label.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ClassificationObjective:
    def __init__(self, loss: str = "ce") -> None:
        self.loss_name = loss

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        y = batch["y"]
        if self.loss_name == "ce":
            return F.cross_entropy(logits, y)
        target = F.one_hot(y, logits.shape[-1]).to(logits.dtype)
        return (logits - target).pow(2).sum(-1).mean()

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["x"])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Loss and exact-match accuracy on one batch (the trainer chunks large splits)."""
        logits = self.forward(model, batch)
        return {
            "loss": self.loss(logits, batch).item(),
            "acc": (logits.argmax(-1) == batch["y"]).float().mean().item(),
        }


OBJECTIVES = {"classification": ClassificationObjective}
