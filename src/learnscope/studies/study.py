"""Study specs: phenomena measured by a study of several runs, verified over seeds.

A recipe is one run, and its claims read that run. Some phenomena are not one run: a curve over
widths (double descent), prune-and-retrain (data diet), a run pruned and healed after training
(layer pruning), a chain of generations (model collapse). Such a phenomenon is a *study spec*,
``src/learnscope/recipes/studies/NAME.yaml`` (:class:`learnscope.config.StudySpec`)::

    name: double-descent
    description: "test error against width peaks at the interpolation threshold"
    study: double_descent          # the module learnscope.studies.double_descent
    options: {widths: [...]}       # keyword options of its measure function
    claims: [{name: peak-at-threshold, key: peak_over_threshold, threshold: "<=2", ...}]

The study module defines ``measure(options, seed, store, progress=None) -> dict[str, float]``:
what it measured at one seed, training only through :mod:`learnscope.runner` (so each training
is a run of the store, named after the study). ``learnscope verify NAME --seeds N`` calls it at
``N`` seeds and checks each claim (by ``key`` or ``ratio``) on what it returned, as for a
recipe: ``holds k/N`` with its Wilson interval (:class:`~learnscope.studies.claims.ClaimResult`).
"""

from __future__ import annotations

import importlib
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from learnscope.config import StudySpec, load_study_dict, load_yaml, read_text, study_names
from learnscope.errors import UserError, from_validation
from learnscope.studies.claims import recipe_at_seed

__all__ = ["check_options", "load_study", "recipe_at_seed", "study_results", "verify_study"]

if TYPE_CHECKING:  # pandas and the sweeps load when a study is verified, not when listed
    from learnscope.store import Store
    from learnscope.studies.claims import Verification


def is_study(name: str) -> bool:
    """Whether ``name`` is a built-in study spec, or a YAML file that names a ``study``."""
    if name in study_names():
        return True
    path = Path(name)
    if name.endswith((".yaml", ".yml")) and path.is_file():
        data = load_yaml(read_text(path, "config"), f"config: {name}")
        return isinstance(data, dict) and "study" in data
    return False


def load_study(name: str) -> StudySpec:
    """A validated study spec; its ``study`` must name a module with a ``measure``."""
    try:
        spec = StudySpec.model_validate(load_study_dict(name))
    except ValidationError as err:
        raise from_validation(err, model=StudySpec) from None
    measure_of(spec)
    return spec


def measure_of(spec: StudySpec) -> Callable[..., dict[str, float]]:
    """The study module's ``measure`` function."""
    try:
        module = importlib.import_module(f"learnscope.studies.{spec.study}")
    except ModuleNotFoundError:
        raise UserError(
            f"study: no study module learnscope.studies.{spec.study} (spec {spec.name})"
        ) from None
    fn = getattr(module, "measure", None)
    if not callable(fn):
        raise UserError(f"study: learnscope.studies.{spec.study} has no measure function")
    return fn


def verify_study(
    name: str,
    store: Store,
    seeds: int = 3,
    seed_start: int = 0,
    progress: Callable[[float, int], None] | None = None,
    budget_s: float | None = None,
) -> Verification:
    """Measure the study ``name`` at ``seeds`` seeds from ``seed_start`` and check its claims
    (module docstring); with ``budget_s`` (``verify --all --fast``), no seed is begun once the
    seeds so far took longer. The wall time is the median over seeds."""
    from learnscope.studies.claims import check_seeds

    check_seeds(seeds, seed_start)
    spec = load_study(name)
    fn = measure_of(spec)
    order = list(range(seed_start, seed_start + seeds))
    measured: list[dict[str, Any]] = []
    walls = []
    for i, seed in enumerate(order):
        if budget_s is not None and walls and sum(walls) >= budget_s:
            break
        start = time.perf_counter()

        def step(fraction: float, i: int = i) -> None:
            if progress is not None:
                progress(i + min(max(fraction, 0.0), 1.0), len(order))

        step(0.0)
        values = fn(dict(spec.options), seed, store, progress=step)
        measured.append(dict(values))
        walls.append(time.perf_counter() - start)
        step(1.0)
    done = order[: len(measured)]
    result = study_results(spec, done, measured, statistics.median(walls))
    if len(done) < len(order):
        result.note = (
            f"over the budget of {budget_s:.0f} s after {len(done)} of {len(order)} seeds "
            f"({sum(walls):.0f} s); run it alone for the rest"
        )
    return result


def study_results(
    spec: StudySpec, seeds: list[int], measured: list[dict[str, Any]], wall_s: float | None
) -> Verification:
    """The claims of ``spec`` checked on what its study measured at each seed."""
    from learnscope.measures import claim_value, holds
    from learnscope.studies.claims import ClaimResult, Verification

    results = []
    for claim in spec.claims:
        values = [claim_value(claim, (m, [], None), None) for m in measured]
        values = [v if v is None or math.isfinite(v) else None for v in values]
        results.append(ClaimResult(claim, seeds, values, [holds(claim, v) for v in values]))
    return Verification(spec.name, "", seeds, results, wall_s)


def check_options(options: dict[str, Any], allowed: dict[str, Any], study: str) -> dict[str, Any]:
    """``options`` over the study's defaults ``allowed``; an unknown key is a UserError naming
    the allowed ones."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UserError(
            f"{study}.options: unknown {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )
    return {**allowed, **options}
