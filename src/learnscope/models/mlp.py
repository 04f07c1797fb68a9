"""A multilayer perceptron for tasks whose inputs are a few tokens (modular arithmetic).

The operands ``x: (b, n_inputs)`` are embedded one-hot and concatenated, ``(b, n_inputs *
vocab)``, as in Gromov (2023, "Grokking modular arithmetic"), or through a learned table of
width ``d_embed``; with ``embed="none"`` the inputs ``x: (b, n_inputs)`` are real vectors used
as they are (the ``views`` task). Then ``depth`` linear layers; every hidden layer is
``linear -> [BatchNorm] -> activation -> [dropout]``. ``activation="quadratic"`` is ``x ** 2``:
with ``depth=2, bias=False`` this is Gromov's ``W2 (W1 x)^2``. ``activation="power"`` is
``x ** power``: Doshi et al. (2024, "Grokking modular polynomials") use ``x^S`` for the sum of
``S`` terms (see ``learnscope.models.analytic``).

Activation sites (for probes, see ``learnscope.models.hooks``)::

    hook_embed           # (b, n_inputs * vocab) one-hot, (b, n_inputs * d_embed), or (b, n_inputs)
    layers.{i}.hook_pre  # (b, width) pre-activation of hidden layer i
    layers.{i}.hook_post # (b, width) after the activation (and dropout)
    hook_logits          # (b, n_out)

Initialisation: PyTorch's default (uniform with std 1/sqrt(3 fan_in)) times ``init_scale``;
or, with ``init_std``, every weight drawn from N(0, init_std^2) and biases zero; or, with
``sigma_w``, the criticality papers' parametrisation (Doshi, He & Gromov 2023): weights
N(0, sigma_w^2 / fan_in), biases N(0, sigma_b^2) (ReLU is critical at sigma_w^2 = 2, sigma_b = 0).

Width (``learnscope.models.param``): ``param: ntk | mup`` rescales the initialisation and the
learning rate of each layer relative to the model at ``base_width`` (where all three equal the
standard parametrisation). ``output_scale: alpha`` makes the output ``alpha (f(x; theta) -
f(x; theta_0))`` (Chizat, Oyallon & Bach 2019, lazy training; ``f(x; theta_0)`` from a frozen
copy of the initial network) and divides the learning rate by ``alpha^2`` (SGD) or ``alpha``
(Adam) unless ``output_scale_lr: false``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

import learnscope.models.param as width
from learnscope.models.hooks import HookPoint


@dataclass
class MLPConfig:
    n_inputs: int = 2  # tokens per example (from the task)
    vocab: int = 97  # values a token takes (from the task)
    n_out: int = 97  # classes (from the task)
    width: int = 512
    depth: int = 2  # linear layers; depth - 1 hidden layers
    activation: Literal["relu", "gelu", "tanh", "quadratic", "power"] = "relu"
    power: int = 2  # with activation="power": x ** power
    embed: Literal["onehot", "learned", "none"] = "onehot"  # none: real inputs as they are
    d_embed: int = 128  # with embed="learned"
    bias: bool = True
    batchnorm: bool = False
    dropout: float = 0.0
    init_scale: float = 1.0
    init_std: float | None = None
    sigma_w: float | None = None  # weights N(0, sigma_w^2 / fan_in), biases N(0, sigma_b^2)
    sigma_b: float = 0.0  # with sigma_w
    param: Literal["standard", "ntk", "mup"] = "standard"
    base_width: int | None = None  # where ntk / mup equal standard; required with them
    output_scale: float | None = None  # alpha: output alpha (f - f0); None: plain f
    output_scale_lr: bool = True  # with output_scale: lr / alpha^2 (SGD) or / alpha (Adam)

    def __post_init__(self) -> None:
        for field in ("n_inputs", "vocab", "n_out", "width", "depth", "d_embed", "power"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1 (got {getattr(self, field)})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1) (got {self.dropout})")
        if self.power > 64:
            raise ValueError(f"power must be <= 64 (got {self.power})")
        if not 0 <= self.init_scale <= 1e6:
            raise ValueError(f"init_scale must be in [0, 1e6] (got {self.init_scale})")
        if self.init_std is not None and not 0 < self.init_std <= 1e6:
            raise ValueError(f"init_std must be in (0, 1e6] or null (got {self.init_std})")
        if self.sigma_w is not None and not 0 < self.sigma_w <= 1e3:
            raise ValueError(f"sigma_w must be in (0, 1e3] or null (got {self.sigma_w})")
        if not 0 <= self.sigma_b <= 1e3:
            raise ValueError(f"sigma_b must be in [0, 1e3] (got {self.sigma_b})")
        if self.sigma_w is not None and self.init_std is not None:
            raise ValueError("sigma_w and init_std cannot both be set (two initialisations)")
        if self.sigma_b and self.sigma_w is None:
            raise ValueError("sigma_b needs sigma_w (the sigma_w, sigma_b initialisation)")
        if self.param != "standard" and self.base_width is None:
            raise ValueError(f"base_width must be set with param {self.param!r}")
        if self.base_width is not None and self.base_width < 1:
            raise ValueError(f"base_width must be >= 1 (got {self.base_width})")
        if self.output_scale is not None and not 1e-6 <= self.output_scale <= 1e6:
            raise ValueError(
                f"output_scale must be in [1e-6, 1e6] or null (got {self.output_scale})"
            )

    @property
    def d_in(self) -> int:
        """Width of ``hook_embed``, the first layer's input."""
        per_input = {"onehot": self.vocab, "learned": self.d_embed, "none": 1}[self.embed]
        return self.n_inputs * per_input

    def n_params(self) -> int:
        """Weights (biases aside), from the sizes alone: exact Python ints, never built."""
        d_in = self.d_in
        embed = self.vocab * self.d_embed if self.embed == "learned" else 0
        hidden = d_in * self.width + (self.depth - 2) * self.width**2 if self.depth > 1 else 0
        return embed + hidden + (self.width if self.depth > 1 else d_in) * self.n_out

    def activation_floats(self) -> int:
        """Floats one example's forward pass keeps for the backward pass (the input, each
        hidden layer before and after its activation, the logits): a training batch's
        memory is about ``4 x rows x`` this."""
        return self.d_in + 3 * (self.depth - 1) * self.width + 2 * self.n_out


