"""The two-layer ReLU network of the benign-overfitting theory: only the first layer learns.

Xu, Wang, Frei, Vardi & Hu (ICLR 2024, "Benign overfitting and grokking in ReLU networks for
XOR cluster data"), after Frei, Chatterji & Bartlett (2022): for real inputs ``x: (b, d)``,

    f(x) = sum_j a_j relu(<w_j, x>),   a_j = +1/sqrt(m) for j < m/2, -1/sqrt(m) otherwise

with the ``m = width`` first-layer rows ``w_j`` drawn from ``N(0, init_std^2 I)`` (a small
init) and trained, and the second layer ``a`` fixed (a buffer, never trained). For the two
classes of a binary task the logits are ``(-f / 2, f / 2)``, so the cross-entropy is the
logistic loss ``log(1 + exp(-y f))`` with ``y = +-1`` the paper trains on.

Activation sites::

    hook_embed            # (b, d) the inputs
    layers.0.hook_pre     # (b, width) <w_j, x>
    layers.0.hook_post    # (b, width) relu(<w_j, x>)
    hook_logits           # (b, 2)

>>> import torch
>>> net = TwoLayer(TwoLayerConfig(n_inputs=3, width=4, init_std=1.0))
>>> net.a.tolist(), net(torch.zeros(2, 3)).tolist()
([0.5, 0.5, -0.5, -0.5], [[-0.0, 0.0], [-0.0, 0.0]])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from learnscope.models.hooks import HookPoint


@dataclass
class TwoLayerConfig:
    n_inputs: int = 2  # input dimension d (from the task)
    n_out: int = 2  # classes (from the task): must be 2
    embed: Literal["none"] = "none"  # real inputs as they are (from the task)
    width: int = 256  # m first-layer neurons (even: half a_j > 0, half < 0)
    init_std: float = 1e-4  # std of every first-layer weight

    def __post_init__(self) -> None:
        for field in ("n_inputs", "width"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1 (got {getattr(self, field)})")
        if self.n_out != 2:
            raise ValueError(f"n_out must be 2: a binary task (got {self.n_out})")
        if self.width % 2:
            raise ValueError(f"width must be even: half the a_j are positive (got {self.width})")
        if not 0 < self.init_std <= 1e3:
            raise ValueError(f"init_std must be in (0, 1e3] (got {self.init_std})")

    def n_params(self) -> int:
        return self.n_inputs * self.width

    def activation_floats(self) -> int:
        return self.n_inputs + 2 * self.width + 2 * self.n_out


class _Layer(nn.Module):
    def __init__(self, cfg: TwoLayerConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(cfg.n_inputs, cfg.width, bias=False)
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hook_post(torch.relu(self.hook_pre(self.linear(x))))


class TwoLayer(nn.Module):
    def __init__(self, cfg: TwoLayerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.hook_embed = HookPoint()
        self.layers = nn.ModuleList([_Layer(cfg)])
        nn.init.normal_(self.layers[0].linear.weight, std=cfg.init_std)
        half = cfg.width // 2
        a = torch.cat([torch.ones(half), -torch.ones(cfg.width - half)]) / math.sqrt(cfg.width)
        self.register_buffer("a", a)  # fixed: a buffer, not a parameter
        self.hook_logits = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (b, d) real inputs -> logits (b, 2) = (-f / 2, f / 2)."""
        h = self.hook_embed(x.to(self.a.dtype))
        f = self.layers[0](h) @ self.a  # (b,)
        return self.hook_logits(torch.stack([-f / 2, f / 2], dim=-1))
