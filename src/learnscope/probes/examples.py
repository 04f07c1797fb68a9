"""Per-example records: each training example's loss, correctness and importance scores, and
the forgetting events read off a sequence of records.

**EL2N** (Paul, Ganguli & Dziugaite 2021, "Deep learning on a data diet: finding important
examples early in training", PAPERS.md 42): the error L2 norm of example ``(x, y)`` at weights
``w``, ``EL2N(x, y) = || softmax(f(w, x)) - onehot(y) ||_2``, in ``[0, sqrt(2)]``; the paper
averages it over a few training runs (seeds) early in training and keeps the examples with the
highest scores (the hardest) when it prunes.

**GraNd** (same paper): the norm of the example's loss gradient over every trained weight,
``GraNd(x, y) = || grad_w loss(f(w, x), y) ||_2``; one backward pass per example (costly:
computed with ``torch.func.vmap`` over per-example gradients).

**Forgetting events** (Toneva, Sordoni, Combes, Trischler, Bengio & Gordon 2019, "An
empirical study of example forgetting during deep neural network learning", PAPERS.md 43):
with ``acc_i^t = 1[argmax f(x_i; w_t) = y_i]`` at successive records ``t``, a forgetting
event of example ``i`` is ``acc_i^t > acc_i^{t+1}`` (correct, then wrong), a learning event
the reverse. An example is *unforgettable* if it is learned at some record and never
forgotten (no forgetting event); one never learned counts as forgotten infinitely often.
The paper reads ``acc`` each time the example is presented in a minibatch; here it is read
on the whole training split at the records of the ``examples`` probe (every ``every`` steps),
which counts the forgetting events between records (a forgetting undone before the next
record is not seen).

As a run's probe (``probes: [{probe: examples, every: N, grand: 0}]``, opt-in) the runner's
:class:`learnscope.train.examples.ExampleRecorder` writes these arrays for every training
example at each record (one ``.npz`` a step under the run's directory, read back by
``learnscope.examples(run)``); the registry's value on the probe batch is their mean
(``examples/el2n``, ``examples/grand``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Forward = Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]
Loss = Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]

#: rows per forward pass when a whole split is recorded
CHUNK = 4096


def el2n(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``|| softmax(logits_i) - onehot(y_i) ||_2`` per row; ``logits: (n, C)``, ``y: (n,)``
    -> ``(n,)`` (Paul et al. 2021). 0 for a confident correct row, ``sqrt(2)`` for a
    confident wrong one.

    >>> z = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    >>> [round(v, 4) for v in el2n(z, torch.tensor([0, 0, 0])).tolist()]  # 1/sqrt(2), 0, sqrt(2)
    [0.7071, 0.0, 1.4142]
    """
    p = torch.softmax(logits.float() if logits.dtype == torch.float16 else logits, -1)
    return (p - F.one_hot(y, logits.shape[-1]).to(p.dtype)).norm(dim=-1)