class Quadratic(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


class Power(nn.Module):
    def __init__(self, power: int) -> None:
        super().__init__()
        self.power = power

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x**self.power

    def extra_repr(self) -> str:
        return f"power={self.power}"


ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "quadratic": Quadratic}


class HiddenLayer(nn.Module):
    def __init__(self, d_in: int, cfg: MLPConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, cfg.width, bias=cfg.bias)
        self.hook_pre = HookPoint()
        self.norm = nn.BatchNorm1d(cfg.width) if cfg.batchnorm else nn.Identity()
        if cfg.activation == "power":
            self.act = Power(cfg.power)
        else:
            self.act = ACTIVATIONS[cfg.activation]()
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout else nn.Identity()
        self.hook_post = HookPoint()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.hook_pre(self.linear(h))
        return self.hook_post(self.drop(self.act(self.norm(h))))


class MLP(nn.Module):
    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.embed == "learned":
            self.embed = nn.Embedding(cfg.vocab, cfg.d_embed)
        d = cfg.d_in
        self.hook_embed = HookPoint()
        self.layers = nn.ModuleList()
        for _ in range(cfg.depth - 1):
            self.layers.append(HiddenLayer(d, cfg))
            d = cfg.width
        self.out = nn.Linear(d, cfg.n_out, bias=cfg.bias)
        self.hook_logits = HookPoint()
        self._init_weights()

        def base() -> MLP:  # at the base width, standard (shapes only)
            return MLP(replace(cfg, width=cfg.base_width, param="standard", output_scale=None))

        width.setup(self, base, std_scales_with_fan_in=cfg.init_std is None)

    def _init_weights(self) -> None:
        with torch.no_grad():
            for m in self.modules():
                if not isinstance(m, (nn.Linear, nn.Embedding)):
                    continue
                if self.cfg.sigma_w is not None:
                    fan_in = m.weight.shape[1] if isinstance(m, nn.Linear) else 1
                    nn.init.normal_(m.weight, std=self.cfg.sigma_w / fan_in**0.5)
                    if getattr(m, "bias", None) is not None:
                        nn.init.normal_(m.bias, std=self.cfg.sigma_b)
                elif self.cfg.init_std is not None:
                    nn.init.normal_(m.weight, std=self.cfg.init_std)
                    if getattr(m, "bias", None) is not None:
                        m.bias.zero_()
                else:
                    for param in m.parameters():
                        param.mul_(self.cfg.init_scale)

    def lr_multipliers(self, optimizer: str) -> dict[str, float]:
        """Per-parameter learning-rate factors (``learnscope.models.param``)."""
        return width.model_lr_multipliers(self, optimizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (b, n_inputs) token ids (or real values, ``embed="none"``) -> logits (b, n_out);
        with ``output_scale`` alpha, ``alpha (f(x) - f_0(x))``."""
        if self._initial:  # alpha (f - f_0), f_0 from the frozen initial copy
            f0 = width.initial_output(self, x)
            return self.hook_logits(self.cfg.output_scale * (self._logits(x) - f0))
        return self.hook_logits(self._logits(x))

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.embed == "none":
            h = x.to(self.out.weight.dtype)
        elif x.is_floating_point():
            raise ValueError(f"real-valued inputs need model.embed 'none' (got {self.cfg.embed!r})")
        elif self.cfg.embed == "onehot":
            h = F.one_hot(x, self.cfg.vocab).flatten(1).to(self.out.weight.dtype)
        else:
            h = self.embed(x).flatten(1)
        h = self.hook_embed(h)
        for layer in self.layers:
            h = layer(h)
        return self.out(h)
