"""The Hessian's spectrum seen whole: its top eigenvalues by Lanczos and its density by
stochastic Lanczos quadrature, from Hessian-vector products only (the Hessian is never formed).

- :func:`lanczos`: ``m`` steps of the Lanczos iteration on a symmetric ``A: (n, n)`` given as
  ``matvec(v) = A v``, with full reorthogonalisation (each new vector is orthogonalised twice
  against every earlier one, so no ghost copies of converged eigenvalues appear), giving the
  tridiagonal ``T = Q^T A Q`` (``alpha`` its diagonal, ``beta`` its off-diagonal).
- :func:`top_eigenvalues`: the ``k`` largest Ritz values (eigenvalues of ``T``); the extreme
  eigenvalues of ``A`` converge first (Golub & Van Loan, "Matrix computations", ch. 10).
- :func:`slq_density`: the spectral density ``phi(t) = (1/n) sum_i delta(t - lambda_i)``
  smoothed by a Gaussian of width ``sigma``, estimated by stochastic Lanczos quadrature (Ubaru,
  Chen & Saad 2017, "Fast estimation of tr(f(A)) via stochastic Lanczos quadrature"; Ghorbani,
  Krishnan & Xiao 2019, "An investigation into neural net optimization via Hessian eigenvalue
  density"): for a random unit vector ``v``, ``v^T g(A) v = sum_j tau_j^2 g(theta_j)`` with
  ``theta_j`` the eigenvalues of the ``m``-step ``T`` started at ``v`` and ``tau_j`` the first
  components of its eigenvectors (Gauss quadrature nodes and weights), and ``E_v[v^T g(A) v] =
  tr(g(A)) / n``; so ``phi(t) ~ (1/n_v) sum_l sum_j tau_lj^2 N(t; theta_lj, sigma^2)``.
- :func:`hessian_matvec`: ``v -> H v`` for the Hessian of a loss w.r.t. parameters (double
  backward through one gradient), on flat float64 vectors.
- :func:`count_outliers`: how many top eigenvalues stand apart from the bulk (Sagun et al.
  2017, "Empirical analysis of the Hessian of over-parametrized neural networks": a bulk near 0
  and about as many outliers as classes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

Matvec = Callable[[torch.Tensor], torch.Tensor]


def lanczos(
    matvec: Matvec,
    n: int,
    steps: int,
    v0: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    tol: float = 1e-10,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(alpha (m,), beta (m - 1,), Q (m, n))`` of ``m <= steps`` Lanczos steps on ``A``
    (float64), started at ``v0`` (default: a Gaussian vector), normalised.

    ``A q_j = beta_{j-1} q_{j-1} + alpha_j q_j + beta_j q_{j+1}``; full reorthogonalisation
    (twice, "twice is enough"). Stops early when ``beta_j < tol |T|`` (an invariant subspace:
    then the Ritz values are exact eigenvalues of ``A``).

    >>> a = torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64))
    >>> alpha, beta, q = lanczos(lambda v: a @ v, 3, 3, generator=torch.Generator().manual_seed(0))
    >>> t = torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)
    >>> torch.linalg.eigvalsh(t).round(decimals=6).tolist()
    [1.0, 2.0, 3.0]
    """
    if n < 1 or steps < 1:
        raise ValueError(f"need n >= 1 and steps >= 1 (got n={n}, steps={steps})")
    steps = min(steps, n)
    v = torch.randn(n, generator=generator, dtype=torch.float64) if v0 is None else v0.double()
    q = v / v.norm()
    basis, alphas, betas = [q], [], []
    scale = 0.0
    for j in range(steps):
        w = matvec(q).double()
        alpha = float(q @ w)
        alphas.append(alpha)
        qs = torch.stack(basis)  # (j + 1, n)
        for _ in range(2):  # full reorthogonalisation, twice
            w = w - qs.T @ (qs @ w)
        beta = float(w.norm())
        scale = max(scale, abs(alpha), beta)
        if j == steps - 1 or beta <= tol * max(scale, 1e-300):
            break
        betas.append(beta)
        q = w / beta
        basis.append(q)
    return (
        torch.tensor(alphas, dtype=torch.float64),
        torch.tensor(betas, dtype=torch.float64),
        torch.stack(basis[: len(alphas)]),
    )


def _tridiagonal(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    return torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)


