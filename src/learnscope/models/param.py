"""Width parametrisations: standard (SP), neural tangent (NTP) and maximal update (μP).

An abc-parametrisation (Yang & Hu 2021, "Tensor Programs IV") writes each weight as
``W = n^-a w``, ``w ~ N(0, n^-2b)``, trained with learning rate ``eta n^-c``, ``n`` the width.
Shifting ``a -> a + t``, ``b -> b - t`` and ``c -> c - 2t`` (SGD) or ``c -> c - t`` (Adam,
whose update ignores the gradient's scale) leaves the trained function unchanged, so every
parametrisation can be written with no forward multiplier (``a = 0``); we implement them all
in that form, as Table 3 of Yang et al. 2022 ("Tensor Programs V", arXiv:2203.03466) writes μP:
per-layer *initialisation* and *learning-rate* factors, relative to a width ``base_width`` at
which every parametrisation equals the standard one. (The ``mup`` package writes the same μP
with a readout multiplier ``1/m`` instead, its Table 9 / ``MuReadout``; ``tests/models/
test_param.py`` trains both side by side and finds the same function.) The one forward change
is the GPT's attention, ``q.k / d_head`` under μP (TP5 §4; scaled to equal ``1/sqrt(d_head)``
at the base width), which no gauge shift reaches.

Each parameter is classified by comparing its shape with the model built at ``base_width``
(as ``mup.set_base_shapes`` does): a dimension that differs is *infinite*, with width
multiplier ``m = dim / base_dim``. ``m_in`` is the fan-in's multiplier (the last dimension of a
``Linear`` weight), ``m_out`` the other one:

- ``input``: one infinite dimension, not a readout: input weights, embeddings, every bias
  and LayerNorm gain ("vector-like" in ``mup``);
- ``hidden``: two infinite dimensions;
- ``output``: a ``Linear`` whose fan-in alone is infinite (the readout);
- ``finite``: none (output biases, scalars): never rescaled.

Learning-rate factor ``m_in^e_in m_out^e_out`` (TP5 Table 3 for μP, with ``fan = m x base``;
the NTP rows derived by us from the symmetry above, for the NTK parametrisation ``a = 1/2``
on every layer after the first: SGD ``c = 0``, Adam ``c = (1/2, 1, 1/2)`` for the input,
hidden and output layers, the Adam values from Littwin & Yang 2023, "Tensor Programs IVb",
arXiv:2308.01814, which shows that Adam too has a kernel and a μP limit)::

                      input / biases   hidden            output
    standard  sgd     1                1                 1
              adam    1                1                 1
    mup       sgd     m_out            m_out / m_in      1 / m_in
              adam    1                1 / m_in          1 / m_in
    ntk       sgd     1                1 / m_in          1 / m_in
              adam    1 / sqrt(m_out)  1 / m_in^(3/2)    1 / m_in

(``adamw`` is ``adam``; SGD with momentum is ``sgd``.) Initialisation: the standard std times
``m_in^s``; ``input`` weights are never rescaled, nor are 1-D parameters except biases drawn
with std ∝ ``1/sqrt(fan_in)``, multiplied by ``sqrt(m_in)`` (O(1), ``mup.rescale_linear_bias``)::

                 target variance    s (std ∝ 1/sqrt(fan_in) already)   s (constant std)
    mup hidden   1 / fan_in         0                                  -1/2
    mup output   1 / fan_in^2       -1/2                               -1
    ntk hidden   1 / fan_in         0                                  -1/2
    ntk output   1 / fan_in         0                                  -1/2

The MLP's default init (PyTorch's) has std ∝ ``1/sqrt(fan_in)``; the GPT's (``init_std``) and
the MLP's ``init_std`` are constant.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

Param = Literal["standard", "ntk", "mup"]
Kind = Literal["input", "hidden", "output", "finite"]
PARAMS = ("standard", "ntk", "mup")

#: (parametrisation, optimiser family) -> kind -> (e_in, e_out): lr factor m_in^e_in m_out^e_out
LR_EXPONENTS: dict[tuple[str, str], dict[str, tuple[float, float]]] = {
    ("standard", "sgd"): {"input": (0, 0), "hidden": (0, 0), "output": (0, 0)},
    ("standard", "adam"): {"input": (0, 0), "hidden": (0, 0), "output": (0, 0)},
    ("mup", "sgd"): {"input": (0, 1), "hidden": (-1, 1), "output": (-1, 0)},
    ("mup", "adam"): {"input": (0, 0), "hidden": (-1, 0), "output": (-1, 0)},
    ("ntk", "sgd"): {"input": (0, 0), "hidden": (-1, 0), "output": (-1, 0)},
    ("ntk", "adam"): {"input": (0, -0.5), "hidden": (-1.5, 0), "output": (-1, 0)},
}

#: parametrisation -> kind -> exponent of m_in of the target init std (variance law / 2)
STD_EXPONENTS: dict[str, dict[str, float]] = {
    "standard": {},
    "mup": {"hidden": -0.5, "output": -1.0},
    "ntk": {"hidden": -0.5, "output": -0.5},
}


@dataclass(frozen=True)
class Scale:
    """How one parameter scales with width: its kind and the multipliers of its dims."""

    kind: Kind
    m_in: float = 1.0
    m_out: float = 1.0


def optimizer_family(optimizer: str) -> str:
    """``sgd`` or ``adam`` (Adam and AdamW: entrywise-normalised updates)."""
    return "sgd" if optimizer == "sgd" else "adam"


def scales(model: nn.Module, base: nn.Module) -> dict[str, Scale]:
    """Every parameter of ``model`` classified against the same model at the base width.

    >>> from learnscope.models.mlp import MLP, MLPConfig
    >>> net = MLP(MLPConfig(n_inputs=2, vocab=5, n_out=5, width=32, depth=3))
    >>> base = MLP(MLPConfig(n_inputs=2, vocab=5, n_out=5, width=8, depth=3))
    >>> for name, s in scales(net, base).items():
    ...     print(name, s.kind, s.m_in, s.m_out)
    layers.0.linear.weight input 1.0 4.0
    layers.0.linear.bias input 1.0 4.0
    layers.1.linear.weight hidden 4.0 4.0
    layers.1.linear.bias input 1.0 4.0
    out.weight output 4.0 1.0
    out.bias finite 1.0 1.0
    """
    base_shapes = {k: tuple(p.shape) for k, p in base.named_parameters()}
    owners = {
        f"{m_name}.{p_name}" if m_name else p_name: m
        for m_name, m in model.named_modules()
        for p_name, _ in m.named_parameters(recurse=False)
    }
    out: dict[str, Scale] = {}
    for name, p in model.named_parameters():
        shape, b = tuple(p.shape), base_shapes[name]
        mults = [d / bd for d, bd in zip(shape, b)]
        inf = [d != bd for d, bd in zip(shape, b)]
        if sum(inf) > 2:
            raise ValueError(f"{name}: more than 2 dimensions scale with width")
        if sum(inf) == 0:
            out[name] = Scale("finite")
        elif sum(inf) == 2:
            out[name] = Scale("hidden", m_in=mults[-1], m_out=mults[0])
        elif p.dim() == 2 and inf[1] and not isinstance(owners[name], nn.Embedding):
            out[name] = Scale("output", m_in=mults[1])
        else:
            out[name] = Scale("input", m_out=mults[inf.index(True)])
    return out


def lr_factor(param: str, optimizer: str, scale: Scale) -> float:
    """The learning-rate factor of one parameter (the table in the module docstring).

    >>> hidden, output = Scale("hidden", 4.0, 4.0), Scale("output", 4.0)
    >>> [lr_factor(p, o, s) for p, o, s in [("mup", "adam", hidden), ("mup", "sgd", hidden)]]
    [0.25, 1.0]
    >>> lr_factor("ntk", "adam", output)
    0.25
    """
    if scale.kind == "finite":
        return 1.0
    e_in, e_out = LR_EXPONENTS[(param, optimizer_family(optimizer))][scale.kind]
    return scale.m_in**e_in * scale.m_out**e_out


def std_factor(param: str, scale: Scale, std_scales_with_fan_in: bool) -> float:
    """The factor on a weight's standard init std (the second table of the module docstring).

    >>> out = Scale("output", 4.0)
    >>> std_factor("mup", out, True), std_factor("mup", out, False)
    (0.5, 0.25)
    """
    target = STD_EXPONENTS[param].get(scale.kind)
    if target is None:
        return 1.0
    return scale.m_in ** (target - (-0.5 if std_scales_with_fan_in else 0.0))


def rescale_init(
    model: nn.Module, table: dict[str, Scale], param: str, std_scales_with_fan_in: bool
) -> None:
    """Multiply each weight matrix by its :func:`std_factor`, in place; and, where the standard
    init draws a ``Linear``'s bias with std ∝ ``1/sqrt(fan_in)`` (PyTorch's), that bias by
    ``sqrt(m_in)`` of its layer so that its std no longer shrinks with width (TP5 Table 3: all
    biases have O(1) init; ``mup.rescale_linear_bias``). Other 1-D parameters stay."""
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            factor = std_factor(param, table[name], std_scales_with_fan_in)
        elif name.endswith(".bias") and std_scales_with_fan_in and param != "standard":
            weight = table.get(name[: -len("bias")] + "weight")
            factor = math.sqrt(weight.m_in) if weight is not None else 1.0
        else:
            factor = 1.0
        if factor != 1.0:
            p.data.mul_(factor)


def lr_multipliers(
    table: dict[str, Scale],
    param: str,
    optimizer: str,
    output_scale: float | None = None,
    output_scale_lr: bool = True,
) -> dict[str, float]:
    """Per-parameter learning-rate multipliers: the parametrisation's, times the lazy-training
    factor of an output scale ``alpha`` (Chizat, Oyallon & Bach 2019: training ``alpha (f -
    f0)`` on the loss divided by ``alpha^2`` is SGD with lr / ``alpha^2``; Adam ignores the
    loss scale, and its function-space step is ``alpha`` times its parameter step, so the same
    regime needs lr / ``alpha``).

    >>> t = {"w": Scale("hidden", 2.0, 2.0)}
    >>> lr_multipliers(t, "mup", "sgd", 10.0), lr_multipliers(t, "mup", "adam", 10.0)
    ({'w': 0.01}, {'w': 0.05})
    """
    alpha = 1.0
    if output_scale is not None and output_scale_lr:
        power = 2 if optimizer_family(optimizer) == "sgd" else 1
        alpha = 1.0 / output_scale**power
    return {name: lr_factor(param, optimizer, s) * alpha for name, s in table.items()}


def attention_scale(param: str, d_head: int, base_d_head: int) -> float:
    """Attention logits ``q.k x scale``: ``1/sqrt(d_head)``, or under μP ``sqrt(base) / d_head``
    (TP5: ``1/d``, equal to the standard scale at the base width).

    >>> attention_scale("mup", 64, 16) == 4 / 64, attention_scale("standard", 64, 16) == 1 / 8
    (True, True)
    """
    if param == "mup":
        return math.sqrt(base_d_head) / d_head
    return 1.0 / math.sqrt(d_head)


def setup(model: nn.Module, base: Callable[[], nn.Module], std_scales_with_fan_in: bool) -> None:
    """Give a freshly initialised ``model`` (config ``model.cfg`` with ``param``,
    ``output_scale``) its width scales and init (``base()`` builds it at the base width,
    called on the meta device: shapes only) and, with an output scale, the frozen copy of
    itself that computes ``f(x; theta_0)`` (a plain attribute: no hooks, no state dict)."""
    cfg = model.cfg
    model.scales = {}
    if cfg.param != "standard":
        import torch

        with torch.device("meta"):  # no memory, no random draws
            model.scales = scales(model, base())
        rescale_init(model, model.scales, cfg.param, std_scales_with_fan_in)
    model._initial = []
    if cfg.output_scale is not None:
        frozen = copy.deepcopy(model)
        frozen.cfg = dataclasses.replace(cfg, output_scale=None)
        model._initial.append(frozen.requires_grad_(False).eval())


def model_lr_multipliers(model: nn.Module, optimizer: str) -> dict[str, float]:
    """:func:`lr_multipliers` of a model set up by :func:`setup`; empty for the standard
    parametrisation without an output scale (one parameter group, the lr as given)."""
    cfg = model.cfg
    if cfg.param == "standard" and cfg.output_scale is None:
        return {}
    table = model.scales or {n: Scale("finite") for n, _ in model.named_parameters()}
    return lr_multipliers(table, cfg.param, optimizer, cfg.output_scale, cfg.output_scale_lr)


def initial_output(model: nn.Module, *args) -> "torch.Tensor":  # noqa: F821, UP037
    """``f(x; theta_0)`` from the frozen copy (moved to the input's device on first use)."""
    import torch

    frozen = model._initial[0]
    device = args[0].device
    if next(frozen.parameters()).device != device:
        frozen.to(device)
    with torch.no_grad():
        return frozen(*args)
