"""Criticality of deep random MLPs read off partial Jacobians (Doshi, He & Gromov 2023,
"Critical initialization of wide and deep neural networks using partial Jacobians").

The network is the paper's: ``x ~ N(0, I_N)``, ``h^1 = W^1 x + b^1`` and
``h^{l+1} = W^{l+1} phi(norm(h^l)) + b^{l+1}`` for ``l = 1 .. L - 1``, every layer of width
``N``, ``W_ij ~ N(0, sigma_w^2 / N)``, ``b_i ~ N(0, sigma_b^2)``; ``norm`` is the identity, or
LayerNorm without affine parameters applied to the pre-activations (``layernorm``).

The averaged partial Jacobian norm (APJN) between layers ``l0 <= l``,
``J^{l0,l} = (1/N) E_x sum_ij (dh^l_i / dh^{l0}_j)^2`` (that is ``Tr(J J^T) / N``), is
:func:`learnscope.probes.jacobian.partial_jacobian_norm`: exact for a small width, else
estimated with random vectors, averaged over the ``rows`` inputs. At infinite width it
factorises, ``J^{l0,l} = prod_{k=l0}^{l-1} chi_J^k`` with ``chi_J^k = J^{k,k+1}``, so deep
networks have ``J^{1,L}`` exponentially large (``chi_J > 1``, chaotic), exponentially small
(``chi_J < 1``, ordered), or a power law of ``L`` at criticality, ``chi_J = 1``.

Mean field (the paper's recursions, Gaussian expectations by Gauss-Hermite quadrature,
``z ~ N(0, 1)``): the pre-activation variance ``K^{l+1} = sigma_w^2 E[phi(sqrt(K^l) z)^2] +
sigma_b^2`` and ``chi_J = sigma_w^2 E[phi'(sqrt(K) z)^2]``; with LayerNorm the variance no
longer matters, ``chi_J = sigma_w^2 E[phi'(z)^2] / (sigma_w^2 E[phi(z)^2] + sigma_b^2)``. Closed
forms: ReLU ``chi_J = sigma_w^2 / 2`` (critical point ``sigma_w^2 = 2, sigma_b = 0``); tanh at
``sigma_b = 0`` ``chi_J -> sigma_w^2`` as ``K -> 0`` (critical point ``sigma_w^2 = 1``), and a
critical line for ``sigma_b > 0``; ReLU with LayerNorm ``chi_J = sigma_w^2 / (sigma_w^2 +
2 sigma_b^2)``: critical along the whole line ``sigma_b = 0``.

>>> round(mean_field_chi("relu", 3.0, 0.0), 6), round(mean_field_chi("tanh", 0.5, 0.0), 6)
(1.5, 0.5)
>>> round(critical_sigma_w2("relu", 0.0), 6), round(critical_sigma_w2("tanh", 0.0), 2)
(2.0, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from learnscope.probes.jacobian import partial_jacobian_norm


def _dgelu(h):
    return 0.5 * (1 + _erf(h / math.sqrt(2))) + h * np.exp(-h * h / 2) / math.sqrt(2 * math.pi)


def _erf(h: np.ndarray) -> np.ndarray:
    return torch.special.erf(torch.from_numpy(h)).numpy()


#: activation -> (phi, phi') on NumPy arrays (mean field) ...
MEAN_FIELD = {
    "relu": (lambda h: np.maximum(h, 0), lambda h: (h > 0).astype(float)),
    "tanh": (np.tanh, lambda h: 1 - np.tanh(h) ** 2),
    "gelu": (lambda h: h * 0.5 * (1 + _erf(h / math.sqrt(2))), _dgelu),
}
#: ... and phi on float64 tensors (the measured networks)
ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "gelu": F.gelu}

_Z, _W = np.polynomial.hermite_e.hermegauss(100)  # even: the ReLU kink falls between nodes
_W = _W / math.sqrt(2 * math.pi)


def gaussian_mean(fn, variance: float) -> float:
    """``E[fn(h)]`` for ``h ~ N(0, variance)`` by 100-point Gauss-Hermite quadrature."""
    return float(_W @ fn(math.sqrt(max(variance, 0.0)) * _Z))


def mean_field_chi(
    act: str,
    sigma_w2: float,
    sigma_b2: float,
    layernorm: bool = False,
    depth: int | None = None,
) -> float:
    """``chi_J = J^{l,l+1}`` at infinite width: at the fixed point of the variance map (at
    most 2000 layers in: near criticality ``K`` approaches it as a power law), or, with
    ``depth``, at layer ``depth - 1`` of a network fed ``x ~ N(0, I)`` (the measured
    ``J^{L-1,L}``). ReLU's ``chi_J`` does not depend on ``K``. See the module docstring."""
    phi, dphi = MEAN_FIELD[act]
    if layernorm:
        return (
            sigma_w2
            * gaussian_mean(lambda h: dphi(h) ** 2, 1.0)
            / (sigma_w2 * gaussian_mean(lambda h: phi(h) ** 2, 1.0) + sigma_b2)
        )
    k = sigma_w2 + sigma_b2  # K^1: the input has unit variance per coordinate
    for _ in range(0 if act == "relu" else (depth or 2000) - 2):
        new = sigma_w2 * gaussian_mean(lambda h: phi(h) ** 2, k) + sigma_b2
        if not 1e-30 < new < 1e30 or (depth is None and abs(new - k) <= 1e-10 * k):
            k = min(max(new, 0.0), 1e30)
            break
        k = new
    return sigma_w2 * gaussian_mean(lambda h: dphi(h) ** 2, k)


