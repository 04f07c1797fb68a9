"""Model collapse in linear regression, replacing versus accumulating data (Gerstgrasser,
Schaeffer, Dey, Rafailov, ..., Donoho & Koyejo 2024, "Is model collapse inevitable? Breaking the
curse of recursion by accumulating real and synthetic data"; after Dohmatob et al. 2024).

The setting: a fixed design ``X: (T, d)`` with rows ``N(0, I_d)``, a true ``w*``, and labels
``y_1 = X w* + eps_1``, ``eps ~ N(0, sigma^2 I_T)``. Generation ``i`` fits ordinary least squares
and labels the same ``X`` for the next one: ``y_{i+1} = X w_i + eps_{i+1}`` (fresh noise).

- **replace**: ``w_i`` is fit on ``(X, y_i)`` alone. Then ``w_i = w_{i-1} + A eps_i`` with
  ``A = (X^T X)^-1 X^T``, and the test error (the excess risk on a fresh ``x ~ N(0, I_d)``,
  ``E ||w_n - w*||^2``) is ``E(n) = sigma^2 d n / (T - d - 1)``: it grows linearly in the
  number of generations ``n``.
- **accumulate**: ``w_i`` is fit on every ``(X, y_j), j <= i`` stacked. Then ``w_i = w_{i-1} +
  A eps_i / i`` and ``E(n) = sigma^2 d / (T - d - 1) sum_{i <= n} 1/i^2 <=
  pi^2 sigma^2 d / (6 (T - d - 1))``: bounded.

Both use ``E tr((X^T X)^-1) = d / (T - d - 1)`` for Gaussian ``X`` (the mean of an inverse
Wishart). The formulas are our derivation, consistent with the paper's claims (PAPERS.md 15);
:func:`simulate` checks them by Monte Carlo.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

Mode = Literal["replace", "accumulate"]


def expected_error(n: int, mode: Mode, sigma: float, d: int, T: int) -> float:
    """The closed-form test error after ``n`` generations (module docstring); ``T > d + 1``.

    >>> expected_error(10, "replace", 1.0, 10, 111)  # 10 * 10 / 100
    1.0
    >>> round(expected_error(10**6, "accumulate", 1.0, 10, 111), 4)  # -> pi^2 / 60
    0.1645
    """
    if T <= d + 1:
        raise ValueError(f"need T > d + 1 (got T={T}, d={d})")
    unit = sigma**2 * d / (T - d - 1)
    if mode == "replace":
        return unit * n
    if mode == "accumulate":
        if n > 10**5:  # the tail of sum 1/i^2 past n is 1/n to first order
            return unit * (math.pi**2 / 6 - 1 / n)
        return unit * sum(1 / i**2 for i in range(1, n + 1))
    raise ValueError(f"mode must be replace or accumulate (got {mode!r})")


def accumulate_bound(sigma: float, d: int, T: int) -> float:
    """``pi^2 sigma^2 d / (6 (T - d - 1))``: the accumulate error never exceeds this."""
    return math.pi**2 * sigma**2 * d / (6 * (T - d - 1))


def simulate(
    generations: int,
    mode: Mode,
    sigma: float,
    d: int,
    T: int,
    trials: int,
    seed: int = 0,
) -> np.ndarray:
    """Monte-Carlo test error ``||w_n - w*||^2`` for ``n = 1..generations``, averaged over
    ``trials`` draws of ``X``, ``w*`` and the noise: shape ``(generations,)``.

    Each generation is an actual least-squares fit (``numpy.linalg.lstsq``) on the data the
    mode prescribes: ``(X, y_i)`` when replacing, every ``(X, y_j), j <= i`` stacked when
    accumulating.
    """
    if mode not in ("replace", "accumulate"):
        raise ValueError(f"mode must be replace or accumulate (got {mode!r})")
    rng = np.random.default_rng(seed)
    errors = np.zeros(generations)
    for _ in range(trials):
        X = rng.standard_normal((T, d))
        w_star = rng.standard_normal(d)
        w, labels = w_star, []
        for i in range(generations):
            labels.append(X @ w + sigma * rng.standard_normal(T))  # y_{i+1} from w_i (w_0 = w*)
            if mode == "replace":
                design, y = X, labels[-1]
            else:
                design, y = np.tile(X, (len(labels), 1)), np.concatenate(labels)
            w = np.linalg.lstsq(design, y, rcond=None)[0]
            errors[i] += np.sum((w - w_star) ** 2)
    return errors / trials
