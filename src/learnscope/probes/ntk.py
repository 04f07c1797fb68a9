"""How far a network is from its linearisation around the initial weights (the NTK regime).

A network ``f(x; theta)`` near ``theta_0`` is its first-order Taylor model, the *linearised*
network (Jacot et al. 2018; Lee et al. 2019)::

    f_lin(x; theta) = f(x; theta_0) + J(theta_0) (theta - theta_0),   J = d f / d theta

whose training is kernel regression with the empirical neural tangent kernel
``K(x, x') = J(x) J(x')^T``. Lazy training (Chizat, Oyallon & Bach 2019) scales the output,
``alpha (f(theta) - f(theta_0))``; Boix-Adsera & Littwin (2023, "Tight conditions for when the
NTK approximation is valid", arXiv:2305.13141) show that the trained network stays within
``O(T / alpha)`` of the linearised one trained alongside it up to time ``T`` (square loss).

The functions here are pure: a model is given as ``f(params) -> outputs``, ``params`` a dict
of tensors (``torch.func.functional_call`` of a module), so they work for any model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Params = dict[str, torch.Tensor]
Fn = Callable[[Params], torch.Tensor]


def model_function(model: nn.Module, forward: Callable, batch: dict[str, torch.Tensor]) -> Fn:
    """``f(params) -> forward(model, batch)`` with ``model``'s parameters replaced by
    ``params`` (``torch.func.functional_call`` through a wrapper, so ``forward`` may be any
    objective's ``forward(model, batch)``); parameters not given keep their values.

    >>> net = nn.Linear(2, 1, bias=False)
    >>> f = model_function(net, lambda m, b: m(b["x"]), {"x": torch.ones(1, 2)})
    >>> f({"weight": torch.tensor([[1.0, 2.0]])})
    tensor([[3.]])
    """

    class Call(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self) -> torch.Tensor:
            return forward(self.model, batch)

    call = Call()

    def f(params: Params) -> torch.Tensor:
        named = {f"model.{k}": v for k, v in params.items()}
        return torch.func.functional_call(call, named, (), strict=False)

    return f


def empirical_ntk(f: Fn, params: Params) -> torch.Tensor:
    """``K = J J^T``, ``J: (n, P)`` the Jacobian of the flattened outputs ``f(params)``
    (``n`` numbers) with respect to every parameter: ``K: (n, n)``.

    >>> X = torch.tensor([[1.0, 0.0], [1.0, 2.0]])
    >>> empirical_ntk(lambda p: X @ p["w"], {"w": torch.zeros(2)})  # X X^T for f = X w
    tensor([[1., 1.],
            [1., 5.]])
    """
    jac = torch.func.jacrev(lambda p: f(p).reshape(-1))(params)  # name -> (n, *shape)
    J = torch.cat([j.reshape(j.shape[0], -1) for j in jac.values()], dim=1)
    return J @ J.T


def ntk_change(k_t: torch.Tensor, k_0: torch.Tensor) -> float:
    """Relative change of the empirical NTK, ``||K_t - K_0||_F / ||K_0||_F``: 0 in the
    kernel (lazy) regime, O(1) when the features move (the rich regime).

    >>> k0 = torch.eye(2)
    >>> ntk_change(k0, k0), ntk_change(2 * k0, k0)
    (0.0, 1.0)
    """
    return float(torch.linalg.norm(k_t - k_0) / torch.linalg.norm(k_0))


def linearised(f: Fn, theta_0: Params, theta: Params) -> torch.Tensor:
    """``f_lin(theta) = f(theta_0) + J(theta_0) (theta - theta_0)``, one forward-mode product
    (``torch.func.jvp``): the linearised network's outputs at ``theta``.

    >>> f = lambda p: p["w"] ** 2
    >>> linearised(f, {"w": torch.tensor([1.0])}, {"w": torch.tensor([3.0])})  # 1 + 2 (3 - 1)
    tensor([5.])
    """
    delta = {k: theta[k] - theta_0[k] for k in theta_0}
    f0, df = torch.func.jvp(f, (theta_0,), (delta,))
    return f0 + df


def linearisation_gap(f_t: torch.Tensor, f_lin: torch.Tensor) -> float:
    """Root mean square of ``f(theta_t) - f_lin(theta_lin_t)`` over every output of the probe
    batch (the quantity Boix-Adsera & Littwin bound by ``O(T / alpha)``).

    >>> linearisation_gap(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0]))
    1.4142135381698608
    """
    return float((f_t - f_lin).pow(2).mean().sqrt())


def linearised_grad(f: Fn, theta_0: Params, theta: Params, loss: Callable) -> Params:
    """The gradient of ``loss(f_lin(theta))`` with respect to ``theta``: ``J(theta_0)^T
    dL/df_lin`` (the Jacobian is fixed at ``theta_0``), by one ``jvp`` and one ``vjp``.

    >>> f = lambda p: p["w"] ** 2
    >>> g = linearised_grad(f, {"w": torch.tensor([1.0])}, {"w": torch.tensor([3.0])},
    ...                     lambda out: out.sum())
    >>> g["w"]  # J(theta_0) = 2 w_0 = 2
    tensor([2.])
    """
    with torch.enable_grad():
        out = linearised(f, theta_0, theta).detach().requires_grad_()
        (g_out,) = torch.autograd.grad(loss(out), out)
    _, vjp = torch.func.vjp(f, theta_0)
    return vjp(g_out)[0]
