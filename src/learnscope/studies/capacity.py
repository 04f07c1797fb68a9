"""Effective model complexity: the most training samples a model and its training procedure
fit to 100% training accuracy (Shwartz-Ziv, Goldblum, Bansal, Bruss, LeCun & Wilson 2024,
"Just how flexible are neural networks in practice?").

EMC is a property of the whole procedure (model, optimiser, steps, data): a trial trains the
run config on exactly ``n`` training samples (``task.n_train = n``) and asks whether the
training accuracy reaches exactly 1.0 (``train.stop_when: [fitted]`` ends it as soon as it
does). Each trial is a normal run, trained by :func:`learnscope.runner.execute` and recorded
in the store.

The search (:func:`search_emc`), assuming a procedure that fits ``n`` samples also fits fewer
(the training sets are nested: ``n_train = m`` holds the first ``m`` rows of one seeded
permutation):

1. **doubling**: ``n = start, 2 start, 4 start, ...`` (capped at ``maximum``) while it fits;
   if ``start`` itself does not fit, the bracket is ``[0, start)``;
2. **bisection** of the bracket ``[largest fitted, smallest not fitted)`` until its width is at
   most ``max(1, rtol x largest fitted)``.

EMC is the largest fitted ``n`` found (within ``rtol`` of the true threshold). A sample count
counts as fitted only when every one of ``seeds`` training seeds (initialisation and batch
order; the data are the same) reaches 100% training accuracy. The paper's exact convergence
test and step sizes are not published in what we could read (PAPERS.md 14); this search is
ours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from learnscope.config import RunConfig, apply_overrides, validate_config
from learnscope.errors import UserError
from learnscope.runner import build, execute
from learnscope.store import Store
from learnscope.tasks import make_task

Labels = Literal["correct", "random"]


@dataclass
class Trial:
    """One sample count tried: fitted by every seed or not, and the runs that say so."""

    n: int
    fitted: bool
    train_acc: list[float] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)


@dataclass
class Capacity:
    """The outcome of a search: ``emc`` (largest fitted ``n``; 0 if none), the first ``n``
    found not fitted (``None`` when ``maximum`` was fitted: ``capped``), and every trial."""

    emc: int
    not_fitted: int | None
    trials: list[Trial]

    @property
    def capped(self) -> bool:
        return self.not_fitted is None


def search_emc(
    fits: Callable[[int], Trial | bool], start: int, maximum: int, rtol: float = 0.05
) -> Capacity:
    """Doubling from ``start`` then bisection (module docstring) for the largest ``n <=
    maximum`` with ``fits(n)``; ``fits`` is called once per ``n`` tried.

    >>> found = search_emc(lambda n: n <= 37, start=4, maximum=1000, rtol=0)
    >>> found.emc, found.not_fitted, [t.n for t in found.trials]
    (37, 38, [4, 8, 16, 32, 64, 48, 40, 36, 38, 37])
    """
    if not 1 <= start <= maximum:
        raise ValueError(f"start must be in 1..maximum={maximum} (got {start})")
    trials: list[Trial] = []

    def tried(n: int) -> bool:
        got = fits(n)
        trial = got if isinstance(got, Trial) else Trial(n, bool(got))
        trials.append(trial)
        return trial.fitted

    lo, hi, n = 0, None, start  # lo fitted (0 trivially), hi the smallest not fitted
    while hi is None:
        if tried(n):
            lo = n
            if n == maximum:
                return Capacity(lo, None, trials)
            n = min(2 * n, maximum)
        else:
            hi = n
    while hi - lo > max(1, rtol * lo):
        mid = (lo + hi) // 2
        if tried(mid):
            lo = mid
        else:
            hi = mid
    return Capacity(lo, hi, trials)


def trial_config(cfg: dict[str, Any], n: int, labels: Labels, seed: int | None = None) -> RunConfig:
    """``cfg`` trained on exactly ``n`` samples (with random labels if asked), stopped as soon
    as it fits them."""
    overrides = [f"task.n_train={n}", f"name={cfg.get('name', 'run')}-capacity-{labels}-n{n}"]
    if labels == "random":
        overrides.append("task.random_labels=true")
    if seed is not None:
        overrides.append(f"seed={seed}")
    data = apply_overrides(cfg, overrides)
    stops = list(data.get("train", {}).get("stop_when", []))
    data.setdefault("train", {})["stop_when"] = sorted(set(stops) | {"fitted"})
    data["claims"] = []  # the recipe's claims are about the recipe, not about a trial
    return validate_config(data)


def pool_size(cfg: dict[str, Any]) -> int | None:
    """The most training samples the task can give (a modular table leaves one test row), or
    None when the task does not say (sequence tasks draw from a very large space)."""
    task = cfg.get("task", {})
    if task.get("name") != "modular":
        return None
    params = {k: v for k, v in task.items() if k not in ("name", "n_train")}
    built = make_task("modular", **params)
    return len(built.split("train")) + len(built.split("test")) - 1


def n_parameters(cfg: RunConfig) -> int:
    """Trainable parameters of ``cfg``'s model (built, not trained)."""
    return sum(p.numel() for p in build(cfg).model.parameters() if p.requires_grad)


def find_emc(
    cfg: RunConfig | dict[str, Any],
    store: Store,
    labels: Labels = "correct",
    start: int = 16,
    maximum: int | None = None,
    rtol: float = 0.05,
    seeds: int = 1,
    on_trial: Callable[[Trial], None] | None = None,
) -> Capacity:
    """EMC of ``cfg``'s model and training procedure (module docstring), every trial a run in
    ``store``. ``maximum`` defaults to the task's pool (:func:`pool_size`)."""
    data = cfg.to_dict() if isinstance(cfg, RunConfig) else dict(cfg)
    if labels not in ("correct", "random"):
        raise UserError(f"--labels: {labels!r}; allowed: correct, random")
    if maximum is None:
        maximum = pool_size(data)
        if maximum is None:
            raise UserError("--max: this task has no fixed pool of samples; give --max N")
    if not 1 <= start <= maximum:
        raise UserError(f"--start: must be in 1..{maximum} (the most samples tried; got {start})")
    if not 0 <= rtol < 1:
        raise UserError(f"--rtol: must be in [0, 1) (got {rtol})")
    if seeds < 1:
        raise UserError(f"--seeds: must be >= 1 (got {seeds})")
    base_seed = validate_config(data).seed
    for n in (start, maximum):  # a bad config fails here, before anything trains
        trial_config(data, n, labels)

    def fits(n: int) -> Trial:
        trial = Trial(n, True)
        for k in range(seeds):
            run = execute(trial_config(data, n, labels, base_seed + k), store)
            if run.status not in ("finished", "stopped"):
                raise UserError(f"capacity: the trial with n={n} ended {run.status}")
            acc = float(run.summary.get("train_acc", 0.0))
            trial.train_acc.append(acc)
            trial.runs.append(run.run_id)
            trial.fitted = trial.fitted and acc >= 1.0
        if on_trial is not None:
            on_trial(trial)
        return trial

    return search_emc(fits, start, maximum, rtol)
