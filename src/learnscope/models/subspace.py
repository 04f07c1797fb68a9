"""Training in a random subspace: ``theta = theta_0 + P z`` with only ``z`` learned.

Li, Farkhoor, Liu & Yosinski (2018), "Measuring the intrinsic dimension of objective
landscapes": a network's ``D`` parameters ``theta`` are frozen at their random initialisation
``theta_0`` and moved only within a random ``d``-dimensional subspace,

    theta = theta_0 + P z,    P: (D, d) fixed,    z: (d,) trained, starting at 0,

so the model at step 0 is exactly the initial network. The intrinsic dimension ``d_int90`` is
the smallest ``d`` at which the subspace-trained network reaches 90 % of the full network's
performance (``learnscope.studies.intrinsic_dim``). Two projections:

- ``dense``: ``P`` with ``N(0, 1)`` entries, each column scaled to unit length (``D d``
  floats: small models);
- ``fastfood``: the structured projection of Le, Sarlos & Smola (2013) as Li et al. use it,
  ``P z = (H G Pi H B pad(z))[:D] / (sqrt(L) ||G||)`` with ``L`` the power of two ``>= D``,
  ``H`` the (unnormalised) Walsh-Hadamard matrix, ``G`` a diagonal of ``N(0, 1)``, ``Pi`` a
  random permutation and ``B`` a diagonal of random signs: ``O(L log L)`` time, ``O(L)``
  memory. The scale makes every column of the ``L``-row projection unit length (its norm is
  ``sqrt(L) ||G||`` before scaling); the first ``D`` rows are kept.

:class:`Subspace` wraps a built model: the inner model's parameters become non-persistent
buffers (their values are ``theta_0``, kept flat in the buffer ``theta0``), the only parameter
is ``z``, and the forward pass calls the inner model with ``theta`` through
``torch.func.functional_call``. The inner model's submodules are registered on the wrapper
under their own names, so every activation site keeps its name (``layers.0.hook_post``,
``blocks.0.attn.hook_pattern``) and probes on activations work unchanged; probes on weights
(parameter sites) see ``z`` only.

>>> inner = torch.nn.Sequential(torch.nn.Linear(3, 2))
>>> net = Subspace(inner, dim=2, kind="dense", seed=0)
>>> [n for n, _ in net.named_parameters()], net.n_full
(['z'], 8)
>>> x = torch.randn(4, 3)
>>> bool(torch.allclose(net(x), inner(x)))  # z = 0: the initial network
True
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call

from learnscope.errors import UserError

#: floats a dense projection may hold (4 GiB of float32)
MAX_DENSE_FLOATS = 2**30


def fwht(x: torch.Tensor) -> torch.Tensor:
    """The unnormalised Walsh-Hadamard transform ``H x`` along the last axis (a power of 2).

    >>> fwht(torch.tensor([1.0, 0.0, 0.0, 0.0])).tolist(), fwht(torch.tensor([1.0, 1.0])).tolist()
    ([1.0, 1.0, 1.0, 1.0], [2.0, 0.0])
    """
    n = x.shape[-1]
    if n & (n - 1):
        raise ValueError(f"fwht needs a power-of-2 length (got {n})")
    lead = x.shape[:-1]
    h = 1
    while h < n:
        x = x.reshape(*lead, n // (2 * h), 2, h)
        x = torch.stack((x[..., 0, :] + x[..., 1, :], x[..., 0, :] - x[..., 1, :]), dim=-2)
        h *= 2
    return x.reshape(*lead, n)


class Subspace(nn.Module):
    """``inner`` trained as ``theta_0 + P z`` (module docstring)."""

    def __init__(self, inner: nn.Module, dim: int, kind: str = "dense", seed: int = 0) -> None:
        super().__init__()
        named = [(n, p) for n, p in inner.named_parameters()]
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.n_full = sum(p.numel() for _, p in named)  # D
        if not 1 <= dim <= self.n_full:
            raise UserError(
                f"train.subspace.dim: {dim}; allowed: 1 to the model's {self.n_full} parameters"
            )
        if kind not in ("dense", "fastfood"):
            raise UserError(f"train.subspace.kind: {kind!r}; allowed: dense, fastfood")
        if kind == "dense" and self.n_full * dim > MAX_DENSE_FLOATS:
            raise UserError(
                f"train.subspace.dim: a dense projection of {self.n_full} x {dim} floats is "
                f"{self.n_full * dim * 4 / 2**30:.1f} GiB; allowed: kind fastfood or a smaller dim"
            )
        self.dim, self.kind = dim, kind
        theta0 = torch.cat([p.detach().reshape(-1) for _, p in named])
        self.register_buffer("theta0", theta0.clone())
        for name, p in named:  # the inner parameters become (non-persistent) buffers
            owner, _, leaf = name.rpartition(".")
            module = inner.get_submodule(owner) if owner else inner
            del module._parameters[leaf]
            module.register_buffer(leaf, p.detach().clone(), persistent=False)
        object.__setattr__(self, "inner", inner)  # called functionally, not registered
        for child_name, child in inner.named_children():  # the sites keep their names
            self.add_module(child_name, child)
        self.cfg = getattr(inner, "cfg", None)
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + 7)
        if kind == "dense":
            p = torch.randn(self.n_full, dim, generator=g)
            self.register_buffer("proj", p / p.norm(dim=0, keepdim=True), persistent=False)
        else:
            size = 1 << max(0, math.ceil(math.log2(self.n_full)))  # L
            gauss = torch.randn(size, generator=g)
            self.register_buffer("ff_gauss", gauss, persistent=False)
            self.register_buffer("ff_perm", torch.randperm(size, generator=g), persistent=False)
            signs = torch.randint(0, 2, (size,), generator=g).float() * 2 - 1
            self.register_buffer("ff_signs", signs, persistent=False)
            self.ff_scale = 1.0 / (math.sqrt(size) * float(gauss.norm()))
        self.z = nn.Parameter(torch.zeros(dim))

    def offset(self) -> torch.Tensor:
        """``P z``: ``(D,)``."""
        if self.kind == "dense":
            return self.proj @ self.z
        size = self.ff_gauss.shape[0]
        v = torch.zeros(size, dtype=self.z.dtype, device=self.z.device)
        v = torch.cat([self.z, v[self.dim :]]) * self.ff_signs
        v = fwht(v)[self.ff_perm] * self.ff_gauss
        return fwht(v)[: self.n_full] * self.ff_scale

    def theta(self) -> dict[str, torch.Tensor]:
        """The inner model's parameters ``theta_0 + P z``, by name."""
        flat = self.theta0 + self.offset()
        out, start = {}, 0
        for name, shape in zip(self.names, self.shapes):
            n = math.prod(shape)
            out[name] = flat[start : start + n].view(shape)
            start += n
        return out

    def forward(self, *args, **kwargs):
        return functional_call(self.inner, self.theta(), args, kwargs)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, kind={self.kind}, D={self.n_full}"
