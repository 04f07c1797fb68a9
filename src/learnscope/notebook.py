"""learnscope from Python and notebooks: train a recipe, then read the store as DataFrames.

::

    import learnscope as ls

    result = ls.run("grokking-mlp", train__steps=500)   # a progress bar while it trains
    ls.runs()                      # one row a run: config.* and summary.* as columns
    ls.metrics(result.run_id)      # long: step, name, value

``run`` goes through the one pipeline (:func:`learnscope.runner.execute`), exactly as
``learnscope run`` does: same store, checkpoints, probes, events and summary. Overrides are
``--set``'s dotted paths, given as a dict (``{"train.steps": 500}``) or as keywords with
``__`` for the dots (``train__steps=500``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd

from learnscope.config import RunConfig, load_recipe_dict, validate_config
from learnscope.dotted import set_path
from learnscope.runner import RunResult, execute
from learnscope.store import Store
from learnscope.train.loop import Callback


def runs(runs_dir: str | Path | None = None) -> pd.DataFrame:
    """Every run of the store (``./runs``, or ``$LEARNSCOPE_RUNS``, or ``runs_dir``), one row a
    run, newest last: id, name, status, times, sweep, then the config's and the summary's
    values flattened into columns (``config.train.lr``, ``summary.test_acc``, ...)."""
    table = Store(runs_dir).runs()
    if table.empty:
        return table.drop(columns=["config", "summary"])
    flat = [
        pd.json_normalize(table[col].tolist(), sep=".").add_prefix(f"{col}.")
        for col in ("config", "summary")
    ]
    return pd.concat([table.drop(columns=["config", "summary"]), *flat], axis=1)


def metrics(
    run: str = "last", runs_dir: str | Path | None = None, names: list[str] | None = None
) -> pd.DataFrame:
    """The metrics a run logged (``run``: id, unique prefix or ``last``), long: one row per
    (step, name) with its value; ``names`` keeps only those metrics."""
    store = Store(runs_dir)
    return store.metrics(store.resolve(run), names)


def examples(run: str = "last", runs_dir: str | Path | None = None) -> pd.DataFrame:
    """The per-example records of a run that recorded the ``examples`` probe (``run``: id,
    unique prefix or ``last``), long: one row per (step, training example) with its
    ``loss``, ``correct``, ``el2n``, ``grand`` (NaN unless recorded) and ``flipped`` (its
    label flipped by ``task.label_noise``); see :mod:`learnscope.train.examples`."""
    from learnscope.train.examples import frame

    store = Store(runs_dir)
    return frame(store.root / store.resolve(run))


def run(
    recipe: str | Path | dict[str, Any] | RunConfig,
    overrides: dict[str, Any] | None = None,
    runs_dir: str | Path | None = None,
    progress: bool = True,
    **changes: Any,
) -> RunResult:
    """Train ``recipe`` (a recipe name, a YAML path, a config dict or a :class:`RunConfig`) with
    ``overrides`` (dotted paths) and ``changes`` (keywords, ``__`` for the dots) applied, into
    the store, with a progress bar (tqdm: a widget in a notebook, text elsewhere) unless
    ``progress`` is False. Returns the :class:`~learnscope.runner.RunResult`."""
    if isinstance(recipe, RunConfig):
        data = recipe.to_dict()
    elif isinstance(recipe, dict):
        data = recipe
    else:
        data = load_recipe_dict(str(recipe))
    sets = {**(overrides or {}), **{k.replace("__", "."): v for k, v in changes.items()}}
    data = copy.deepcopy(data)
    for path, value in sets.items():  # values as given: no round trip through --set's text
        set_path(data, path, value, where=f"override {path}")
    cfg = validate_config(data)
    return execute(cfg, Store(runs_dir), sinks=[ProgressBar(cfg.name)] if progress else [])


class ProgressBar(Callback):
    """A tqdm bar over the run's steps (``tqdm.auto``: a widget in Jupyter), with the latest
    train and test accuracy beside it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def on_train_start(self, trainer) -> None:
        from tqdm.auto import tqdm

        steps = trainer.cfg.steps
        self.bar = tqdm(total=steps, initial=trainer.step, desc=self.name, unit="step")

    def on_step_end(self, trainer, step: int, loss: float) -> None:
        self.bar.update(step - self.bar.n)  # ``step``: the steps done

    def on_metrics(self, trainer, step: int, values: dict[str, float]) -> None:
        shown = {k: round(v, 4) for k, v in values.items() if k in ("train/acc", "test/acc")}
        if shown:
            self.bar.set_postfix(shown, refresh=False)

    def on_train_end(self, trainer, status: str) -> None:
        self.bar.close()
