"""Scaling laws of an associative memory (Cabannes, Dohmatob & Bietti 2024, "Scaling laws for
associative memories", ICLR 2024; PAPERS.md 46).

The memory ``W = sum_x q(x) e_x u_{f(x)}^T`` (:mod:`learnscope.models.assoc_memory`) with
Gaussian random embeddings in ``R^d`` stores the map ``f`` of the ``zipf_pairs`` task (inputs
``p(x) ~ x^-alpha`` on ``N`` tokens, ``M`` outputs); its error ``E = sum_x p(x) 1[f_hat(x) !=
f(x)]`` is computed exactly. Two sweeps, each fitted by least squares on ``log E`` against
``log d`` or ``log T`` (the slope is the exponent):

- **capacity** (``dims``, infinite data): ``q(x) = 1[x among the k most probable tokens]``
  with ``k = round(top_factor * d)`` (thresholding). If the top ``k ~ d`` tokens are recalled
  and the rest are not, ``E = sum_{x > k} p(x) ~ d^-(alpha - 1)``: the law the paper states
  for this scheme (up to log factors). The frequency scheme ``q = p`` (``W`` the mean of
  ``e_x u_y^T`` over the data) is fitted too and reported, without a law claimed (its rate is
  not confirmed from the paper's text: PAPERS.md 46).
- **data** (``samples``, ``d = d_samples``): ``q(x) = 1[x seen among the first T samples]``
  (nested prefixes of one i.i.d. stream); with ``d`` large enough to recall every seen token
  the error is the unseen mass ``sum_x p(x) (1 - p(x))^T ~ T^-(1 - 1/alpha)``.

The memories are built in closed form (nothing is trained, nothing is written to the store).
With ``sgd_dims``, a memory of each of those dimensions is also trained by SGD on the
cross-entropy through the runner (a run of the store each) and its error measured the same
way, beside the closed forms (no law claimed). The seed draws the map ``f``, the samples and
the embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from learnscope.errors import UserError
from learnscope.models.assoc_memory import (
    embeddings,
    memory_matrix,
    predict,
    scores,
    store_weights,
    zipf_error,
)
from learnscope.store import Store
from learnscope.tasks import make_task

DEFAULTS: dict[str, Any] = {
    "n_tokens": 20000,
    "n_outputs": 100,
    "alpha": 2.0,
    "dims": [64, 128, 256, 512],
    "top_factor": 1.0,
    "samples": [100, 1000, 10000, 100000],
    "d_samples": 512,
    "sgd_dims": [],
    "sgd_samples": 10000,
    "sgd_steps": 300,
    "sgd_lr": 10.0,
}


def theory(alpha: float) -> dict[str, float]:
    """The paper's exponents: ``E ~ d^-(alpha - 1)`` (thresholded memory, infinite data) and
    ``E ~ T^-(1 - 1/alpha)`` (every seen token stored, large ``d``).

    >>> theory(2.0)
    {'d_exponent_theory': -1.0, 'T_exponent_theory': -0.5}
    """
    return {"d_exponent_theory": -(alpha - 1), "T_exponent_theory": -(1 - 1 / alpha)}


def fit_exponent(xs: list[float], errors: list[float]) -> float:
    """The least-squares slope of ``log E`` against ``log x`` (errors of 0 are left out: a
    memory that recalls everything has no exponent; NaN when fewer than 2 points remain).

    >>> round(fit_exponent([10, 100, 1000], [1e-1, 1e-2, 1e-3]), 6)
    -1.0
    """
    pts = [(math.log(x), math.log(e)) for x, e in zip(xs, errors) if e > 0]
    if len(pts) < 2:
        return float("nan")
    a = np.array(pts)
    return float(np.polyfit(a[:, 0], a[:, 1], 1)[0])


def check(options: dict[str, Any]) -> dict[str, Any]:
    """The options over :data:`DEFAULTS`; a :class:`UserError` names a bad one."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise UserError(
            f"memory-scaling.options: unknown {', '.join(unknown)}; allowed: {', '.join(DEFAULTS)}"
        )
    opts = {**DEFAULTS, **options}
    if not isinstance(opts["sgd_dims"], list) or not all(_count(x) for x in opts["sgd_dims"]):
        raise UserError("memory-scaling.options.sgd_dims: a list of dimensions >= 1 (or [])")
    for key, hi in (("sgd_samples", 10**6), ("sgd_steps", 10**6)):
        if not _count(opts[key]) or opts[key] > hi:
            raise UserError(f"memory-scaling.options.{key}: an integer in 1..{hi}")
    lr = opts["sgd_lr"]
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr <= 1e4:
        raise UserError("memory-scaling.options.sgd_lr: a number in (0, 1e4]")
    for key in ("dims", "samples"):
        v = opts[key]
        if not isinstance(v, list) or len(v) < 2 or not all(_count(x) for x in v):
            raise UserError(f"memory-scaling.options.{key}: a list of 2 or more counts >= 1")
        if key == "dims" and max(v) > 4096:
            raise UserError("memory-scaling.options.dims: at most 4096")
        if key == "samples" and max(v) > 10**7:
            raise UserError("memory-scaling.options.samples: at most 10^7")
    for key, lo, hi in (("n_tokens", 2, 10**6), ("n_outputs", 2, 10**5), ("d_samples", 1, 4096)):
        if not _count(opts[key]) or not lo <= opts[key] <= hi:
            raise UserError(f"memory-scaling.options.{key}: an integer in {lo}..{hi}")
    for key, lo, hi in (("alpha", 1.0, 10.0), ("top_factor", 0.0, 100.0)):
        v = opts[key]
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or not lo < v <= hi and not (key == "top_factor" and v == 0):
            raise UserError(f"memory-scaling.options.{key}: a number in ({lo}, {hi}]")
    if opts["n_tokens"] * max(opts["n_outputs"], max(opts["dims"])) > 2 * 10**8:
        raise UserError("memory-scaling.options: n_tokens x max(n_outputs, d) must be <= 2e8")
    return opts


