"""Intrinsic dimension (Li, Farkhoor, Liu & Yosinski 2018): the smallest random subspace in which
training reaches 90 % of the full model's performance.

A recipe is trained once in full (its performance ``full``: ``test_acc`` by default), then in
random subspaces ``theta = theta_0 + P z`` of dimension ``d`` (``train.subspace: {dim: d}``,
:mod:`learnscope.models.subspace`), each a run through the runner. ``d_int90`` is the smallest
``d`` whose run reaches ``threshold * full`` (Li et al.'s 90 %). The search
(:func:`search`): the dimensions ``dims`` in order (default ``1, 2, 4, ...`` up to the model's
``D`` parameters) until one reaches the target, then bisection between the last that did not
and the first that did, down to a bracket of ``rtol * d`` (``rtol = 0``: the exact integer,
assuming performance grows with ``d``).

Exact case: a linear model whose inputs span ``k`` directions (``teacher`` task with ``rank:
k``, noiseless) has a square loss that depends on exactly ``k`` directions of its parameters;
a random subspace of dimension ``d >= k`` reaches zero loss, one of ``d < k`` cannot, so
``d_int90 = k`` (recipe ``intrinsic-dim-linear``, ``tests/studies/test_intrinsic_dim.py``).

:func:`measure` (study spec ``intrinsic-dim``): ``d_int90`` of that exact case, and of a
recipe (modular addition) at each value of a difficulty knob (``task.p``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from learnscope.config import RunConfig, apply_overrides, load_recipe_dict, validate_config
from learnscope.errors import UserError
from learnscope.runner import execute
from learnscope.store import Store
from learnscope.studies.study import check_options


@dataclass
class Trial:
    dim: int
    value: float
    reached: bool
    run_id: str


@dataclass
class IntrinsicDim:
    """What :func:`search` found: the full model's value, the target, ``d_int`` (None: no
    dimension tried reached it), the model's parameter count ``D`` and every trial."""

    full: float
    target: float
    d_int: int | None
    n_params: int
    metric: str
    full_run: str
    trials: list[Trial] = field(default_factory=list)

    def curve(self) -> list[tuple[int, float]]:
        """``(d, value)`` of every trial, by ``d``."""
        return sorted((t.dim, t.value) for t in self.trials)


def n_params(cfg: RunConfig) -> int:
    """``D``: the trained parameters of ``cfg``'s model (built, not trained)."""
    from learnscope.runner import build

    trainer = build(cfg)
    return sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)


def _value(summary: dict[str, Any], metric: str, run_id: str) -> float:
    value = summary.get(metric)
    if value is None:
        have = ", ".join(sorted(k for k, v in summary.items() if isinstance(v, float)))
        raise UserError(f"--metric: run {run_id} has no {metric!r}; it has: {have}")
    return float(value)


def search(
    cfg: RunConfig,
    store: Store,
    dims: list[int] | None = None,
    threshold: float = 0.9,
    metric: str = "test_acc",
    kind: str = "dense",
    rtol: float = 0.0,
    on_trial: Callable[[Trial], None] | None = None,
    sweep_id: str | None = None,
) -> IntrinsicDim:
    """``d_int`` of ``cfg`` (module docstring): the full run, then subspace runs (members of
    sweep ``sweep_id`` when given: :func:`search_sweep`)."""
    if not 0 < threshold <= 1:
        raise UserError(f"--threshold: must be in (0, 1] (got {threshold})")
    if kind not in ("dense", "fastfood"):
        raise UserError(f"--kind: {kind!r}; allowed: dense, fastfood")
    if dims is not None and (not dims or any(d < 1 for d in dims) or sorted(dims) != dims):
        raise UserError(f"--dims: an increasing list of dimensions >= 1 (got {dims})")
    if cfg.train.subspace is not None:
        raise UserError("train.subspace: the recipe must train the full model (remove it)")
    big = n_params(cfg)
    full_run = execute(cfg, store, sweep_id=sweep_id)
    full = _value(full_run.summary, metric, full_run.run_id)
    found = IntrinsicDim(full, threshold * full, None, big, metric, full_run.run_id)
    data = cfg.to_dict()
    tried: dict[int, Trial] = {}

    def trial(d: int) -> Trial:
        sub = {**data, "train": {**data["train"], "subspace": {"dim": d, "kind": kind}}}
        result = execute(validate_config(sub), store, sweep_id=sweep_id)
        value = _value(result.summary, metric, result.run_id)
        t = Trial(d, value, value >= found.target, result.run_id)
        tried[d] = t
        found.trials.append(t)
        if on_trial is not None:
            on_trial(t)
        return t

    grid = doubling(big, dims)
    low, high = 0, None  # the largest d that did not reach the target, the first that did
    for d in grid:
        if trial(d).reached:
            high = d
            break
        low = d
    if high is None:
        return found
    while high - low > max(1, rtol * high):
        mid = (low + high) // 2
        if trial(mid).reached:
            high = mid
        else:
            low = mid
    found.d_int = high
    return found


