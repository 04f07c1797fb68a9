"""Analytic networks for modular arithmetic: the grokked solution written down without training.

Gromov (2023, "Grokking modular arithmetic") gives the weights of the two-layer network
``f(x) = W (U x)^S`` (``x`` the concatenated one-hot operands, no biases) that computes
``(n_1 + ... + n_S) mod p``; Doshi, He, Das & Gromov (2024, "Grokking modular polynomials")
extend it to many terms and to multiplication. Neuron ``k`` has a frequency ``sigma(k)`` and
one random phase ``phi_kj`` per operand ``j``; with ``theta_k = 2 pi sigma(k) / p``::

    U_j[k, n] = cos(theta_k n + phi_kj)                 # layers.0.linear.weight, block j
    W[q, k]   = cos(-theta_k q - sum_j phi_kj)          # out.weight

Expanding ``(sum_j U_j[k, n_j])^S``, the only term whose phases cancel against ``W``'s is the
product of all ``S`` cosines, which contributes ``S! / 2^S cos(theta_k (n_1 + ... + n_S - q))``;
summed over neurons whose frequencies cover ``1..(p-1)/2`` evenly this is a Dirichlet kernel,
``(p delta - 1) / 2`` per round of frequencies, which peaks at ``q = sum_j n_j mod p``. Every
other term carries a nonzero combination of the random phases and averages out, like a random
walk: it is ``~sqrt(width)`` against a peak ``~width``, which is why accuracy grows with width.
The activation must be ``x^S``: with ``x^2`` the output is a sum of functions of operand
*pairs* and the product of all ``S`` cosines never appears (the same weights under ``x^2`` are
at chance for ``S = 3``), so ``terms > 2`` uses the MLP's ``activation="power"``.

Multiplication goes through discrete logarithms: with ``g`` a primitive root mod ``p``, for
nonzero operands ``n_1 ... n_S = g^(log n_1 + ... + log n_S)``, so the addition solution over
``Z_(p-1)`` is used with ``n`` replaced by ``log_g n`` on the first layer and ``q`` by
``log_g q`` on the output rows ``q != 0``. Logarithms say nothing about 0. Here the residue 0
has zero weight into those neurons, the output row of class 0 is zero on them, and one extra
*zero neuron* (the last) reads 1 on every operand's residue 0 and writes ``C`` to class 0
only, with ``C`` one more than the largest logit the other neurons can give when an operand is
0. So a product with a zero factor is always answered 0, and the other rows are the addition
solution.

The noise is ``~sqrt(width)`` whatever ``p`` (but for the log of the table size), so the
default width is a number of neurons, not of neurons per frequency: the smallest multiple of
``(p - 1) / 2`` that is at least ``512 * 8^(terms - 2)`` (plus the zero neuron for ``mul``),
e.g. 528 (529) for ``p = 97``. It gives 100% on the full table for every prime and seed tested
(half of it already did). Narrower networks degrade gracefully.

>>> net = analytic_mlp("add", 7)
>>> net(torch.tensor([[3, 5]])).argmax(1).item()  # (3 + 5) mod 7
1
>>> table_accuracy(net, "add", 7), net.out.weight.shape
(1.0, torch.Size([7, 513]))
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn

from learnscope.models.hooks import eval_mode
from learnscope.models.mlp import MLP, MLPConfig
from learnscope.number_theory import discrete_log_table, is_prime, primitive_root

__all__ = [
    "BASE_WIDTH",
    "analytic_mlp",
    "analytic_summary",
    "default_width",
    "discrete_log_table",
    "primitive_root",
    "table_accuracy",
]

Op = Literal["add", "mul"]

#: the default width is at least BASE_WIDTH * 8^(terms - 2)
BASE_WIDTH = 512


def _check(op: str, p: int, terms: int) -> None:
    if op not in ("add", "mul"):
        raise ValueError(f"op must be 'add' or 'mul' (got {op!r})")
    if p < 3 or not is_prime(p):
        raise ValueError(f"p must be an odd prime (got {p})")
    if terms < 2:
        raise ValueError(f"terms must be >= 2 (got {terms})")


def default_width(op: Op, p: int, terms: int = 2) -> int:
    """The smallest multiple of ``(p - 1) / 2`` (every frequency gets as many neurons) that is
    at least ``BASE_WIDTH * 8^(terms - 2)``, plus the zero neuron for ``mul``.

    >>> default_width("add", 97), default_width("mul", 97), default_width("add", 7, terms=3)
    (528, 529, 4098)
    """
    _check(op, p, terms)
    n_freq = (p - 1) // 2
    return n_freq * -(-BASE_WIDTH * 8 ** (terms - 2) // n_freq) + (op == "mul")


def analytic_weights(
    op: Op, p: int, width: int, terms: int = 2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """First-layer ``U: (width, terms * p)`` and output ``W: (p, width)`` weights, float64.

    Neuron ``k`` (of the ``width`` or, for ``mul``, ``width - 1`` frequency neurons) has
    frequency ``sigma(k) = 1 + k mod (p-1)/2``, so the frequencies are cycled through evenly.
    """
    _check(op, p, terms)
    n_freq = width - (op == "mul")
    if n_freq < 1:
        raise ValueError(f"width must be >= {1 + (op == 'mul')} for op {op!r} (got {width})")
    # position of each residue on the circle Z_m, and which residues take part
    if op == "add":
        m, pos, live = p, torch.arange(p, dtype=torch.float64), torch.ones(p, dtype=torch.bool)
    else:
        log = discrete_log_table(p)
        m, pos, live = p - 1, log.clamp_min(0).double(), log >= 0
    gen = torch.Generator().manual_seed(seed)
    sigma = 1 + torch.arange(n_freq) % ((p - 1) // 2)  # (n_freq,)
    phase = 2 * math.pi * torch.rand(n_freq, terms, generator=gen, dtype=torch.float64)
    angle = 2 * math.pi * sigma[:, None].double() * pos[None, :] / m  # (n_freq, p)
    u = torch.cos(angle[:, None, :] + phase[:, :, None]) * live  # (n_freq, terms, p)
    w = torch.cos(-angle - phase.sum(1, keepdim=True)).T * live[:, None]  # (p, n_freq)
    u = u.reshape(n_freq, terms * p)
    if op == "mul":  # the zero neuron: reads residue 0 of every operand, writes class 0
        zero_in = torch.zeros(1, terms, p, dtype=torch.float64)
        zero_in[..., 0] = 1.0
        zero_out = torch.zeros(p, 1, dtype=torch.float64)
        zero_out[0] = n_freq * (terms - 1) ** terms + 1  # > any logit of the other neurons
        u = torch.cat([u, zero_in.reshape(1, terms * p)])
        w = torch.cat([w, zero_out], 1)
    return u, w


def analytic_mlp(op: Op, p: int, width: int | None = None, terms: int = 2, seed: int = 0) -> MLP:
    """The project's :class:`MLP` (``depth=2, bias=False``, ``x^terms`` activation) with
    ``layers.0.linear.weight`` and ``out.weight`` set to the analytic solution of
    ``(n_1 op ... op n_terms) mod p``; ``width=None`` is :func:`default_width`."""
    width = default_width(op, p, terms) if width is None else width
    u, w = analytic_weights(op, p, width, terms, seed)
    act: dict[str, Any] = (
        {"activation": "quadratic"} if terms == 2 else {"activation": "power", "power": terms}
    )
    cfg = MLPConfig(n_inputs=terms, vocab=p, n_out=p, width=width, depth=2, bias=False, **act)
    net = MLP(cfg)
    with torch.no_grad():
        net.layers[0].linear.weight.copy_(u)
        net.out.weight.copy_(w)
    return net


def _table_labels(op: Op, x: torch.Tensor, p: int) -> torch.Tensor:
    y = x[:, 0] % p
    for j in range(1, x.shape[1]):
        y = (y + x[:, j]) % p if op == "add" else y * x[:, j] % p
    return y


def table_accuracy(
    model: nn.Module, op: Op, p: int, terms: int = 2, nonzero: bool = False, chunk: int = 1 << 14
) -> float:
    """Accuracy of ``model(x).argmax(1)`` on all ``p^terms`` operand tuples (only those with
    every operand nonzero when ``nonzero``), evaluated ``chunk`` rows at a time."""
    _check(op, p, terms)
    device = next(model.parameters()).device
    correct = total = 0
    with torch.no_grad(), eval_mode(model):
        for start in range(0, p**terms, chunk):
            index = torch.arange(start, min(start + chunk, p**terms), device=device)
            x = torch.stack([index // p**i % p for i in reversed(range(terms))], 1)
            if nonzero:
                x = x[(x != 0).all(1)]
            y = _table_labels(op, x, p)
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return correct / total


def analytic_summary(
    op: Op, p: int, terms: int = 2, width: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """What ``learnscope analytic`` reports: the network's size and its accuracy on the full
    table (and, for ``mul``, on nonzero operands). Its frequency profile is a probe:
    ``learnscope.probes.spectral.frequency_profile``."""
    net = analytic_mlp(op, p, width, terms, seed)
    out: dict[str, Any] = {
        "op": op,
        "p": p,
        "terms": terms,
        "width": net.cfg.width,
        "seed": seed,
        "accuracy": table_accuracy(net, op, p, terms),
    }
    if op == "mul":
        out["accuracy_nonzero"] = table_accuracy(net, op, p, terms, nonzero=True)
    return out
