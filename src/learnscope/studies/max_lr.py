"""Maximal initial learning rate: the largest constant learning rate at which a freshly
initialised ReLU MLP still begins to train, over depth x width.

Iyer, Hanin & Rolnick (ICML 2023, "Maximal initial learning rates in deep ReLU networks")
define ``eta*`` as the largest learning rate at which a randomly initialised network
successfully begins training, and find that in constant-width ReLU MLPs it is well predicted
by a power of depth x width, ``eta* ~ c (L n)^(-beta)`` (when the width is large against the
depth and the input layer is trained at a smaller learning rate).

Here, per member ``(L, n)`` of ``depths x widths`` (``L`` = ``model.depth``, the linear layers;
``n`` = ``model.width``), an MLP of that shape is trained by full-batch SGD at a constant
learning rate ``lr`` for ``steps`` steps through :func:`learnscope.runner.execute` (every try
is a run of the store). It **trains** at ``lr`` when it did not diverge and its final training
loss is below ``factor`` times its loss at step 0 (:func:`trains`). ``eta*`` is found by
bisection on ``log lr`` (:func:`bisect_log`): the largest ``lr`` in ``[lr_min, lr_max]`` that
trains, to a relative precision ``2^(1 / 2^iters)``-ish (``iters`` halvings of the log range),
assuming a single threshold (trains below it, fails above). Then ``log eta*`` is fitted by
least squares against ``log(L n)``: ``slope`` is ``-beta``, ``r2`` the fit's R^2.

Differences from the paper: every layer here is trained at the same learning rate (their
condition (ii) is not met), the task is a small Gaussian-cluster classification
(``xor_clusters``, low dimension) rather than MNIST / CIFAR-10, and "trains" is a loss drop
within a fixed budget rather than reaching a threshold accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from learnscope.errors import UserError

__all__ = ["DEFAULTS", "bisect_log", "fit_power", "measure", "trains"]

DEFAULTS: dict[str, Any] = {
    "depths": [2, 4, 8],
    "widths": [32, 128],
    "steps": 40,
    "factor": 0.7,
    "lr_min": 0.02,
    "lr_max": 100.0,
    "iters": 8,
    "task": {"name": "xor_clusters", "dim": 16, "mu": 4.0, "n_train": 256, "n_test": 64},
}


def bisect_log(ok: Callable[[float], bool], lo: float, hi: float, iters: int) -> float:
    """The largest ``x`` in ``[lo, hi]`` with ``ok(x)``, by bisection on ``log x`` (``ok`` is
    assumed true from ``lo`` up to one threshold and false above it): 0.0 if ``ok(lo)``
    fails (``lo`` too small to train in the budget, or already too large), ``hi`` if
    ``ok(hi)`` holds; else ``iters`` halvings of ``[log lo, log hi]``, returning the last
    ``x`` that held (within a factor ``(hi / lo)^(2^-iters)`` below the threshold).

    Gradient descent on ``f(x) = L x^2 / 2`` multiplies ``x`` by ``1 - lr L`` per step, so the
    loss after ``N`` steps is below ``factor`` times the first iff ``|1 - lr L|^(2N) <
    factor``, i.e. ``lr < (1 + factor^(1/2N)) / L`` (-> ``2 / L``):

    >>> L, N = 4.0, 50
    >>> ok = lambda lr: abs(1 - lr * L) ** (2 * N) < 0.5
    >>> round(bisect_log(ok, 0.05, 10.0, 30), 4), round((1 + 0.5 ** (1 / (2 * N))) / L, 4)
    (0.4983, 0.4983)
    """
    if not 0 < lo < hi:
        raise ValueError(f"need 0 < lo < hi (got {lo}, {hi})")
    if not ok(lo):
        return 0.0
    if ok(hi):
        return hi
    a, b = math.log(lo), math.log(hi)  # ok at a, not at b
    for _ in range(iters):
        mid = (a + b) / 2
        if ok(math.exp(mid)):
            a = mid
        else:
            b = mid
    return math.exp(a)


def fit_power(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least-squares fit ``log y = a + slope log x``: ``(slope, exp(a), r2)``.

    >>> s, c, r2 = fit_power([1, 2, 4, 8], [3.0, 1.5, 0.75, 0.375])
    >>> round(s, 6), round(c, 6), round(r2, 6)
    (-1.0, 3.0, 1.0)
    """
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((x - mx) ** 2 for x in lx)
    sxy = sum((x - mx) * (y - my) for x, y in zip(lx, ly))
    syy = sum((y - my) ** 2 for y in ly)
    slope = sxy / sxx
    r2 = (sxy * sxy) / (sxx * syy) if syy > 0 else 1.0
    return slope, math.exp(my - slope * mx), r2


