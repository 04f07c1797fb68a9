"""Double descent: test error against width peaks where parameters ~ samples.

**Closed form (linear, ridgeless).** Inputs ``x ~ N(0, I_p)``, targets ``y = beta . x + eps``
with ``Var eps = sigma^2``, ``n`` training rows, and the minimum-norm least-squares fit
``beta_hat = X^+ y`` (what gradient descent from zero converges to). Its expected excess test
risk ``E ||beta_hat - beta||^2`` (Advani & Saxe 2017 in the large-size limit; exact at finite
sizes in Belkin, Hsu & Xu 2019, Thm. 1, and Hastie, Montanari, Rosset & Tibshirani 2019):

    p < n - 1:   sigma^2 p / (n - p - 1)
    p > n + 1:   ||beta||^2 (1 - n / p) + sigma^2 n / (p - n - 1)

and infinite for ``|p - n| <= 1``: the peak at the interpolation threshold ``p = n``
(:func:`ridgeless_risk`; :func:`simulate_ridgeless` checks it by Monte Carlo).

**The study.** :func:`measure` trains, through the runner, a random-features model
(``learnscope.models.random_features``: fixed ReLU features, trained readout from zero) or the
two-layer MLP on the ``teacher`` task (``learnscope.tasks.teacher``, noisy regression targets)
at every width of ``widths``, once without and once with weight decay, and returns the
model-wise curve (``test_loss/w{width}``, ``test_loss_wd/w{width}``), where it peaks, and the
epoch-wise curve at the peak width (the best test loss over training against the last: early
stopping removes the peak, Advani & Saxe 2017).

The interpolation threshold is the width at which the trained parameters equal the number of
training targets ``n_train * n_out`` (random features: ``width * n_out``; the MLP:
``width * (d + 1) + (width + 1) * n_out``). The peak is the width with the largest final test
loss; it *is* a peak when that loss is at least twice the larger of the two ends' (the
smallest and the largest width): then ``peak_offset = |log2(peak width / threshold)|``
(``<= 1``: within a factor 2), else ``peak_offset = inf`` (no peak; a claim on it fails).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from learnscope.errors import UserError
from learnscope.runner import execute
from learnscope.store import Store
from learnscope.studies.study import check_options

#: the options of :func:`measure` and their defaults (the study spec ``double-descent``)
DEFAULTS: dict[str, Any] = {
    "model": "random_features",
    "widths": [10, 25, 50, 80, 100, 125, 200, 400, 1000],
    "d": 20,
    "n_train": 100,
    "n_test": 2000,
    "sigma": 0.5,
    "optimizer": "adamw",
    "lr": 0.01,
    "steps": 5000,
    "eval_every": 250,
    "weight_decay": 1.0,
}


def ridgeless_risk(n: int, p: int, sigma2: float, beta_norm2: float) -> float:
    """Expected excess test risk ``E ||X^+ y - beta||^2`` of minimum-norm least squares with
    ``n`` rows of ``N(0, I_p)`` inputs, noise variance ``sigma2`` and ``||beta||^2 =
    beta_norm2`` (module docstring; Belkin, Hsu & Xu 2019, Thm. 1). ``inf`` for
    ``|p - n| <= 1``.

    >>> ridgeless_risk(100, 20, 1.0, 1.0), ridgeless_risk(20, 100, 0.0, 1.0)
    (0.25316455696202533, 0.8)
    """
    if p < n - 1:
        return sigma2 * p / (n - p - 1)
    if p > n + 1:
        return beta_norm2 * (1 - n / p) + sigma2 * n / (p - n - 1)
    return math.inf


def simulate_ridgeless(
    n: int, p: int, sigma: float, beta_norm2: float = 1.0, trials: int = 200, seed: int = 0
) -> float:
    """Monte Carlo mean of ``||X^+ y - beta||^2`` over ``trials`` draws of ``X: (n, p)`` with
    ``N(0, 1)`` entries and ``y = X beta + sigma eps``, ``beta`` a fixed vector of squared norm
    ``beta_norm2`` (the quantity :func:`ridgeless_risk` gives in closed form)."""
    rng = np.random.default_rng(seed)
    beta = rng.standard_normal(p)
    beta *= math.sqrt(beta_norm2) / np.linalg.norm(beta)
    total = 0.0
    for _ in range(trials):
        x = rng.standard_normal((n, p))
        y = x @ beta + sigma * rng.standard_normal(n)
        total += float(np.sum((np.linalg.pinv(x) @ y - beta) ** 2))
    return total / trials


def threshold_width(model: str, n_train: int, d: int, n_out: int = 1) -> float:
    """The width at which the trained parameters equal the training targets ``n_train *
    n_out`` (module docstring)."""
    if model == "random_features":
        return n_train
    return (n_train * n_out - n_out) / (d + 1 + n_out)


def peak_of(widths: list[int], losses: list[float], threshold: float) -> dict[str, float]:
    """Where a model-wise curve peaks: ``peak_width``, ``peak_over_threshold`` (their ratio),
    ``peak_test_loss``, ``peak_height``
    (the peak's loss over the larger of the two ends') and ``peak_offset`` (``|log2(peak width
    / threshold)|`` when ``peak_height >= 2``, else ``inf``).

    >>> peak_of([10, 100, 1000], [0.3, 6.0, 0.2], 100.0)["peak_offset"]
    0.0
    """
    i = int(np.argmax(losses))
    height = losses[i] / max(losses[0], losses[-1])
    offset = abs(math.log2(widths[i] / threshold)) if height >= 2 else math.inf
    return {
        "peak_width": float(widths[i]),
        "peak_over_threshold": float(widths[i] / threshold),
        "peak_test_loss": float(losses[i]),
        "peak_height": float(height),
        "peak_offset": offset,
    }


def run_config(opts: dict[str, Any], width: int, weight_decay: float, seed: int) -> dict:
    """The run config of one member of the curve (seeded: data, features and init)."""
    model: dict[str, Any] = {"kind": opts["model"], "width": width}
    if opts["model"] == "mlp":
        model.update(depth=2, activation="relu")
    optimizer = opts["optimizer"]  # adamw: decoupled weight decay (adam when it is 0)
    return {
        "name": "double-descent",
        "seed": seed,
        "task": {
            "name": "teacher",
            "seed": seed,
            "d": opts["d"],
            "n_train": opts["n_train"],
            "n_test": opts["n_test"],
            "sigma": opts["sigma"],
        },
        "model": model,
        "train": {
            "optimizer": optimizer,
            "lr": opts["lr"],
            "weight_decay": weight_decay,
            "loss": "mse",
            "steps": opts["steps"],
            "eval_every": opts["eval_every"],
        },
        "probes": [],
    }


def _check(opts: dict[str, Any]) -> None:
    if opts["model"] not in ("random_features", "mlp"):
        raise UserError(
            f"double_descent.options.model: {opts['model']!r}; allowed: random_features, mlp"
        )
    widths = opts["widths"]
    if (
        not isinstance(widths, list)
        or len(widths) < 3
        or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths)
        or sorted(widths) != widths
    ):
        raise UserError(
            "double_descent.options.widths: an increasing list of at least 3 widths >= 1"
        )


def measure(
    options: dict[str, Any],
    seed: int,
    store: Store,
    progress: Callable[[float], None] | None = None,
) -> dict[str, float]:
    """The model-wise curve with and without weight decay, and the epoch-wise curve at the
    peak, at ``seed`` (module docstring). Keys: ``threshold_width``, ``peak_width``,
    ``peak_test_loss``, ``peak_height``, ``peak_offset``, ``peak_test_loss_wd`` (with weight
    decay, at the same width), ``peak_height_wd`` (the decayed curve's own peak over its
    ends), ``epoch_best_test_loss`` and ``epoch_best_step`` (the lowest test loss over the
    evaluations of the peak width's run, and when), ``peak_over_threshold``, ``test_loss/w{W}``,
    ``test_loss_wd/w{W}``, ``train_loss/w{W}``, ``wall_s``."""
    opts = check_options(options, DEFAULTS, "double_descent")
    _check(opts)
    start = time.perf_counter()
    widths = opts["widths"]
    runs: dict[tuple[int, bool], Any] = {}
    total = 2 * len(widths)
    for j, (wd, width) in enumerate((wd, w) for wd in (False, True) for w in widths):
        decay = opts["weight_decay"] if wd else 0.0
        runs[width, wd] = execute(run_config(opts, width, decay, seed), store)
        if progress is not None:
            progress((j + 1) / total)
    out: dict[str, float] = {}
    curve = [runs[w, False].summary["test_loss"] for w in widths]
    curve_wd = [runs[w, True].summary["test_loss"] for w in widths]
    for w, loss, loss_wd in zip(widths, curve, curve_wd):
        out[f"test_loss/w{w}"] = loss
        out[f"test_loss_wd/w{w}"] = loss_wd
        out[f"train_loss/w{w}"] = runs[w, False].summary["train_loss"]
    threshold = threshold_width(opts["model"], opts["n_train"], opts["d"])
    out["threshold_width"] = threshold
    out.update(peak_of(widths, curve, threshold))
    peak = int(out["peak_width"])
    out["peak_test_loss_wd"] = runs[peak, True].summary["test_loss"]
    out["peak_height_wd"] = max(curve_wd) / max(curve_wd[0], curve_wd[-1])
    table = store.metric_table(runs[peak, False].run_id)["test/loss"].dropna()
    out["epoch_best_test_loss"] = float(table.min())
    out["epoch_best_step"] = float(table.idxmin())
    out["wall_s"] = round(time.perf_counter() - start, 1)
    return out