def per_example_loss(logits: torch.Tensor, y: torch.Tensor, loss: Loss) -> torch.Tensor:
    """``loss`` (a batch loss ``(logits, {"y": y}) -> scalar``, e.g. the objective's) of each
    row on its own; ``logits: (n, C)`` -> ``(n,)``.

    >>> z = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    >>> ce = lambda out, b: F.cross_entropy(out, b["y"])
    >>> [round(v, 4) for v in per_example_loss(z, torch.tensor([0, 1]), ce).tolist()]  # log 2
    [0.6931, 2.1269]
    """

    def one(row: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return loss(row[None], {"y": label[None]})

    try:
        return torch.func.vmap(one)(logits, y)
    except (RuntimeError, NotImplementedError):  # an op vmap cannot batch: one row at a time
        return torch.stack([one(r, t) for r, t in zip(logits, y)])


class _Call(nn.Module):
    """``forward(model, batch)`` as a module of ``model``'s parameters (for functional_call)."""

    def __init__(self, model: nn.Module, forward: Forward) -> None:
        super().__init__()
        self.model, self.fn = model, forward

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fn(self.model, batch)


def grand(
    model: nn.Module, forward: Forward, loss: Loss, batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    """``|| grad_w loss(f(w, x_i), y_i) ||_2`` over every trained parameter, per row of
    ``batch`` -> ``(n,)`` (Paul et al. 2021's GraNd at the current weights), with the model in
    whatever mode it is in (call it in eval mode).

    For a linear model ``f(x) = W x`` and squared error ``||W x - y||^2 / 2`` the gradient is
    ``(W x - y) x^T``, whose norm is ``||W x - y|| ||x||``:

    >>> lin = nn.Linear(2, 1, bias=False)
    >>> _ = lin.weight.data.copy_(torch.tensor([[1.0, 2.0]]))
    >>> b = {"x": torch.tensor([[1.0, 0.0], [0.0, 3.0]]), "y": torch.tensor([[0.0], [0.0]])}
    >>> mse = lambda out, bb: 0.5 * (out - bb["y"]).pow(2).sum()
    >>> grand(lin, lambda m, bb: m(bb["x"]), mse, b).tolist()  # 1 * 1, 6 * 3
    [1.0, 18.0]
    """
    call = _Call(model, forward)
    params = {f"model.{k}": p.detach() for k, p in model.named_parameters() if p.requires_grad}
    buffers = {f"model.{k}": b for k, b in model.named_buffers()}

    def one(p: dict[str, torch.Tensor], row: dict[str, torch.Tensor]) -> torch.Tensor:
        single = {k: v[None] for k, v in row.items()}
        out = torch.func.functional_call(call, (p, buffers), (single,))
        return loss(out, single)

    per_row = torch.func.grad(one)
    with torch.enable_grad():
        try:
            grads = torch.func.vmap(per_row, in_dims=(None, 0))(params, batch)
            squares = sum(g.pow(2).flatten(1).sum(1) for g in grads.values())
        except (RuntimeError, NotImplementedError):  # e.g. a fused kernel: row by row
            n = len(next(iter(batch.values())))
            rows = [per_row(params, {k: v[i] for k, v in batch.items()}) for i in range(n)]
            squares = torch.stack([sum(g.pow(2).sum() for g in r.values()) for r in rows])
    return squares.sqrt()


@torch.no_grad()
def _logits(model: nn.Module, forward: Forward, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    n = len(next(iter(batch.values())))
    parts = [
        forward(model, {k: v[i : i + CHUNK] for k, v in batch.items()}) for i in range(0, n, CHUNK)
    ]
    return torch.cat(parts)


def records(
    model: nn.Module,
    forward: Forward,
    loss: Loss,
    batch: dict[str, torch.Tensor],
    with_grand: bool = False,
) -> dict[str, np.ndarray]:
    """Each row's ``loss`` (float32), ``correct`` (bool: argmax equals the label), ``el2n``
    (float32) and, with ``with_grand``, ``grand`` (float32), as numpy arrays ``(n,)``: one
    record of the ``examples`` probe. The model is read as it is (put it in eval mode).

    >>> lin = nn.Linear(2, 2, bias=False)
    >>> _ = lin.weight.data.copy_(torch.eye(2) * 100)
    >>> b = {"x": torch.tensor([[1.0, 0.0], [1.0, 0.0]]), "y": torch.tensor([0, 1])}
    >>> r = records(lin, lambda m, bb: m(bb["x"]), lambda o, bb: F.cross_entropy(o, bb["y"]), b)
    >>> r["correct"].tolist(), [round(float(v), 4) for v in r["el2n"]], r["loss"].tolist()
    ([True, False], [0.0, 1.4142], [0.0, 100.0])
    """
    logits = _logits(model, forward, batch)
    y = batch["y"]
    with torch.no_grad():
        out = {
            "loss": per_example_loss(logits, y, loss),
            "correct": logits.argmax(-1) == y,
            "el2n": el2n(logits, y),
        }
    if with_grand:
        n = len(y)
        out["grand"] = torch.cat(
            [
                grand(model, forward, loss, {k: v[i : i + CHUNK] for k, v in batch.items()})
                for i in range(0, n, CHUNK)
            ]
        )
    return {
        k: v.detach().cpu().numpy().astype(bool if k == "correct" else np.float32)
        for k, v in out.items()
    }


# -- forgetting (Toneva et al. 2019) -----------------------------------------------------------


def forgetting_events(correct: np.ndarray) -> np.ndarray:
    """The number of forgetting events of each example: records ``t`` with ``correct[t, i]``
    and not ``correct[t + 1, i]``; ``correct: (T, n)`` bool, records in time order -> ``(n,)``
    int.

    >>> forgetting_events(np.array([[0, 1, 1], [1, 0, 1], [0, 1, 1], [1, 0, 1]], bool))
    array([1, 2, 0])
    """
    c = np.asarray(correct, dtype=bool)
    return (c[:-1] & ~c[1:]).sum(0)


def learned(correct: np.ndarray) -> np.ndarray:
    """Whether each example is correct at some record; ``correct: (T, n)`` -> ``(n,)`` bool."""
    return np.asarray(correct, dtype=bool).any(0)


def unforgettable(correct: np.ndarray) -> np.ndarray:
    """Examples learned at some record and never forgotten (no forgetting event), ``(n,)``
    bool (Toneva et al. 2019).

    >>> unforgettable(np.array([[0, 1, 0], [1, 1, 0], [1, 0, 0]], bool)).tolist()
    [True, False, False]
    """
    return learned(correct) & (forgetting_events(correct) == 0)


def forgetting_score(correct: np.ndarray) -> np.ndarray:
    """Toneva et al.'s ordering of examples: the forgetting events, ``inf`` for an example
    never learned (it counts as forgotten infinitely often) -> ``(n,)`` float.

    >>> forgetting_score(np.array([[1, 0, 0], [0, 1, 0]], bool)).tolist()
    [1.0, 0.0, inf]
    """
    out = forgetting_events(correct).astype(float)
    out[~learned(correct)] = np.inf
    return out