def doubling(big: int, dims: list[int] | None = None) -> list[int]:
    """The dimensions the search tries in order before it bisects: ``dims``, else ``1, 2, 4,
    ...`` and ``D``; none above ``D``.

    >>> doubling(12), doubling(12, [3, 6, 20])
    ([1, 2, 4, 8, 12], [3, 6])
    """
    grid = dims if dims is not None else [2**i for i in range(int(math.log2(big)) + 1)] + [big]
    return sorted({d for d in grid if d <= big})


def search_sweep(
    cfg: RunConfig,
    dims: list[int] | None = None,
    threshold: float = 0.9,
    metric: str = "test_acc",
    kind: str = "dense",
) -> tuple[str, dict[str, Any], int]:
    """The sweep (name, spec, members; kind ``sweep``, a valid spec) that records the search of
    ``cfg``, for ``store.create_sweep`` (the command's): its members are
    the full run and the subspace runs (:func:`search` with ``sweep_id``), so that ``learnscope
    report --sweep last`` draws the intrinsic-dimension curve (spec ``show.curve``: ``metric``
    against ``train.subspace.dim``, log x, the full model's value and ``threshold`` of it).
    The spec's grid is the doubling grid (:func:`doubling`); the bisection adds dimensions
    between two of its values."""
    from learnscope.sweep.spec import load_spec

    grid = doubling(n_params(cfg), dims)
    data = cfg.to_dict()
    name = f"intrinsic-dim-{cfg.name}"
    spec = load_spec(
        {
            "name": name,
            "description": f"learnscope intrinsic-dim {cfg.name}: the full model (no "
            f"train.subspace) and one run per {kind} subspace dimension d tried (this doubling "
            "grid, then bisection between its values)",
            "config": {
                **data,
                "train": {**data["train"], "subspace": {"dim": grid[0], "kind": kind}},
            },
            "grid": {"train.subspace.dim": grid},
            "show": {
                "curve": {"x": "train.subspace.dim", "y": metric, "logx": True, "target": threshold}
            },
        }
    )
    return name, spec.model_dump(mode="json"), len(grid) + 1


#: the options of :func:`measure` and their defaults (study spec ``intrinsic-dim``)
DEFAULTS: dict[str, Any] = {
    "linear": "intrinsic-dim-linear",  # the k-direction recipe (teacher, rank k)
    "recipe": "intrinsic-dim-modular",  # the recipe whose difficulty grows
    "difficulty": "task.p",
    "values": [7, 11, 17],
    "threshold": 0.9,
    "metric": "train_acc",  # of the recipe: fitting its training table
    "linear_metric": "test_acc",
    "kind": "dense",
    "rtol": 0.1,
}


def measure(
    options: dict[str, Any],
    seed: int,
    store: Store,
    progress: Callable[[float], None] | None = None,
) -> dict[str, float]:
    """At ``seed``: ``linear_k`` and ``linear_dint`` (the exact case: equal),
    ``linear_dint_error`` (``|d_int - k|``), and for each difficulty value ``v``:
    ``dint/{v}``, ``full/{v}`` (the full model's value), ``n_params/{v}`` and ``dint_frac/{v}``
    (``d_int / D``); ``dint_growth`` (``d_int`` at the last value over the first; ``inf``
    when either search found none) and ``dint_frac_first`` (``d_int / D`` at the first)."""
    opts = check_options(options, DEFAULTS, "intrinsic_dim")
    values = opts["values"]
    if not isinstance(values, list) or len(values) < 2:
        raise UserError("intrinsic_dim.options.values: a list of at least 2 difficulty values")
    start = time.perf_counter()
    out: dict[str, float] = {}
    steps = 1 + len(values)

    def at(recipe: str, overrides: dict[str, Any]) -> RunConfig:
        from learnscope.studies.study import recipe_at_seed

        return recipe_at_seed(recipe, seed, overrides)

    lin = at(opts["linear"], {})
    k = lin.task.params.get("rank") or lin.task.params.get("d")
    found = search(lin, store, threshold=opts["threshold"], metric=opts["linear_metric"])
    out["linear_k"] = float(k)
    out["linear_dint"] = float(found.d_int) if found.d_int is not None else math.inf
    out["linear_dint_error"] = abs(out["linear_dint"] - k)
    if progress is not None:
        progress(1 / steps)
    dints = []
    for j, v in enumerate(values):
        cfg = at(opts["recipe"], {opts["difficulty"]: v})
        found = search(cfg, store, threshold=opts["threshold"], metric=opts["metric"],
                       kind=opts["kind"], rtol=opts["rtol"])  # fmt: skip
        d = float(found.d_int) if found.d_int is not None else math.inf
        dints.append(d)
        out[f"dint/{v}"] = d
        out[f"full/{v}"] = found.full
        out[f"n_params/{v}"] = float(found.n_params)
        out[f"dint_frac/{v}"] = d / found.n_params
        if progress is not None:
            progress((2 + j) / steps)
    out["dint_growth"] = dints[-1] / dints[0] if math.isfinite(dints[-1] / dints[0]) else math.inf
    out["dint_frac_first"] = out[f"dint_frac/{values[0]}"]
    out["wall_s"] = round(time.perf_counter() - start, 1)
    return out


def load(recipe: str, overrides: list[str]) -> RunConfig:
    """A recipe (name or YAML path) with ``--set`` overrides, validated."""
    return validate_config(apply_overrides(load_recipe_dict(recipe), overrides))