def critical_sigma_w2(
    act: str,
    sigma_b2: float,
    layernorm: bool = False,
    depth: int | None = None,
    lo: float = 0.05,
    hi: float = 50.0,
) -> float | None:
    """The ``sigma_w^2`` in ``[lo, hi]`` where :func:`mean_field_chi` crosses 1 (bisection),
    or None where it does not cross (ReLU with LayerNorm at ``sigma_b = 0``: ``chi_J = 1``
    everywhere)."""

    def gap(s: float) -> float:
        return mean_field_chi(act, s, sigma_b2, layernorm, depth) - 1

    if gap(lo) >= 0 or gap(hi) <= 0 or abs(gap(lo)) < 1e-9:
        return None
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gap(mid) < 0 else (lo, mid)
    return (lo + hi) / 2


# -- the measured scan ---------------------------------------------------------------------


def _chain(h: torch.Tensor, w, b, start: int, end: int, act: str, ln: bool) -> torch.Tensor:
    """``h^{start} -> h^{end}``, ``h^{l+1} = W^{l+1} phi(norm(h^l)) + b^{l+1}``, ``h: (rows, N)``,
    ``w: (L, N, N)``, ``b: (L, N)`` (index ``l`` holds ``W^{l+1}``)."""
    for layer in range(start, end):
        if ln:
            h = F.layer_norm(h, h.shape[-1:])
        h = ACTIVATIONS[act](h) @ w[layer].T + b[layer]
    return h


@dataclass
class Scan:
    """A measured phase diagram: ``apjn[i, j] = J^{1,L}`` and ``chi[i, j]``, the per-layer
    factor over the last ``window`` layers, ``(J^{L-window,L})^(1/window)``, at
    ``sigma_b = sigma_b[i]``, ``sigma_w^2 = sigma_w2[j]``."""

    act: str
    depth: int
    width: int
    layernorm: bool
    window: int
    sigma_w2: np.ndarray  # (n_w,)
    sigma_b: np.ndarray  # (n_b,)
    apjn: np.ndarray  # (n_b, n_w)
    chi: np.ndarray  # (n_b, n_w)

    def crossing(self, i: int, of: str = "chi") -> float | None:
        """The ``sigma_w^2`` where row ``i`` of ``chi`` (or ``apjn``) first crosses 1 from below,
        interpolated linearly in ``log`` between grid points; None if it does not."""
        y = np.log(getattr(self, of)[i])
        for j in range(len(y) - 1):
            if y[j] < 0 <= y[j + 1]:
                t = -y[j] / (y[j + 1] - y[j])
                return float(self.sigma_w2[j] + t * (self.sigma_w2[j + 1] - self.sigma_w2[j]))
        return None

    def theory(self, i: int) -> float | None:
        """The mean-field critical ``sigma_w^2`` at ``sigma_b[i]`` (infinite depth)."""
        return critical_sigma_w2(self.act, float(self.sigma_b[i]) ** 2, self.layernorm)


def scan(
    act: str,
    depth: int,
    width: int,
    sigma_w2: list[float],
    sigma_b: list[float],
    layernorm: bool = False,
    rows: int = 16,
    n_proj: int = 8,
    exact_max: int = 32,
    window: int | None = None,
    seed: int = 0,
) -> Scan:
    """Measure ``J^{1,L}`` and ``chi_J`` over the grid ``sigma_w2 x sigma_b`` on one draw of
    standard weights ``W~, b~`` (the same for every cell: ``W = sigma_w W~ / sqrt(N)``,
    ``b = sigma_b b~``, so neighbouring cells differ by their scales only), in float64.

    ``chi_J`` is the geometric mean of ``J^{l,l+1}`` over the last ``window`` layers (default
    ``depth // 4``), ``(J^{L-window,L})^(1/window)``: one layer's ``J^{l,l+1}`` is a single
    draw (standard deviation about 0.05 at width 128); deep in the network the variance ``K``
    has settled, so this is the paper's ``chi_J`` at the fixed point. Both APJNs are estimated
    with ``n_proj`` random vectors above ``exact_max`` (exact below)."""
    if act not in ACTIVATIONS:
        raise ValueError(f"act must be one of {', '.join(ACTIVATIONS)} (got {act!r})")
    if depth < 3 or width < 2:
        raise ValueError(f"need depth >= 3 and width >= 2 (got {depth}, {width})")
    window = max(1, depth // 4) if window is None else window
    if not 1 <= window < depth:
        raise ValueError(f"window must be in [1, depth) (got {window})")
    g = torch.Generator().manual_seed(seed)
    w0 = torch.randn(depth, width, width, generator=g, dtype=torch.float64) / math.sqrt(width)
    b0 = torch.randn(depth, width, generator=g, dtype=torch.float64)
    x = torch.randn(rows, width, generator=g, dtype=torch.float64)
    apjn = np.zeros((len(sigma_b), len(sigma_w2)))
    chi = np.zeros_like(apjn)
    for i, sb in enumerate(sigma_b):
        for j, sw2 in enumerate(sigma_w2):
            w, b = math.sqrt(sw2) * w0, sb * b0
            h1 = x @ w[0].T + b[0]  # h^1
            deep = _chain(h1, w, b, 1, depth - window, act, layernorm)  # h^{L - window}
            gen = torch.Generator().manual_seed(seed + 1)
            apjn[i, j] = partial_jacobian_norm(
                lambda h, w=w, b=b: _chain(h, w, b, 1, depth, act, layernorm),
                h1,
                exact_max,
                n_proj,
                gen,
            )
            last = partial_jacobian_norm(
                lambda h, w=w, b=b: _chain(h, w, b, depth - window, depth, act, layernorm),
                deep,
                exact_max,
                n_proj,
                gen,
            )
            chi[i, j] = last ** (1 / window)
    return Scan(
        act, depth, width, layernorm, window, np.array(sigma_w2), np.array(sigma_b), apjn, chi
    )
