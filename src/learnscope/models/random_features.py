"""Random features: a fixed random first layer, ReLU, and a trained linear readout.

The random-features model of Rahimi & Recht (2007), the student of the double-descent
theory (Mei & Montanari 2019; Advani & Saxe 2017 for its linear limit)::

    phi(x) = act(W x) / sqrt(width),    W: (width, d_in) fixed, entries N(0, 1 / d_in)
    f(x)   = a phi(x),                  a: (n_out, width) trained, initialised at init_scale

``W`` is a buffer (seeded by the run's seed, never trained); only ``a`` is a parameter, so the
model has ``width * n_out`` trained parameters and with ``n_out = 1`` it can interpolate ``n``
training rows once ``width >= n``: the interpolation threshold. Trained by gradient descent
from ``a = 0`` (``init_scale = 0``, the default) on the square loss, ``a`` stays in the row
space of the features and converges to the minimum-norm interpolant, the ridgeless
least-squares solution whose test error peaks at ``width = n``. The ``1 / sqrt(width)`` keeps
the kernel ``phi(x) . phi(x')`` of order one at every width (one learning rate for all).

Inputs: real vectors ``x: (b, n_inputs)`` (``embed = "none"``, the teacher task) or token ids
embedded one-hot (``embed = "onehot"``, ``(b, n_inputs * vocab)``).

Activation sites (``learnscope.models.hooks``)::

    hook_embed           # (b, d_in) the inputs
    layers.0.hook_pre    # (b, width) W x
    layers.0.hook_post   # (b, width) phi(x)
    hook_logits          # (b, n_out)

>>> net = RandomFeatures(RandomFeaturesConfig(n_inputs=3, n_out=1, width=8, embed="none"))
>>> [name for name, _ in net.named_parameters()], net(torch.randn(5, 3)).shape
(['out.weight'], torch.Size([5, 1]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from learnscope.models.hooks import HookPoint


@dataclass
class RandomFeaturesConfig:
    n_inputs: int = 2  # from the task
    vocab: int = 97  # from the task (token inputs)
    n_out: int = 1  # from the task
    width: int = 100  # random features N
    activation: Literal["relu", "linear", "tanh"] = "relu"
    embed: Literal["onehot", "none"] = "onehot"  # none: real inputs as they are
    init_scale: float = 0.0  # readout std at init (0: a = 0, the min-norm path)

    def __post_init__(self) -> None:
        for field in ("n_inputs", "vocab", "n_out", "width"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1 (got {getattr(self, field)})")
        if not 0 <= self.init_scale <= 1e6:
            raise ValueError(f"init_scale must be in [0, 1e6] (got {self.init_scale})")

    @property
    def d_in(self) -> int:
        return self.n_inputs * (self.vocab if self.embed == "onehot" else 1)

    def n_params(self) -> int:
        """Trained parameters (the readout) plus the fixed features' floats (memory)."""
        return self.width * self.n_out + self.width * self.d_in

    def activation_floats(self) -> int:
        return self.d_in + 2 * self.width + self.n_out


class RandomFeatureLayer(nn.Module):
    """``act(W x) / sqrt(width)`` with ``W`` a fixed buffer."""

    def __init__(self, cfg: RandomFeaturesConfig) -> None:
        super().__init__()
        self.register_buffer("weight", torch.randn(cfg.width, cfg.d_in) / cfg.d_in**0.5)
        self.hook_pre = HookPoint()
        self.act = {"relu": nn.ReLU, "tanh": nn.Tanh, "linear": nn.Identity}[cfg.activation]()
        self.hook_post = HookPoint()
        self.scale = cfg.width**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hook_pre(x @ self.weight.T)
        return self.hook_post(self.act(h) * self.scale)


class RandomFeatures(nn.Module):
    def __init__(self, cfg: RandomFeaturesConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.hook_embed = HookPoint()
        self.layers = nn.ModuleList([RandomFeatureLayer(cfg)])
        self.out = nn.Linear(cfg.width, cfg.n_out, bias=False)
        with torch.no_grad():
            if cfg.init_scale:
                self.out.weight.normal_(std=cfg.init_scale)
            else:
                self.out.weight.zero_()
        self.hook_logits = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (b, n_inputs) real values (or token ids, ``embed="onehot"``) -> (b, n_out)."""
        if self.cfg.embed == "none":
            h = x.to(self.out.weight.dtype)
        elif x.is_floating_point():
            raise ValueError("real-valued inputs need model.embed 'none' (got 'onehot')")
        else:
            h = F.one_hot(x, self.cfg.vocab).flatten(1).to(self.out.weight.dtype)
        h = self.layers[0](self.hook_embed(h))
        return self.hook_logits(self.out(h))
