"""Neural redshift: the complexity of the functions random networks compute (no training).

Teney, Nicolicioiu, Hartmann & Abbasnejad (CVPR 2024, "Neural redshift: random networks are
not random functions"): MLPs with random weights, evaluated on a grid of 2-D inputs, compute
functions of very unequal complexity. With ReLU they are simple (low frequency) whatever the
depth and the weight magnitude; with tanh, sine, Gaussian and similar activations the
complexity grows with the weight magnitude and the depth.

A random network here (:func:`random_mlp`): ``depth`` hidden layers of ``width`` units, then
one linear output; every weight and bias of a layer with ``fan_in`` inputs is drawn from
``N(0, scale^2 / (fan_in + 1))`` (the bias counted as the weight of a constant input), so
``scale`` is the paper's weight magnitude (scale 1: LeCun's variance; sqrt 2: He's, the
standard init of ReLU). Inputs: the ``G x G`` grid of cell centres ``x_j = -1 + (2 j + 1) / G``
in ``(-1, 1)^2``.

Two measures of the output ``f: (G, G)`` on the grid:

- :func:`mean_frequency`, the magnitude-weighted mean frequency of its 2-D spectrum. The grid
  is not periodic, so a discrete Fourier transform would see the jump between opposite edges
  as high frequencies (on a 64 grid a linear ramp scores 8.6 that way; here 2.1).
  The spectrum is the orthonormal 2-D DCT-II, ``F = C (f - mean f) C^T`` with
  ``C[k, j] ∝ cos(pi k (j + 1/2) / G)`` (the Fourier transform of the mirrored, hence
  periodic and continuous, function). Index ``k`` counts half-periods over the grid, and

      mean_freq = sum_k |k| |F(k)| / sum_k |F(k)|,   |k| = sqrt(k1^2 + k2^2)   (0 for a constant)

  (``cos(pi m (x1 + 1) / 2)`` on the grid has ``mean_freq = m``; white noise about ``0.76 G``).
- :func:`sign_compressibility`, the zlib-compressed size of the output's sign pattern (``G^2``
  bits, packed, row-major) over its packed size: near 0 for a constant sign, about 1 for
  random signs (the paper compresses with Lempel-Ziv; zlib is an LZ77 coder).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from learnscope.errors import UserError

__all__ = [
    "ACTIVATIONS",
    "grid",
    "mean_frequency",
    "measure",
    "random_functions",
    "random_mlp",
    "sign_compressibility",
    "white_noise_frequency",
]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "gelu": torch.nn.functional.gelu,
    "swish": torch.nn.functional.silu,
    "tanh": torch.tanh,
    "sin": torch.sin,
    "gaussian": lambda x: torch.exp(-(x**2)),
}

#: options of :func:`measure` and their defaults
DEFAULTS: dict[str, Any] = {
    "activations": ["relu", "tanh"],
    "depths": [1, 4],
    "scales": [1.0, 4.0],
    "width": 64,
    "nets": 20,
    "grid": 64,
}


def grid(size: int) -> torch.Tensor:
    """The ``size x size`` grid of cell centres of ``(-1, 1)^2`` as rows ``(size^2, 2)``
    (row-major, float64).

    >>> grid(2).tolist()
    [[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]]
    """
    axis = -1 + (2 * torch.arange(size, dtype=torch.float64) + 1) / size
    a, b = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([a.flatten(), b.flatten()], 1)


def dct_matrix(size: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``C: (size, size)``, ``C[k, j] = c_k cos(pi k (j + 1/2) /
    size)`` with ``c_0 = sqrt(1 / size)``, ``c_k = sqrt(2 / size)``.

    >>> c = dct_matrix(8)
    >>> bool(torch.allclose(c @ c.T, torch.eye(8, dtype=torch.float64)))
    True
    """
    j = torch.arange(size, dtype=torch.float64)
    c = torch.cos(math.pi * j[:, None] * (j[None, :] + 0.5) / size) * math.sqrt(2 / size)
    c[0] /= math.sqrt(2)
    return c


def mean_frequency(f: torch.Tensor) -> float:
    """Magnitude-weighted mean frequency of ``f: (G, G)`` on its DCT spectrum (module
    docstring; after Teney et al. 2024, who use the Fourier spectrum).

    >>> x = grid(32)[:, 0].reshape(32, 32)
    >>> round(mean_frequency(torch.cos(math.pi * 3 * (x + 1) / 2)), 6)
    3.0
    >>> mean_frequency(torch.ones(32, 32)), mean_frequency(x) < 2
    (0.0, True)
    """
    f = f.double()
    c1, c2 = dct_matrix(f.shape[0]), dct_matrix(f.shape[1])
    spectrum = (c1 @ (f - f.mean()) @ c2.T).abs()
    total = spectrum.sum().item()
    if total <= 1e-12 * max(1.0, f.abs().max().item()) * f.numel():
        return 0.0
    k1 = torch.arange(f.shape[0], dtype=torch.float64)
    k2 = torch.arange(f.shape[1], dtype=torch.float64)
    radius = torch.sqrt(k1[:, None] ** 2 + k2[None, :] ** 2)
    return (radius * spectrum).sum().item() / total