def top_eigenvalues(
    matvec: Matvec,
    n: int,
    k: int = 20,
    steps: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The ``k`` largest eigenvalues of ``A`` (descending), as Ritz values of ``steps``
    (default ``max(2k, k + 20)``, at most ``n``) Lanczos steps with full reorthogonalisation.

    >>> spectrum = torch.cat([torch.tensor([100.0, 50.0, 20.0]), torch.linspace(0, 1, 997)])
    >>> a = torch.diag(spectrum.double())  # three outliers and a bulk in [0, 1]
    >>> top_eigenvalues(lambda v: a @ v, 1000, k=3).round(decimals=6).tolist()
    [100.0, 50.0, 20.0]
    """
    steps = min(n, steps if steps is not None else max(2 * k, k + 20))
    alpha, beta, _ = lanczos(matvec, n, steps, generator=generator)
    ritz = torch.linalg.eigvalsh(_tridiagonal(alpha, beta)).flip(0)
    return ritz[:k]


def slq_nodes(
    matvec: Matvec,
    n: int,
    n_vectors: int = 4,
    steps: int = 60,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quadrature ``(nodes (n_vectors, m), weights (n_vectors, m))`` of stochastic Lanczos
    quadrature: for each Gaussian start vector the Ritz values and the squared first components
    of the eigenvectors of ``T`` (each row's weights sum to 1). ``sum_j w_lj g(theta_lj)``
    estimates ``tr(g(A)) / n``. A run that stops early (an invariant subspace) pads its row
    with weight 0."""
    nodes = torch.zeros(n_vectors, min(steps, n), dtype=torch.float64)
    weights = torch.zeros_like(nodes)
    for row in range(n_vectors):
        alpha, beta, _ = lanczos(matvec, n, steps, generator=generator)
        theta, u = torch.linalg.eigh(_tridiagonal(alpha, beta))
        m = len(theta)
        nodes[row, :m], weights[row, :m] = theta, u[0] ** 2
    return nodes, weights


def slq_density(
    matvec: Matvec,
    n: int,
    grid: torch.Tensor,
    sigma: float,
    n_vectors: int = 4,
    steps: int = 60,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The spectral density of ``A`` on ``grid: (g,)``, broadened by a Gaussian of width
    ``sigma``: ``phi(t) = (1/n_v) sum_l sum_j w_lj exp(-(t - theta_lj)^2 / (2 sigma^2)) /
    (sigma sqrt(2 pi))`` (Ghorbani et al. 2019, eq. 4; Ubaru et al. 2017), integrating to 1.

    >>> a = torch.diag(torch.tensor([0.0] * 50 + [10.0] * 50, dtype=torch.float64))
    >>> grid = torch.linspace(-2, 12, 1401, dtype=torch.float64)
    >>> phi = slq_density(lambda v: a @ v, 100, grid, 0.1, 8, 10, torch.Generator().manual_seed(0))
    >>> round(float(phi.sum() * (grid[1] - grid[0])), 3)
    1.0
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0 (got {sigma})")
    nodes, weights = slq_nodes(matvec, n, n_vectors, steps, generator)
    t = grid.double()[:, None, None]
    gauss = torch.exp(-((t - nodes) ** 2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    return (gauss * weights).sum((1, 2)) / n_vectors


def hessian_matvec(
    loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor]
) -> tuple[Matvec, int]:
    """``(v -> H v, n)`` for the Hessian ``H`` of ``loss_fn()`` w.r.t. ``params`` (``n``
    entries in all), on flat float64 vectors: one forward pass and gradient (kept with its
    graph), then one double backward per product (Pearlmutter 1994).

    >>> x = torch.zeros(2, requires_grad=True)
    >>> hv, n = hessian_matvec(lambda: x[0] ** 2 + 3 * x[0] * x[1], [x])
    >>> hv(torch.tensor([1.0, 0.0], dtype=torch.float64)).tolist(), n
    ([2.0, 3.0], 2)
    """
    params = list(params)
    grads = torch.autograd.grad(loss_fn(), params, create_graph=True)
    sizes = [p.numel() for p in params]

    def matvec(v: torch.Tensor) -> torch.Tensor:
        parts = [
            c.view_as(p).to(p.dtype)
            for c, p in zip(torch.split(v.to(params[0].device), sizes), params)
        ]
        hv = torch.autograd.grad(grads, params, grad_outputs=parts, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]).detach().double().cpu()

    return matvec, sum(sizes)


def count_outliers(eigenvalues: torch.Tensor, bulk_from: int | None = None) -> int:
    """How many of the top eigenvalues stand apart from the bulk: the position of the largest
    gap in ``log lambda`` among the positive top eigenvalues (descending), i.e. ``argmax_i
    log(lambda_i / lambda_{i+1})`` (1-based). ``bulk_from``: the gap is sought only among
    ``i < bulk_from`` (the largest outlier count allowed; default: all but the last).

    Sagun et al. 2017 see the outliers by eye (a bulk near zero, a few large eigenvalues
    separated from it); this rule reads the same picture off the top of the spectrum.

    >>> count_outliers(torch.tensor([50.0, 40.0, 30.0, 1.0, 0.9, 0.8]))
    3
    """
    lam = eigenvalues.double().sort(descending=True).values
    lam = lam[lam > 0]
    if len(lam) < 2:
        return len(lam)
    gaps = (lam[:-1].log() - lam[1:].log())[:bulk_from]
    return int(gaps.argmax()) + 1
