"""The top ``k`` eigenvalues of a symmetric operator, exactly ``k`` of them even when Lanczos
meets an invariant subspace early (what the ``hessian_spectrum`` probe records; Sagun et al.
2017, "Empirical analysis of the Hessian of over-parametrized neural networks").

One Lanczos run from a random start (:func:`learnscope.probes.lanczos.lanczos`) sees each
distinct eigenvalue once: on a Hessian of low rank (linear regression on inputs of rank
``r``: ``H = 2 X^T X / n``) it stops after about ``r + 1`` steps with the Krylov space ``K``
invariant, and the eigenvalues it missed are those of ``A`` on ``K^perp`` (repeats of the ones
found, e.g. the zeros of the null space). :func:`top_k` then restarts on the deflated operator
``P A P``, ``P = I - Q Q^T`` (``Q`` the orthonormal basis found so far), from a random vector
in ``K^perp``, until ``steps`` products are spent or ``Q`` spans the space, and returns the
``min(k, n)`` largest Ritz values of all runs. With ``steps >= n`` they are the exact
eigenvalues.
"""

from __future__ import annotations

import torch

from learnscope.probes.lanczos import Matvec, _tridiagonal, lanczos


def top_k(
    matvec: Matvec, n: int, k: int, steps: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The ``min(k, n)`` largest eigenvalues of ``A`` (descending, float64) from at most
    ``max(steps, k)`` products ``A v``, restarting on ``K^perp`` after an early stop.

    >>> a = torch.diag(torch.tensor([3.0, 2.0] + [0.0] * 8, dtype=torch.float64))
    >>> top = top_k(lambda v: a @ v, 10, 4, 10, torch.Generator().manual_seed(0))
    >>> top.round(decimals=9).tolist()
    [3.0, 2.0, 0.0, 0.0]
    """
    k, budget = min(k, n), max(steps, k)
    ritz: list[torch.Tensor] = []
    basis = torch.zeros(0, n, dtype=torch.float64)

    def deflated(v: torch.Tensor) -> torch.Tensor:
        v = v - basis.T @ (basis @ v)
        w = matvec(v).double()
        return w - basis.T @ (basis @ w)

    while budget > 0 and len(basis) < n:
        v0 = torch.randn(n, generator=generator, dtype=torch.float64)
        for _ in range(2):  # into K^perp, twice
            v0 = v0 - basis.T @ (basis @ v0)
        if v0.norm() <= 1e-12:
            break
        alpha, beta, q = lanczos(deflated if len(basis) else matvec, n, budget, v0)
        ritz.append(torch.linalg.eigvalsh(_tridiagonal(alpha, beta)))
        basis = torch.cat([basis, q])
        budget -= len(alpha)
        if len(alpha) < min(budget + len(alpha), n - len(basis) + len(alpha)):
            continue  # an invariant subspace: what it did not see lies in K^perp
        break
    return torch.cat(ritz).sort(descending=True).values[:k]