def sign_compressibility(f: torch.Tensor) -> float:
    """zlib-compressed size of the sign pattern ``f > 0`` over its packed size (module docstring).

    >>> sign_compressibility(torch.ones(64, 64)) < 0.05
    True
    >>> g = torch.Generator().manual_seed(0)
    >>> sign_compressibility(torch.randn(64, 64, generator=g)) > 0.95
    True
    """
    bits = np.packbits((f > 0).flatten().cpu().numpy())
    return len(zlib.compress(bits.tobytes(), 9)) / len(bits)


def white_noise_frequency(size: int) -> float:
    """Mean frequency of a flat spectrum on the ``size x size`` grid (the mean of ``|k|`` over
    every index but 0): about the expected value for white noise, a reference of a "random
    function" (about ``0.76 size``).

    >>> round(white_noise_frequency(64) / 64, 2)
    0.76
    """
    k = torch.arange(size, dtype=torch.float64)
    radius = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2).flatten()[1:]
    return radius.mean().item()


def random_mlp(
    activation: str, depth: int, width: int, scale: float, generator: torch.Generator
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A random MLP ``x: (n, 2) -> (n,)``: ``depth`` hidden layers of ``width``, weights and
    biases ``N(0, scale^2 / (fan_in + 1))`` (module docstring)."""
    act = ACTIVATIONS[activation]
    layers = []
    fan_in = 2
    for out in [width] * depth + [1]:
        std = scale / math.sqrt(fan_in + 1)
        w = torch.randn(fan_in, out, generator=generator, dtype=torch.float64) * std
        b = torch.randn(out, generator=generator, dtype=torch.float64) * std
        layers.append((w, b))
        fan_in = out

    def forward(x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, (w, b) in enumerate(layers):
            h = h @ w + b
            if i < depth:
                h = act(h)
        return h[:, 0]

    return forward


def random_functions(
    activation: str,
    depth: int,
    width: int,
    scale: float,
    nets: int,
    size: int,
    seed: int,
) -> dict[str, float]:
    """Mean and std over ``nets`` random MLPs of the mean frequency and sign compressibility
    of the function each computes on the ``size x size`` grid."""
    g = torch.Generator().manual_seed(seed)
    x = grid(size)
    freqs, comps = [], []
    for _ in range(nets):
        f = random_mlp(activation, depth, width, scale, g)(x).reshape(size, size)
        freqs.append(mean_frequency(f))
        comps.append(sign_compressibility(f))
    return {
        "freq": float(np.mean(freqs)),
        "freq_std": float(np.std(freqs)),
        "sign_zlib": float(np.mean(comps)),
        "sign_zlib_std": float(np.std(comps)),
    }


def key(what: str, activation: str, depth: int, scale: float) -> str:
    """The key of one measurement, e.g. ``freq/relu/depth4/scale2``."""
    return f"{what}/{activation}/depth{depth}/scale{scale:g}"


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` over :data:`DEFAULTS`, each checked; a :class:`UserError` names a bad one."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise UserError(f"options: unknown {unknown[0]!r}; allowed: {', '.join(DEFAULTS)}")
    opts = {**DEFAULTS, **options}
    acts = opts["activations"]
    if not isinstance(acts, list) or not acts or any(a not in ACTIVATIONS for a in acts):
        raise UserError(f"options.activations: a list of {', '.join(ACTIVATIONS)} (got {acts!r})")
    for name, lo, hi in (("depths", 1, 64), ("scales", 1e-3, 100.0)):
        vals = opts[name]
        ok = (
            isinstance(vals, list)
            and vals
            and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi
                for v in vals
            )
        )
        if not ok or (name == "depths" and any(not isinstance(v, int) for v in vals)):
            raise UserError(f"options.{name}: a non-empty list of numbers in [{lo}, {hi}]")
    for name, lo, hi in (("width", 1, 4096), ("nets", 1, 10_000), ("grid", 4, 512)):
        v = opts[name]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise UserError(f"options.{name}: an integer in [{lo}, {hi}] (got {v!r})")
    return opts


def measure(options: dict[str, Any], seed: int, store=None, progress=None) -> dict[str, float]:
    """Per (activation, depth, scale) of ``options``: the mean over ``nets`` random MLPs of the
    mean frequency (``freq/...``) and the sign compressibility (``sign_zlib/...``), keys from
    :func:`key`; and ``freq/white_noise``, a flat spectrum's mean frequency on the grid. Nothing
    is trained, so the store is not used."""
    opts = check_options(options)
    out: dict[str, float] = {"freq/white_noise": white_noise_frequency(opts["grid"])}
    cells = [(a, d, s) for a in opts["activations"] for d in opts["depths"] for s in opts["scales"]]
    for i, (a, d, s) in enumerate(cells):
        # one seed per cell, from the study's seed: cells are independent samples
        r = random_functions(a, d, opts["width"], s, opts["nets"], opts["grid"], seed * 1000 + i)
        out[key("freq", a, d, s)] = r["freq"]
        out[key("sign_zlib", a, d, s)] = r["sign_zlib"]
        if progress is not None:
            progress((i + 1) / len(cells), i + 1)
    return out