def _count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


def measure(
    options: dict[str, Any], seed: int, store: Store | None = None, progress: Callable | None = None
) -> dict[str, float]:
    """Both sweeps at one seed (module docstring). Returns ``error_d{d}``, ``error_freq_d{d}``,
    ``error_T{T}``, ``unseen_T{T}`` (the unseen mass of that prefix), ``error_sgd_d{d}`` (the
    memory trained by SGD through the runner, for each of ``sgd_dims``; none by default), the
    fitted
    ``d_exponent``, ``d_exponent_frequency``, ``T_exponent``, the theory's
    (:func:`theory`), and ``d_exponent_gap``, ``T_exponent_gap``: the absolute difference
    between fitted and theory."""
    opts = check(options)
    dims, samples = sorted(opts["dims"]), sorted(opts["samples"])
    task = make_task(
        "zipf_pairs",
        n_tokens=opts["n_tokens"],
        n_outputs=opts["n_outputs"],
        alpha=float(opts["alpha"]),
        n_samples=max(samples),
        seed=seed,
    )
    p, f = task.probs, task.targets
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, float] = {}
    steps, done = len(dims) + len(samples), 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done / steps)

    # capacity: infinite data (ranks by p itself), thresholded and frequency-weighted
    for d in dims:
        e = embeddings(len(p), d, "gaussian", gen)
        u = embeddings(opts["n_outputs"], d, "gaussian", gen)
        q = store_weights(p, "top", k=round(opts["top_factor"] * d))
        out[f"error_d{d}"] = zipf_error(predict(scores(e, memory_matrix(e, u, f, q), u)), f, p)
        w_freq = memory_matrix(e, u, f, p)
        out[f"error_freq_d{d}"] = zipf_error(predict(scores(e, w_freq, u)), f, p)
        tick()
    # data: nested prefixes of one stream, every seen token stored
    d = opts["d_samples"]
    e, u = embeddings(len(p), d, "gaussian", gen), embeddings(opts["n_outputs"], d, "gaussian", gen)
    stream = task.split("train")["x"][:, 0]
    for t in samples:
        counts = torch.bincount(stream[:t], minlength=len(p))
        w = memory_matrix(e, u, f, store_weights(counts, "seen"))
        out[f"error_T{t}"] = zipf_error(predict(scores(e, w, u)), f, p)
        out[f"unseen_T{t}"] = float(p[counts == 0].sum())
        tick()
    for d in opts["sgd_dims"]:
        out[f"error_sgd_d{d}"] = _trained_error(opts, d, seed, store)
    out["d_exponent"] = fit_exponent(dims, [out[f"error_d{d}"] for d in dims])
    out["d_exponent_frequency"] = fit_exponent(dims, [out[f"error_freq_d{d}"] for d in dims])
    out["T_exponent"] = fit_exponent(samples, [out[f"error_T{t}"] for t in samples])
    out.update(theory(float(opts["alpha"])))
    for key in ("d_exponent", "T_exponent"):
        gap = abs(out[key] - out[f"{key}_theory"])
        out[f"{key}_gap"] = gap if gap == gap else float("inf")  # NaN: no exponent, no claim
    return out


def _trained_error(opts: dict[str, Any], d: int, seed: int, store: Store | None) -> float:
    """The Zipf error of the memory trained by the runner (SGD on the cross-entropy of
    ``softmax_y(e_x^T W u_y)`` from ``W = 0``, batches of 1000 of ``sgd_samples`` samples), read
    from the run's last checkpoint: a run of the store named ``memory-scaling-sgd-d{d}``."""
    from learnscope.runner import execute, restore

    if store is None:
        raise UserError("memory-scaling.options.sgd_dims: training needs a run store")
    cfg = {
        "name": f"memory-scaling-sgd-d{d}",
        "seed": seed,
        "task": {
            "name": "zipf_pairs",
            "n_tokens": opts["n_tokens"],
            "n_outputs": opts["n_outputs"],
            "alpha": float(opts["alpha"]),
            "n_samples": opts["sgd_samples"],
            "seed": seed,
        },
        "model": {"kind": "assoc_memory", "d": d},
        "train": {
            "optimizer": "sgd",
            "lr": float(opts["sgd_lr"]),
            "steps": opts["sgd_steps"],
            "batch_size": min(1000, opts["sgd_samples"]),
            "eval_every": opts["sgd_steps"],
            "loss": "ce",
        },
        "probes": [],
    }
    result = execute(cfg, store)
    trainer, _ = restore(store.run(result.run_id)["config"], result.dir)
    every = torch.arange(opts["n_tokens"])[:, None].to(trainer.device)
    with torch.no_grad():
        s = trainer.model(every).double().cpu()
    return trainer.task.zipf_error(predict(s))
