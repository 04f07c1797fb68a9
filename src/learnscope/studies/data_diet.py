"""Data diet: score the training examples early in training, prune the easiest, retrain on
the rest, against random pruning at the same size (Paul, Ganguli & Dziugaite 2021, "Deep
learning on a data diet: finding important examples early in training", PAPERS.md 42; the
forgetting score of Toneva et al. 2019, PAPERS.md 43).

**Scores** (:mod:`learnscope.probes.examples`), each averaged over ``score_seeds`` short
runs of the recipe (model seeds ``seed + 1000 j``, ``j = 1..score_seeds``; the data and its
flipped labels stay those of ``seed``) as the paper averages over runs:

- ``el2n``: ``|| softmax(f(w_t, x)) - onehot(y) ||_2`` at step ``t = score_steps`` (default a
  tenth of the recipe's steps: the paper scores at epoch 20 of 200);
- ``grand``: ``|| grad_w loss(w_t; x, y) ||_2`` at the same step;
- ``forgetting``: the number of forgetting events over a whole training run (default the
  recipe's steps, read every ``record_every`` steps; never learned counts as infinite).

**Pruning.** The ``keep`` fraction with the highest scores (the hardest) is kept, the easiest
pruned; with an ``offset`` the hardest ``offset`` fraction is skipped first (the paper's
sliding window: the ranks ``[offset n, (offset + keep) n)`` are kept). Ties (forgetting
counts) are broken at random, seeded. The baseline keeps a random subset of the same size.
Every kept set trains the recipe from scratch at ``seed`` for the recipe's steps (so a
smaller set sees more epochs) through ``task.keep_rows``: a ``.pt`` file of row indices under
``<runs dir>/data-diet/``.

**Label noise.** With ``task.label_noise``, the flipped rows are known (``task.flipped``):
``top_flipped_precision`` is the fraction of the top ``top`` fraction of scores (default the
top 20 %) that are flipped rows (their base rate is the noise fraction), and ``kept_noise_*``
the fraction of flipped rows in each kept set. Keeping the hardest keeps the noisy labels:
the paper notes that under label noise only pruning the very hardest (an offset) helps.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learnscope.config import RunConfig
from learnscope.errors import UserError
from learnscope.runner import execute
from learnscope.store import Store
from learnscope.tasks import make_task
from learnscope.train import examples as records

SCORES = ("el2n", "grand", "forgetting")

DEFAULTS: dict[str, Any] = {
    "recipe": "prototypes-label-noise",
    "set": {},
    "score": "el2n",
    "keep": [0.5, 0.7],
    "offset": [0.0],
    "score_steps": None,
    "score_seeds": 3,
    "record_every": None,
    "top": 0.2,
}


def pct(fraction: float) -> str:
    """``0.5 -> '50'``, ``0.25 -> '25'``, ``0.125 -> '12.5'``: the fraction in key names."""
    return f"{100 * fraction:g}"


def check(opts: dict[str, Any]) -> dict[str, Any]:
    """The options checked: a :class:`UserError` names the field and what is allowed."""
    if opts["score"] not in SCORES:
        raise UserError(f"data-diet.score: {opts['score']!r}; allowed: {', '.join(SCORES)}")
    for key in ("keep", "offset"):
        values = opts[key]
        if not isinstance(values, list | tuple) or not values:
            raise UserError(f"data-diet.{key}: a list of fractions (got {values!r})")
        for v in values:
            ok = isinstance(v, int | float) and not isinstance(v, bool)
            if not ok or not (0 < v <= 1 if key == "keep" else 0 <= v < 1):
                what = "0 < keep <= 1" if key == "keep" else "0 <= offset < 1"
                raise UserError(f"data-diet.{key}: {v!r}; allowed: fractions with {what}")
    if any(k + o > 1 + 1e-9 for k in opts["keep"] for o in opts["offset"]):
        raise UserError("data-diet.offset: offset + keep must be at most 1")
    for key in ("score_steps", "record_every"):
        v = opts[key]
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise UserError(f"data-diet.{key}: {v!r}; allowed: a number of steps >= 1")
    seeds = opts["score_seeds"]
    if not isinstance(seeds, int) or isinstance(seeds, bool) or not 1 <= seeds <= 20:
        raise UserError(f"data-diet.score_seeds: {seeds!r}; allowed: 1..20")
    top = opts["top"]
    if not isinstance(top, int | float) or isinstance(top, bool) or not 0 < top < 1:
        raise UserError(f"data-diet.top: {top!r}; allowed: a fraction 0 < top < 1")
    if not isinstance(opts["set"], dict):
        raise UserError("data-diet.set: a mapping of dotted overrides of the recipe")
    return opts


def score_examples(
    cfg: RunConfig,
    score: str,
    store: Store,
    steps: int | None = None,
    seeds: int = 3,
    record_every: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Each training row's score (module docstring), averaged over ``seeds`` runs of ``cfg``
    cut to ``steps`` steps at model seeds ``cfg.seed + 1000 j``; ``(n,)`` float (``inf``: a
    row never learned, for ``forgetting``)."""
    if steps is None:
        steps = cfg.train.steps if score == "forgetting" else max(1, cfg.train.steps // 10)
    if record_every is None:  # forgetting reads ~20 records or more; a score its last one
        record_every = (
            max(1, min(cfg.train.eval_every, steps // 20)) if score == "forgetting" else steps
        )
    every = record_every
    probe = {"probe": "examples", "every": every, "grand": int(score == "grand")}
    scores = []
    for j in range(1, seeds + 1):
        data = cfg.to_dict()
        data["name"] = f"{cfg.name}-score-{score}"
        data["seed"] = cfg.seed + 1000 * j
        data["train"] = {
            **data["train"],
            "steps": steps,
            "eval_every": min(data["train"]["eval_every"], steps),
        }
        data["probes"], data["claims"] = [probe], []
        run = execute(data, store)
        if run.status not in ("finished", "stopped"):
            raise UserError(f"data-diet: the scoring run {run.run_id} ended {run.status}")
        if score == "forgetting":
            from learnscope.probes.examples import forgetting_score

            scores.append(forgetting_score(records.stacked(run.dir, "correct")[1]))
        else:
            last = records.steps(run.dir)[-1]
            scores.append(records.load(run.dir, last)[score].astype(np.float64))
        if progress is not None:
            progress(j / seeds)
    return np.mean(scores, axis=0)


def ranked(scores: np.ndarray, seed: int) -> np.ndarray:
    """Row indices from the highest score (the hardest) to the lowest, ties in a seeded
    random order."""
    tie = np.random.default_rng([seed, 42]).permutation(len(scores))
    return np.lexsort((tie, -scores))


def kept_rows(order: np.ndarray, keep: float, offset: float = 0.0) -> np.ndarray:
    """The ranks ``[offset n, offset n + round(keep n))`` of ``order`` (hardest first), sorted.

    >>> kept_rows(np.array([4, 2, 0, 1, 3]), 0.4, offset=0.2).tolist()
    [0, 2]
    """
    n = len(order)
    start = round(offset * n)
    return np.sort(order[start : start + max(1, round(keep * n))])


def random_rows(n: int, keep: float, seed: int) -> np.ndarray:
    """A seeded random ``round(keep n)`` of ``n`` rows, sorted."""
    rng = np.random.default_rng([seed, 7])
    return np.sort(rng.permutation(n)[: max(1, round(keep * n))])


def train_on(
    cfg: RunConfig, rows: np.ndarray | None, store: Store, folder: Path, label: str
) -> dict[str, Any]:
    """The recipe trained from scratch on ``rows`` of its training split (all if None);
    its summary."""
    data = cfg.to_dict()
    data["name"] = f"{cfg.name}-{label}"
    data["claims"] = []
    if rows is not None:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{label}.pt"
        torch.save(torch.as_tensor(rows, dtype=torch.long), path)
        data["task"] = {**data["task"], "keep_rows": str(path)}
    run = execute(data, store)
    if run.status not in ("finished", "stopped"):
        raise UserError(f"data-diet: the run {run.run_id} ({label}) ended {run.status}")
    return run.summary


def measure(
    options: dict[str, Any], seed: int, store: Store, progress: Any = None
) -> dict[str, float]:
    """The data-diet study at one seed (:mod:`learnscope.studies.study`). Options (defaults
    in :data:`DEFAULTS`): ``recipe``, ``set`` (dotted overrides), ``score`` (el2n, grand,
    forgetting), ``keep`` and ``offset`` (lists of fractions), ``score_steps``,
    ``score_seeds``, ``record_every``, ``top``.

    Returns ``full_acc`` (test accuracy on every row); per keep fraction ``k`` (as a
    percentage, e.g. ``50``) and offset ``o``: ``score_acc_k{k}`` (offset 0) or
    ``score_acc_k{k}_o{o}``, ``random_acc_k{k}``, ``score_minus_random_k{k}[_o{o}]``, and
    ``kept_noise_k{k}[_o{o}]`` / ``random_noise_k{k}`` (the flipped fraction of the kept rows);
    ``top_flipped_precision`` and ``top_flipped_recall`` (the top ``top`` fraction of scores
    against the flipped rows), ``noise_fraction``, ``score_wall_s`` and ``wall_s``."""
    from learnscope.studies.study import check_options, recipe_at_seed

    opts = check(check_options(options, DEFAULTS, "data-diet"))
    start = time.perf_counter()
    cfg = recipe_at_seed(opts["recipe"], seed, {"claims": [], **dict(opts["set"])})
    if cfg.task.params.get("keep_rows") is not None:
        raise UserError("data-diet: the recipe's task.keep_rows is set; the study sets it")
    task = make_task(cfg.task.name, **cfg.task.params)
    if task.kind != "classification":
        raise UserError(f"data-diet: {cfg.task.name} is a {task.kind} task; needs classification")
    n, flipped = len(task.split("train")), task.flipped.numpy()
    done, n_runs = [0], 1 + len(opts["keep"]) * (len(opts["offset"]) + 1)

    def tick() -> None:  # scoring is the first 30 % of the work, the retraining the rest
        done[0] += 1
        if progress is not None:
            progress(0.3 + 0.7 * done[0] / n_runs)

    scores = score_examples(
        cfg,
        opts["score"],
        store,
        opts["score_steps"],
        opts["score_seeds"],
        opts["record_every"],
        progress=(lambda f: progress(0.3 * f)) if progress is not None else None,
    )
    out: dict[str, float] = {"score_wall_s": round(time.perf_counter() - start, 2)}
    order = ranked(scores, seed)
    is_flipped = np.zeros(n, bool)
    is_flipped[flipped] = True
    out["noise_fraction"] = float(is_flipped.mean())
    if len(flipped):
        top = order[: max(1, round(opts["top"] * n))]
        out["top_flipped_precision"] = float(is_flipped[top].mean())
        out["top_flipped_recall"] = float(is_flipped[top].sum() / len(flipped))

    folder = store.root / "data-diet" / uuid.uuid4().hex[:12]
    out["full_acc"] = train_on(cfg, None, store, folder, "full")["test_acc"]
    tick()
    for keep in opts["keep"]:
        k = pct(keep)
        rows = random_rows(n, keep, seed)
        out[f"random_acc_k{k}"] = train_on(cfg, rows, store, folder, f"random-k{k}")["test_acc"]
        out[f"random_noise_k{k}"] = float(is_flipped[rows].mean())
        tick()
        for offset in opts["offset"]:
            tag = f"k{k}" + (f"_o{pct(offset)}" if offset else "")
            rows = kept_rows(order, keep, offset)
            label = f"{opts['score']}-{tag}"
            out[f"score_acc_{tag}"] = train_on(cfg, rows, store, folder, label)["test_acc"]
            out[f"score_minus_random_{tag}"] = out[f"score_acc_{tag}"] - out[f"random_acc_k{k}"]
            out[f"kept_noise_{tag}"] = float(is_flipped[rows].mean())
            tick()
    out["wall_s"] = round(time.perf_counter() - start, 2)
    return out
