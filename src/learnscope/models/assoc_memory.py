"""An associative memory: a sum of outer products of fixed random embeddings.

Cabannes, Dohmatob & Bietti (2024), "Scaling laws for associative memories" (ICLR 2024): input
tokens ``x in 0..N-1`` and output tokens ``y in 0..M-1`` have fixed random embeddings
``e_x, u_y in R^d``; the memory is one ``d x d`` matrix

    W = sum_x q(x) e_x u_{f(x)}^T,        f_hat(x) = argmax_y  e_x^T W u_y

(we store ``W`` so that the score of ``y`` is ``e_x^T W u_y``, the paper's ``u_y^T W' e_x`` with
``W' = W^T``). ``W`` is either built in closed form from ``T`` samples (:func:`memory_matrix`,
the schemes ``q`` of :func:`store_weights`) or trained by gradient descent on the
cross-entropy of ``softmax_y(e_x^T W u_y)`` (this module as a model of the runner: ``W`` is its
only parameter, zero at init unless ``init_std``).

Embeddings (:func:`embeddings`): ``gaussian``, entries ``N(0, 1/d)`` (the paper's random
embeddings, ``|e| ~ 1``); ``orthogonal``, orthonormal rows (needs ``d >= N`` and ``d >= M``:
then every stored association is recalled exactly and nothing else interferes).

Prediction (:func:`predict`): the argmax of the scores; a row whose largest score is not
unique up to rounding (a token never stored, with orthogonal embeddings: every score 0) is no
answer, ``-1``, and counts as an error.

Activation sites (``learnscope.models.hooks``)::

    hook_embed    # (b, d) e_x
    hook_memory   # (b, d) e_x^T W
    hook_logits   # (b, n_out) scores

>>> net = AssocMemory(AssocMemoryConfig(vocab=10, n_out=5, d=8))
>>> [name for name, _ in net.named_parameters()], net(torch.tensor([[3], [4]])).shape
(['W'], torch.Size([2, 5]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from learnscope.models.hooks import HookPoint

Embeddings = Literal["gaussian", "orthogonal"]


@dataclass
class AssocMemoryConfig:
    n_inputs: int = 1  # tokens per example (from the task): one
    vocab: int = 100  # input tokens N (from the task)
    n_out: int = 100  # output tokens M (from the task)
    d: int = 64  # embedding dimension; W is d x d
    embeddings: Embeddings = "gaussian"
    init_std: float = 0.0  # W's entries N(0, init_std^2) at init; 0: W = 0

    def __post_init__(self) -> None:
        for field in ("vocab", "n_out", "d"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1 (got {getattr(self, field)})")
        if self.n_inputs != 1:
            raise ValueError(f"n_inputs must be 1: one input token (got {self.n_inputs})")
        if self.d > 4096:
            raise ValueError(f"d must be <= 4096 (got {self.d})")
        if self.embeddings == "orthogonal" and self.d < max(self.vocab, self.n_out):
            raise ValueError(
                f"orthogonal embeddings need d >= vocab and n_out (d={self.d}, vocab="
                f"{self.vocab}, n_out={self.n_out}); allowed: gaussian"
            )
        if not 0 <= self.init_std <= 1e3:
            raise ValueError(f"init_std must be in [0, 1e3] (got {self.init_std})")

    def n_params(self) -> int:
        return self.d * self.d

    def activation_floats(self) -> int:
        return 2 * self.d + 2 * self.n_out


def embeddings(
    n: int, d: int, kind: Embeddings = "gaussian", generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` random embeddings in ``R^d``, ``(n, d)`` float64: ``gaussian`` entries ``N(0,
    1/d)``; ``orthogonal`` orthonormal rows (``n <= d``; the QR of a Gaussian matrix).

    >>> e = embeddings(5, 8, "orthogonal", torch.Generator().manual_seed(0))
    >>> bool(torch.allclose(e @ e.T, torch.eye(5, dtype=e.dtype)))
    True
    """
    if kind == "gaussian":
        return torch.randn(n, d, generator=generator).double() / d**0.5
    if n > d:
        raise ValueError(f"orthogonal embeddings need n <= d (n={n}, d={d})")
    q, _ = torch.linalg.qr(torch.randn(d, n, generator=generator).double())
    return q.T.contiguous()


