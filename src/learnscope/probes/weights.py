"""Probes on the weights themselves."""

from __future__ import annotations

from torch import nn


def weight_norms(model: nn.Module) -> dict[str, float]:
    """Frobenius norm ``||W||_F`` of every weight matrix (parameters with >= 2 dimensions).

    The slingshot mechanism (Thilak et al. 2022) is read off the norm of the last layer.

    >>> import torch
    >>> net = nn.Linear(3, 2, bias=True)
    >>> with torch.no_grad():
    ...     _ = net.weight.fill_(1.0)
    >>> {k: round(v, 4) for k, v in weight_norms(net).items()}
    {'weight': 2.4495}
    """
    return {name: p.detach().norm().item() for name, p in model.named_parameters() if p.dim() >= 2}