def trains(summary: dict[str, Any], first_loss: float | None, factor: float) -> bool:
    """A run trained: it did not diverge, and its final training loss is finite and below
    ``factor`` times its loss at step 0.

    >>> trains({"train_loss": 0.2}, 0.7, 0.5), trains({"train_loss": 0.5}, 0.7, 0.5)
    (True, False)
    >>> trains({"train_loss": 0.1, "diverged_step": 3}, 0.7, 0.5)
    False
    """
    last = summary.get("train_loss")
    if summary.get("diverged_step") is not None or first_loss is None or last is None:
        return False
    return math.isfinite(last) and last < factor * first_loss


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` over :data:`DEFAULTS`, checked; a :class:`UserError` names a bad one."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise UserError(f"options: unknown {unknown[0]!r}; allowed: {', '.join(DEFAULTS)}")
    opts = {**DEFAULTS, **options}
    for name, lo, hi in (("depths", 2, 64), ("widths", 1, 4096)):
        v = opts[name]
        if (
            not isinstance(v, list)
            or not v
            or any(isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi for x in v)
        ):
            raise UserError(f"options.{name}: a non-empty list of integers in [{lo}, {hi}]")
    if len({d * w for d in opts["depths"] for w in opts["widths"]}) < 2:
        raise UserError("options.depths, options.widths: need two values of depth x width")
    for name, lo, hi in (("steps", 1, 100_000), ("iters", 1, 60)):
        v = opts[name]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise UserError(f"options.{name}: an integer in [{lo}, {hi}] (got {v!r})")
    if not isinstance(opts["factor"], (int, float)) or not 0 < opts["factor"] < 1:
        raise UserError(f"options.factor: a number in (0, 1) (got {opts['factor']!r})")
    lo, hi = opts["lr_min"], opts["lr_max"]
    if not all(isinstance(x, (int, float)) for x in (lo, hi)) or not 0 < lo < hi <= 1e6:
        raise UserError("options.lr_min, options.lr_max: need 0 < lr_min < lr_max <= 1e6")
    if not isinstance(opts["task"], dict) or "name" not in opts["task"]:
        raise UserError("options.task: a task section with a name")
    return opts


def measure(options: dict[str, Any], seed: int, store, progress=None) -> dict[str, float]:
    """``eta*`` per member (``max_lr/depth{L}/width{n}``), the power-law fit of ``eta*``
    against ``L n`` (``slope``, ``r2``), and ``ratio_extremes``: ``eta*`` of the smallest
    ``L n`` over that of the largest. Every try is a run of ``store`` (named ``max-lr``)."""
    from learnscope.runner import execute

    opts = check_options(options)
    members = [(d, w) for d in opts["depths"] for w in opts["widths"]]
    out: dict[str, float] = {}
    tries = 0

    for i, (depth, width) in enumerate(members):

        def ok(lr: float, depth: int = depth, width: int = width) -> bool:
            nonlocal tries
            tries += 1
            cfg = {
                "name": "max-lr",
                "seed": seed,
                "task": {**opts["task"], "seed": seed},
                "model": {
                    "kind": "mlp",
                    "depth": depth,
                    "width": width,
                    "activation": "relu",
                    "sigma_w": 2**0.5,  # He init: the critical ReLU network
                },
                "train": {
                    "optimizer": "sgd",
                    "lr": lr,
                    "loss": "ce",
                    "steps": opts["steps"],
                    "eval_every": opts["steps"],
                },
                "probes": [],
            }
            result = execute(cfg, store)
            table = store.metric_table(result.run_id)
            first = float(table["train/loss"].dropna().iloc[0]) if "train/loss" in table else None
            return trains(result.summary, first, opts["factor"])

        eta = bisect_log(ok, opts["lr_min"], opts["lr_max"], opts["iters"])
        out[f"max_lr/depth{depth}/width{width}"] = eta
        if progress is not None:
            progress((i + 1) / len(members), i + 1)

    found = [(d * w, out[f"max_lr/depth{d}/width{w}"]) for d, w in members]
    found = [(x, y) for x, y in found if y > 0]
    if len({x for x, _ in found}) >= 2:
        slope, _, r2 = fit_power([x for x, _ in found], [y for _, y in found])
        out.update(slope=slope, r2=r2)
        small = min(found)[1]
        large = max(found)[1]
        out["ratio_extremes"] = small / large
    out["tries"] = float(tries)
    return out
