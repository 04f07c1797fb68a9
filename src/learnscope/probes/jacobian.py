"""Probes through derivatives: local rank, partial Jacobian norms and the Hessian's top
eigenvalue. They cost backward passes (``local_rank``: ``d_out``; ``partial_jacobian_norm``:
``n`` exact or ``n_proj`` estimated; ``hessian_top_eigenvalue``: ``iters`` Hessian-vector
products), so the probe runner computes them only when asked.

``f`` here maps a batch ``(b, d_in) -> (b, d_out)`` row by row (row ``i`` of the output depends
only on row ``i`` of the input: a network in eval mode). The Jacobians of all rows then come
from one ``torch.func.jacrev`` of ``x -> f(x).sum(0)``: its ``[:, i, :]`` slice is row ``i``'s
Jacobian. This works for modules that only accept batches (BatchNorm) as well.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.func import jacrev, vjp

from learnscope.probes.lanczos import hessian_matvec

Fn = Callable[[torch.Tensor], torch.Tensor]


def per_sample_jacobians(f: Fn, x: torch.Tensor) -> torch.Tensor:
    """Jacobian of each row's output w.r.t. its input: ``(b, d_in) -> (b, d_out, d_in)``."""
    if x.dim() != 2:
        raise ValueError(f"expected x: (b, d_in), got shape {tuple(x.shape)}")
    jac = jacrev(lambda v: f(v).sum(0))(x.detach())  # (d_out, b, d_in)
    return jac.permute(1, 0, 2).detach()


def local_rank(f: Fn, x: torch.Tensor, threshold: float = 1e-3) -> float:
    """Mean local rank of ``f`` over the samples ``x: (b, d_in)``.

    For each sample the Jacobian ``J = df(x_i)/dx_i`` (``d_out x d_in``); its local rank is
    the number of singular values above ``threshold`` times the largest one; returns the
    mean over the batch (Patel & Shwartz-Ziv 2024, "Learning to compress: local rank and
    information compression in deep neural networks"). Equals ``rank(W)`` for ``x -> W x``.

    >>> w = torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])
    >>> local_rank(lambda x: x @ w.T, torch.randn(5, 3))
    1.0
    """
    s = torch.linalg.svdvals(per_sample_jacobians(f, x).double())  # (b, min(d_out, d_in))
    ranks = (s > threshold * s[:, :1]).sum(1)
    return float(ranks.double().mean())


def partial_jacobian_norm(
    f: Fn,
    h: torch.Tensor,
    exact_max: int = 1024,
    n_proj: int = 16,
    generator: torch.Generator | None = None,
) -> float:
    """Averaged partial Jacobian norm (APJN) of ``f`` from layer ``l0`` to layer ``l``.

    ``f`` maps activations ``h: (b, n0)`` of layer ``l0`` to those of layer ``l``, ``(b, n)``;
    ``J = (1/n) E_h ||df(h)/dh||_F^2`` (Doshi, He & Gromov 2023, "Critical initialization of
    wide and deep neural networks using partial Jacobians"); ``||W||_F^2 / n`` for ``h -> W h``.
    Exact (``n`` backward passes, vectorised) when ``n <= exact_max``; above it the
    Hutchinson-style estimate ``||J||_F^2 = E_v ||v^T J||^2`` over ``n_proj`` Gaussian
    vectors ``v ~ N(0, I_n)``, one vector-Jacobian product each (unbiased; relative standard
    error ``sqrt(2 / (r * n_proj * b))`` for ``r`` equal singular values, at most
    ``sqrt(2 / (n_proj * b))``).

    >>> w = torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.0, 1.0]])
    >>> partial_jacobian_norm(lambda h: h @ w.T, torch.randn(4, 2))
    10.333333333333334
    """
    h = h.detach()
    if h.dim() != 2:
        raise ValueError(f"expected h: (b, n0), got shape {tuple(h.shape)}")
    out, pullback = vjp(f, h)
    b, n = out.shape
    if n <= exact_max:
        sq = per_sample_jacobians(f, h).double().pow(2).sum((1, 2))  # (b,)
        return float(sq.mean() / n)
    total = torch.zeros((), dtype=torch.float64)
    for _ in range(n_proj):
        v = torch.randn(out.shape, generator=generator, dtype=out.dtype).to(out.device)
        (g,) = pullback(v)  # row i: v_i^T J_i
        total += g.detach().double().pow(2).sum() / b
    return float(total / n_proj / n)


def hessian_top_eigenvalue(
    loss_fn: Callable[[], torch.Tensor],
    params: Sequence[torch.Tensor],
    iters: int = 20,
    tol: float = 1e-6,
    generator: torch.Generator | None = None,
) -> float:
    """Largest-magnitude eigenvalue of the Hessian of ``loss_fn()`` w.r.t. ``params``: the
    sharpness (as tracked by Cohen et al. 2021, "Edge of stability").

    Power iteration ``v <- Hv / |Hv|`` on Hessian-vector products (double backward through
    the gradient of one forward pass), ``iters`` steps at most, stopping when the Rayleigh
    quotient ``v^T H v`` changes by less than ``tol`` relative. The result is the Rayleigh
    quotient. For ``0.5 x^T A x`` it is the eigenvalue of ``A`` largest in magnitude.

    >>> x = torch.zeros(2, requires_grad=True)
    >>> a = torch.tensor([[3.0, 1.0], [1.0, 3.0]])
    >>> round(hessian_top_eigenvalue(lambda: 0.5 * x @ a @ x, [x]), 4)
    4.0
    """
    matvec, n = hessian_matvec(loss_fn, params)
    v = torch.randn(n, generator=generator, dtype=torch.float64)
    v /= v.norm()
    eig = 0.0
    for _ in range(iters):
        hv = matvec(v)
        new = float(v @ hv)
        norm = hv.norm()
        if norm == 0:
            return 0.0
        v = hv / norm
        done = abs(new - eig) <= tol * max(abs(new), 1e-30)
        eig = new
        if done:
            break
    return eig
