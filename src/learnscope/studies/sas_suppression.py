"""Brief versus long suppression of syntactic attention structure (Chen et al. 2024, "Sudden
drops in the loss: syntax acquisition, phase transitions, and simplicity bias in MLMs",
PAPERS.md 23): SAS is suppressed for the first ``k`` steps (the SAS- regulariser,
:mod:`learnscope.train.regularizers`: the loss plus ``lambda`` times the strongest head's
attention along dependency edges), then released. The paper: brief early suppression improves
the final model, suppression for too long hurts.

At one seed the study trains three runs of the recipe (default ``sas-mlm``) through
:func:`learnscope.runner.execute`: ``none`` (no regulariser, the control), ``brief`` and
``long`` (each ``{lambda, until_step}``), and returns, for each run ``r``:

- ``loss_{r}``: the final test loss, as the mean over the last :data:`LAST` evaluations (one
  evaluation's value moves by ~0.03 from one to the next: optimiser noise), and
  ``loss_last_{r}`` the last one alone; ``sas_{r}``: the final SAS (``sas/max``, the best head's
  unlabelled attachment score); ``sas_init``: SAS at step 0 (the same initialisation for all
  three);
- ``sas_release_{r}`` (brief, long): SAS at the last evaluation at or before the release
  (the evaluation at step ``k`` follows ``k`` suppressed updates), ``sas_low_{r}`` the lowest
  SAS over the evaluations while suppressed (steps <= ``k``), and ``held_down_{r} =
  sas_low_{r} / sas_init`` (< 1: pushed below its value at initialisation);
- ``{r}_minus_none = loss_{r} - loss_none`` (< 0: the suppression helped the final model) and
  ``long_minus_brief``;
- ``release_onset_{r}``, ``release_drop_{r}``, ``release_lag_{r}``: the structure onset found
  after the release (:func:`release_onset`: the :func:`learnscope.events.structure_onset`
  detector on the evaluations at steps ``>= until_step``), the step of the steepest loss drop
  it finds there, their lag (NaN where SAS does not rise abruptly after the release) and
  ``release_abs_lag_{r}``, its size;
- ``lag_none``: the structure-onset lag of the unsuppressed run (the paper: ~0).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from learnscope.config import RunConfig
from learnscope.errors import UserError
from learnscope.events import structure_onset
from learnscope.runner import execute
from learnscope.store import Store

#: evaluations the final test loss is averaged over (the last 400 steps at eval_every 100)
LAST = 5
DEFAULTS: dict[str, Any] = {
    "recipe": "sas-mlm",
    "brief": {"lambda": 0.1, "until_step": 300},  # as the spec sas-suppression
    "long": {"lambda": 0.3, "until_step": 1000},
    "set": {},
}


def release_onset(table: pd.DataFrame, until_step: int, **kw: Any) -> dict[str, float]:
    """The structure onset after a release at ``until_step``: the
    :func:`~learnscope.events.structure_onset` detector (SAS's steepest rise over 3 evals
    gaining >= 0.1, and the steepest loss drop) on the evaluations at steps ``>= until_step``.
    ``onset``, ``drop`` and ``lag = drop - onset`` (steps), NaN where none is found.

    >>> steps = range(0, 1100, 100)
    >>> t = pd.DataFrame({"sas/max": [.2, .0, .0, .0, .0, .1, .5, .6, .6, .6, .6],
    ...                   "test/loss": [4, 3, 3, 3, 3, 3, 2, 1.9, 1.9, 1.9, 1.9]}, index=steps)
    >>> release_onset(t, 300, window=2)
    {'onset': 600.0, 'drop': 600.0, 'lag': 0.0}
    """
    e = structure_onset(table[table.index >= until_step], **kw)
    nan = float("nan")
    if e is None:
        return {"onset": nan, "drop": nan, "lag": nan}
    drop, lag = e.data["loss_step"], e.data["lag"]
    return {
        "onset": float(e.step),
        "drop": nan if drop is None else float(drop),
        "lag": nan if lag is None else float(lag),
    }


def _schedule(name: str, value: Any) -> tuple[float, int]:
    if not isinstance(value, dict) or set(value) != {"lambda", "until_step"}:
        raise UserError(
            f"sas-suppression.options.{name}: give {{lambda: number, until_step: steps}} "
            f"(got {value!r})"
        )
    lam, k = value["lambda"], value["until_step"]
    if not isinstance(lam, int | float) or not math.isfinite(lam) or lam <= 0:
        raise UserError(f"sas-suppression.options.{name}.lambda: a number > 0 (got {lam!r})")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise UserError(f"sas-suppression.options.{name}.until_step: an integer >= 1 (got {k!r})")
    return float(lam), k


RUNS = ("none", "brief", "long")


def configs(options: dict[str, Any], seed: int) -> tuple[dict[str, RunConfig], dict[str, int]]:
    """The three run configs at ``seed`` (``none``, ``brief``, ``long``) and the release step
    ``until_step`` of ``brief`` and ``long``; bad options are a UserError."""
    from learnscope.studies.study import check_options, recipe_at_seed

    opts = check_options(options, DEFAULTS, "sas-suppression")
    schedules = {run: _schedule(run, opts[run]) for run in RUNS[1:]}
    if not isinstance(opts["set"], dict):
        raise UserError(f"sas-suppression.options.set: a mapping (got {opts['set']!r})")
    cfgs = {}
    for run in RUNS:
        overrides = dict(opts["set"])
        overrides["train.regularizers"] = []
        if run in schedules:
            lam, k = schedules[run]
            overrides["train.regularizers"] = [{"kind": "sas", "lambda_sas": lam, "until_step": k}]
        cfgs[run] = cfg = recipe_at_seed(opts["recipe"], seed, overrides)
        if run in schedules and schedules[run][1] >= cfg.train.steps:
            raise UserError(
                f"sas-suppression.options.{run}.until_step: must be below train.steps "
                f"({cfg.train.steps}) so that the suppression is released"
            )
        if not any(p.probe == "sas" for p in cfg.probes or []):
            raise UserError(
                f"sas-suppression.options.recipe: {opts['recipe']} must probe sas (sas/max)"
            )
    return cfgs, {run: k for run, (_, k) in schedules.items()}


def read(tables: dict[str, pd.DataFrame], release: dict[str, int]) -> dict[str, float]:
    """What the study measures (module docstring) from the metric tables of the three runs
    (``none``, ``brief``, ``long``) and the release steps of ``brief`` and ``long``."""
    out: dict[str, float] = {}
    for run in RUNS:
        table = tables[run]
        losses, sas = table["test/loss"].dropna(), table["sas/max"].dropna()
        out[f"loss_{run}"] = float(losses.iloc[-LAST:].mean())
        out[f"loss_last_{run}"] = float(losses.iloc[-1])
        out[f"sas_{run}"] = float(sas.iloc[-1])
        if run == "none":
            out["sas_init"] = float(sas.iloc[0])
            out["lag_none"] = release_onset(table, 0)["lag"]
            continue
        k = release[run]
        on = sas[sas.index <= k]
        out[f"sas_release_{run}"] = float(on.iloc[-1])
        out[f"sas_low_{run}"] = float(on.min())
        out[f"held_down_{run}"] = out[f"sas_low_{run}"] / out["sas_init"]
        out[f"{run}_minus_none"] = out[f"loss_{run}"] - out["loss_none"]
        for key, value in release_onset(table, k).items():
            out[f"release_{key}_{run}"] = value
        out[f"release_abs_lag_{run}"] = abs(out[f"release_lag_{run}"])
    out["long_minus_brief"] = out["loss_long"] - out["loss_brief"]
    return out


def measure(
    options: dict[str, Any], seed: int, store: Store, progress: Callable | None = None
) -> dict[str, float]:
    """The study at one seed (module docstring): the three runs of :func:`configs` trained
    through the runner, then :func:`read`. Options: ``recipe``, ``brief`` and ``long``
    (``{lambda, until_step}``), ``set`` (dotted overrides of the recipe, every run)."""
    cfgs, release = configs(options, seed)
    tables = {}
    for i, run in enumerate(RUNS):
        result = execute(cfgs[run], store)
        tables[run] = store.metric_table(result.run_id)
        if progress is not None:
            progress((i + 1) / 3)
    return read(tables, release)
