"""The base of every training objective: the loss the trainer minimises on a batch, and the
state an objective keeps across steps (checkpointed with the trainer)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Objective:
    """The default ``train_loss`` of an objective: ``loss(forward(model, batch), batch)``, the
    loss the trainer minimises on a training batch. Each objective defines ``forward``,
    ``loss`` and ``evaluate``; reinforcement fine-tuning overrides ``train_loss`` (it samples
    answers instead)."""

    def train_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.loss(self.forward(model, batch), batch)  # type: ignore[attr-defined]

    def state_dict(self) -> dict[str, Any]:
        """What the objective holds beyond the model (checkpointed with the trainer): nothing,
        unless an objective keeps state across steps (RFT's KL reference)."""
        return {}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        """Restore :meth:`state_dict`; ``model`` (already loaded) is the template of any
        module the objective keeps."""
