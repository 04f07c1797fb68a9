"""AutoInit (He, Doshi & Gromov 2022, "AutoInit: automatic initialization via Jacobian
tuning"): tune an MLP's initial weight and bias scales until the averaged partial Jacobian
norm between every pair of adjacent layers is 1, the criticality condition of Doshi, He &
Gromov (2023).

The blocks are the MLP's pre-activations ``h^0, ..., h^{L-2}`` (sites
``layers.{i}.hook_pre``) and its logits ``h^{L-1}`` (``hook_logits``). Each linear layer ``l``
gets two learnable log-scales, ``W_l = exp(a_l) W_l^0`` and ``b_l = exp(c_l) b_l^0``, from
its current weights. On a batch ``x``, the adjacent APJNs
``J^{l,l+1} = (1/N_{l+1}) E_x ||dh^{l+1} / dh^l||_F^2`` are estimated with ``n_proj`` random
vectors ``v ~ N(0, I)`` (``E_v ||v^T J||^2 = ||J||_F^2``, the estimator of
:func:`learnscope.probes.jacobian.partial_jacobian_norm`, kept differentiable), and the loss
``L = 1/2 sum_l (log J^{l,l+1})^2`` is minimised by gradient descent on ``(a, c)``, the
derivative flowing through the Jacobian-vector products (double backward), until
``max_l |log J^{l,l+1}| <= tol`` or ``steps`` steps. For ReLU without biases
``J^{l,l+1} = sigma_{w,l+1}^2 / 2``: AutoInit finds He's ``sigma_w^2 = 2`` per layer.

The model is read in eval mode (no dropout); BatchNorm, whose Jacobian depends on the batch's
statistics, is refused.

>>> from learnscope.models.mlp import MLP, MLPConfig
>>> _ = torch.manual_seed(0)
>>> net = MLP(MLPConfig(n_inputs=2, vocab=5, n_out=5, width=64, depth=6, sigma_w=0.5))
>>> result = autoinit(net, torch.randint(0, 5, (64, 2)))
>>> result.converged, all(abs(j - 1) <= 0.06 for j in result.apjn)
(True, True)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call

from learnscope.models.hooks import capture


@dataclass
class AutoInitResult:
    """The tuned copy of the model, the steps taken, whether every ``|log J| <= tol``, the
    final adjacent APJNs ``J^{l,l+1}`` (one per linear layer after the first), the weight
    scale applied to each linear layer, and the loss per step."""

    model: nn.Module
    steps: int
    converged: bool
    apjn: list[float]
    scales: list[float]
    losses: list[float] = field(default_factory=list)


def _linears(model: nn.Module) -> tuple[list[str], list[str]]:
    """The linear layers' names in forward order, and the sites of their outputs."""
    layers = getattr(model, "layers", None)
    if layers is None or not hasattr(model, "out"):
        raise ValueError("autoinit needs an MLP (learnscope.models.mlp: layers + out)")
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise ValueError("autoinit: BatchNorm is not supported (its Jacobian is the batch's)")
    names = [f"layers.{i}.linear" for i in range(len(layers))] + ["out"]
    sites = [f"layers.{i}.hook_pre" for i in range(len(layers))] + ["hook_logits"]
    return names, sites


def adjacent_apjn(
    acts: list[torch.Tensor], n_proj: int, generator: torch.Generator
) -> torch.Tensor:
    """``J^{l,l+1}`` for every adjacent pair of ``acts`` (pre-activations ``(b, N_l)`` of one
    forward pass, in order), ``(len(acts) - 1,)``, differentiable (``create_graph``):
    ``(1 / (n_proj b N_{l+1})) sum_v ||v^T dh^{l+1}/dh^l||^2``."""
    out = []
    for h, nxt in zip(acts, acts[1:]):
        total = h.new_zeros(())
        for _ in range(n_proj):
            v = torch.randn(nxt.shape, generator=generator, dtype=nxt.dtype).to(nxt.device)
            (g,) = torch.autograd.grad(nxt, h, grad_outputs=v, create_graph=True)
            total = total + g.pow(2).sum()
        out.append(total / (n_proj * nxt.shape[0] * nxt.shape[1]))
    return torch.stack(out)


def autoinit(
    model: nn.Module,
    x: torch.Tensor,
    steps: int = 200,
    lr: float = 0.1,
    tol: float = 0.02,
    n_proj: int = 4,
    seed: int = 0,
) -> AutoInitResult:
    """Tune the per-layer weight and bias scales of a copy of ``model`` (an MLP) on the
    inputs ``x`` so that every adjacent APJN is 1 (see the module docstring); ``model`` is
    left as it was."""
    names, sites = _linears(model)
    tuned = copy.deepcopy(model).eval()
    base = {n: p.detach().clone() for n, p in tuned.named_parameters()}
    log_w = torch.zeros(len(names), requires_grad=True)
    log_b = torch.zeros(len(names), requires_grad=True)
    generator = torch.Generator().manual_seed(seed)

    def scaled() -> dict[str, torch.Tensor]:
        params = dict(base)
        for i, name in enumerate(names):
            params[f"{name}.weight"] = base[f"{name}.weight"] * log_w[i].exp()
            if f"{name}.bias" in base:
                params[f"{name}.bias"] = base[f"{name}.bias"] * log_b[i].exp()
        return params

    def measure() -> torch.Tensor:
        with torch.enable_grad(), capture(tuned, sites, detach=False) as acts:
            functional_call(tuned, scaled(), (x,))
            return adjacent_apjn([acts[s] for s in sites], n_proj, generator)

    losses: list[float] = []
    step, converged = 0, False
    while True:
        apjn = measure()
        log_j = apjn.log()
        converged = bool(log_j.abs().max() <= tol)
        if converged or step >= steps or not torch.isfinite(log_j).all():
            break
        loss = 0.5 * (log_j**2).sum()
        losses.append(float(loss.detach()))
        g_w, g_b = torch.autograd.grad(loss, (log_w, log_b), allow_unused=True)
        with torch.no_grad():
            log_w -= lr * g_w
            if g_b is not None:
                log_b -= lr * g_b
        step += 1
    with torch.no_grad():
        for name, value in scaled().items():
            tuned.get_parameter(name).copy_(value)
    tuned.train(model.training)
    return AutoInitResult(
        tuned,
        step,
        converged,
        [float(j) for j in apjn.detach()],
        [float(s) for s in log_w.detach().exp()],
        losses,
    )