def store_weights(counts: torch.Tensor, scheme: str, k: int | None = None) -> torch.Tensor:
    """``q(x)`` for every input token from its count in ``T`` samples, ``(N,)`` float64.

    - ``seen``: ``q(x) = 1[x seen]`` (the paper's ``q_0``);
    - ``frequency``: ``q(x) = count / T``, the empirical frequency (``W`` is then the
      empirical mean of ``e_x u_y^T``, ``q = p`` in the limit of infinite data);
    - ``top``: ``q(x) = 1[x among the k most frequent seen tokens]`` (thresholding; ties in
      count broken by the smaller token id, the more probable one under Zipf).

    >>> store_weights(torch.tensor([3, 0, 1, 2]), "top", k=2).tolist()
    [1.0, 0.0, 0.0, 1.0]
    """
    counts = counts.double()
    if scheme == "seen":
        return (counts > 0).double()
    if scheme == "frequency":
        return counts / counts.sum().clamp_min(1)
    if scheme == "top":
        if k is None or k < 0:
            raise ValueError("scheme 'top' needs k >= 0")
        n = len(counts)
        order = sorted(range(n), key=lambda x: (-float(counts[x]), x))[:k]
        q = torch.zeros(n, dtype=torch.float64)
        q[order] = 1.0
        return q * (counts > 0)
    raise ValueError(f"unknown scheme {scheme!r}; allowed: seen, frequency, top")


def memory_matrix(
    e: torch.Tensor, u: torch.Tensor, f: torch.Tensor, q: torch.Tensor
) -> torch.Tensor:
    """``W = sum_x q(x) e_x u_{f(x)}^T``, ``(d, d)``: ``e: (N, d)``, ``u: (M, d)``, ``f: (N,)``
    the target of each input, ``q: (N,)`` (:func:`store_weights`)."""
    return (e * q[:, None]).T @ u[f]


def scores(e: torch.Tensor, w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``s[x, y] = e_x^T W u_y``, ``(N, M)``."""
    return e @ w @ u.T


def predict(s: torch.Tensor, tol: float = 1e-9) -> torch.Tensor:
    """The argmax of each row of scores ``s: (N, M)``; ``-1`` where the largest score is not
    unique (no answer): within ``tol x max(1, |largest|)`` of the second (the rounding of
    ``e_x^T W u_y`` leaves an unstored token's scores at ~1e-17, not exactly 0).

    >>> predict(torch.tensor([[0.0, 2.0, 1.0], [0.0, 0.0, 0.0]])).tolist()
    [1, -1]
    """
    if s.shape[1] == 1:
        return torch.zeros(len(s), dtype=torch.long)
    top = s.topk(2, dim=1)
    pred = top.indices[:, 0].clone()
    gap = top.values[:, 0] - top.values[:, 1]
    pred[gap <= tol * top.values[:, 0].abs().clamp_min(1)] = -1
    return pred


def zipf_error(pred: torch.Tensor, f: torch.Tensor, p: torch.Tensor) -> float:
    """``E = P_{x ~ p}(f_hat(x) != f(x)) = sum_x p(x) 1[pred(x) != f(x)]``, exact."""
    return float((p.double() * (pred != f).double()).sum())


class AssocMemory(nn.Module):
    """Scores ``e_x^T W u_y`` of one input token; ``E`` and ``U`` fixed (buffers, drawn from
    the global generator the runner seeds), ``W`` trained."""

    def __init__(self, cfg: AssocMemoryConfig) -> None:
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        self.register_buffer("E", embeddings(cfg.vocab, cfg.d, cfg.embeddings, gen).float())
        self.register_buffer("U", embeddings(cfg.n_out, cfg.d, cfg.embeddings, gen).float())
        self.W = nn.Parameter(torch.randn(cfg.d, cfg.d) * cfg.init_std)
        self.hook_embed = HookPoint()
        self.hook_memory = HookPoint()
        self.hook_logits = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (b, 1) input token ids -> scores (b, n_out)."""
        e = self.hook_embed(self.E[x[:, 0]].to(self.W.dtype))
        h = self.hook_memory(e @ self.W)
        return self.hook_logits(h @ self.U.to(self.W.dtype).T)
