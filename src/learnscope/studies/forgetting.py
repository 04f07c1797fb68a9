"""Forgetting events (Toneva, Sordoni, Combes, Trischler, Bengio & Gordon 2019, "An empirical
study of example forgetting during deep neural network learning", PAPERS.md 43).

One run of the recipe at ``seed`` records every training example's correctness every
``record_every`` steps (the ``examples`` probe, :mod:`learnscope.probes.examples`). Per
example: its forgetting events (correct at one record, wrong at the next), whether it is
*unforgettable* (learned at some record, never forgotten) or never learned. Then the
paper's removal experiment: the ``remove`` fraction of the training set with the fewest
forgetting events (unforgettable first, ties in a seeded random order; never-learned rows
count as forgotten infinitely often) is removed and the recipe retrained from scratch on the
rest (``task.keep_rows``), against removing a random subset of the same size.

Toneva et al. read correctness each time an example is presented in a minibatch; here it is
read on the whole training split at each record, so a forgetting undone before the next
record is not counted (fewer events than the paper's count, the same ordering in the large).
With ``task.label_noise`` the flipped rows' mean forgetting count is reported beside the clean
rows' (the paper: noisy-label examples are among the most forgotten).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np

from learnscope.errors import UserError
from learnscope.probes.examples import forgetting_events, forgetting_score, learned, unforgettable
from learnscope.runner import execute
from learnscope.store import Store
from learnscope.studies.data_diet import random_rows, ranked, train_on
from learnscope.train import examples as records

DEFAULTS: dict[str, Any] = {
    "recipe": "prototypes-label-noise",
    "set": {},
    "record_every": 10,
    "remove": 0.3,
}


def check(opts: dict[str, Any]) -> dict[str, Any]:
    """The options checked: a :class:`UserError` names the field and what is allowed."""
    every = opts["record_every"]
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise UserError(f"forgetting.record_every: {every!r}; allowed: a number of steps >= 1")
    r = opts["remove"]
    if not isinstance(r, int | float) or isinstance(r, bool) or not 0 <= r < 1:
        raise UserError(f"forgetting.remove: {r!r}; allowed: a fraction 0 <= remove < 1")
    if not isinstance(opts["set"], dict):
        raise UserError("forgetting.set: a mapping of dotted overrides of the recipe")
    return opts


def measure(
    options: dict[str, Any], seed: int, store: Store, progress: Any = None
) -> dict[str, float]:
    """The forgetting study at one seed (:mod:`learnscope.studies.study`). Options:
    ``recipe``, ``set`` (dotted overrides), ``record_every`` (steps between records),
    ``remove`` (the fraction removed; 0: count the events only, retrain nothing).

    Returns ``unforgettable_fraction``, ``never_learned_fraction``, ``forgotten_fraction``
    (learned, then forgotten at least once), ``mean_forgetting`` (events per learned row),
    ``records``; ``full_acc`` (test accuracy of the recorded run, every row),
    ``removed_acc`` (the least forgotten ``remove`` fraction removed), ``random_removed_acc``,
    ``removal_cost`` (``full_acc - removed_acc``), ``removed_minus_random``, and
    ``removed_unforgettable`` (the fraction of the removed rows that are unforgettable); with
    label noise ``forgetting_flipped`` and ``forgetting_clean`` (mean events per learned
    row)."""
    from learnscope.studies.study import check_options, recipe_at_seed

    opts = check(check_options(options, DEFAULTS, "forgetting"))
    start = time.perf_counter()
    cfg = recipe_at_seed(opts["recipe"], seed, {"claims": [], **dict(opts["set"])})
    if cfg.task.params.get("keep_rows") is not None:
        raise UserError("forgetting: the recipe's task.keep_rows is set; the study sets it")
    data = cfg.to_dict()
    data["name"] = f"{cfg.name}-forgetting"
    data["probes"] = [{"probe": "examples", "every": opts["record_every"]}]
    run = execute(data, store)
    if run.status not in ("finished", "stopped"):
        raise UserError(f"forgetting: the run {run.run_id} ended {run.status}")
    if progress is not None:
        progress(1 / 3)
    at, correct = records.stacked(run.dir, "correct")
    n = correct.shape[1]
    events, ever, never_forgotten = (
        forgetting_events(correct),
        learned(correct),
        unforgettable(correct),
    )
    out: dict[str, float] = {
        "records": float(len(at)),
        "unforgettable_fraction": float(never_forgotten.mean()),
        "never_learned_fraction": float((~ever).mean()),
        "forgotten_fraction": float((ever & (events > 0)).mean()),
        "mean_forgetting": float(events[ever].mean()) if ever.any() else float("nan"),
        "full_acc": run.summary["test_acc"],
    }
    flipped = records.rows(run.dir)["flipped"]
    if len(flipped):
        is_flipped = np.zeros(n, bool)
        is_flipped[flipped] = True
        out["forgetting_flipped"] = float(events[ever & is_flipped].mean())
        out["forgetting_clean"] = float(events[ever & ~is_flipped].mean())

    n_remove = round(opts["remove"] * n)
    if not n_remove:  # the counts only, no removal experiment
        out["wall_s"] = round(time.perf_counter() - start, 2)
        return out
    order = ranked(forgetting_score(correct), seed)  # most forgotten first
    kept = np.sort(order[: n - n_remove])
    removed = np.sort(order[n - n_remove :])
    out["removed_unforgettable"] = float(never_forgotten[removed].mean())
    folder = store.root / "forgetting" / uuid.uuid4().hex[:12]
    tag = f"remove{round(100 * opts['remove'])}"
    out["removed_acc"] = train_on(cfg, kept, store, folder, f"least-forgotten-{tag}")["test_acc"]
    if progress is not None:
        progress(2 / 3)
    rows = random_rows(n, 1 - n_remove / n, seed)
    out["random_removed_acc"] = train_on(cfg, rows, store, folder, f"random-{tag}")["test_acc"]
    out["removal_cost"] = out["full_acc"] - out["removed_acc"]
    out["removed_minus_random"] = out["removed_acc"] - out["random_removed_acc"]
    out["wall_s"] = round(time.perf_counter() - start, 2)
    return out
