"""Probes on the weights themselves, and the size of an activation's coordinates."""

from __future__ import annotations

import torch
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


def mean_abs(x: torch.Tensor) -> float:
    """``mean |x|``: the typical size of one coordinate of an activation ``x: (b, ...)``.

    The coordinate check of Yang et al. (2022, "Tensor Programs V", the ``mup`` package's
    ``get_coord_data``) plots it against width after a few training steps: flat under μP, it
    grows or vanishes with width under the standard parametrisation.

    >>> mean_abs(torch.tensor([[1.0, -3.0], [0.0, 2.0]]))
    1.5
    """
    return float(x.abs().mean())
