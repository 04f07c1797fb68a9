"""Sweep specs and their expansion into member run configs.

A sweep spec (YAML; built-in ones live in ``recipes/sweeps/``)::

    name: grokking-phase-diagram
    base: grokking-mlp                 # a recipe name or YAML path; or `config: {...}` inline
    set: {train.steps: 2000}           # dotted overrides applied to every member
    cases:                             # named groups of overrides, each crossed with the grid
      vanilla: {task.format: plain}
      pause: {task.format: pause, task.n_pause: 2}
    grid:                              # every combination of these values
      train.weight_decay: [0.1, 1, 5]
      task.train_fraction: [0.2, 0.4]
    random:                            # `count` draws, each combined with every grid point
      count: 4
      seed: 0
      params:
        train.lr: {loguniform: [1.0e-3, 3.0e-2]}
        model.init_std: {uniform: [0.02, 0.1]}
        model.activation: {choice: [relu, quadratic]}
    seeds: 3                           # `seed` = base seed + 0, 1, 2 (init and data order)
    resources: {num_cpus: 1, num_gpus: 0}   # per group, for Ray
    show: {pivot: [train.weight_decay, task.train_fraction], value: grok_test_step}
    # show.by: an axis; one grid per value of it (e.g. model.param) instead of their mean
    # show.headline: the value the sweep exists for (any summary key, e.g. slingshots, or a
    # metric): `sweep show` and the sweep's report lead with its grid and phase diagram
    # show.curve: {x: model.width, y: test_loss, logx: true}: the report draws y (a summary
    # key or a metric's last value) against x (a config path), mean over seeds and each seed's
    # points, a line per value of the other axes (logy: bool; target: a fraction f, drawn as
    # f x the value of the members without x, e.g. the full model of an intrinsic-dim search)

``cases`` make one axis, ``case``, out of settings that must change together (a format and
its number of pause tokens, a list of regularisers): a member gets its case's overrides, then
its grid point's; a path may not be both a case's and a grid axis. Every member is validated
(as a run config) before anything trains: a bad spec is a :class:`UserError` naming the axis.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError

from learnscope.config import (
    Claim,
    RunConfig,
    load_recipe_dict,
    load_yaml,
    read_text,
    validate_config,
)
from learnscope.dotted import get_path, set_path
from learnscope.errors import UserError, cut, from_validation, shown, unknown_field
from learnscope.strict import MAX_SEED, StrictModel

DISTRIBUTIONS = ("uniform", "loguniform", "choice")
#: members one sweep may have
MAX_MEMBERS = 100_000


# -- the spec ---------------------------------------------------------------------------------


class RandomAxes(StrictModel):
    count: int = Field(ge=1, le=10**6)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    params: dict[str, dict[str, list[Any]]]


class Resources(StrictModel):
    num_cpus: float = Field(1, ge=0)
    num_gpus: float = Field(0, ge=0)


#: keys of a spec's ``show`` (read by ``learnscope sweep show``)
SHOW_KEYS = ("headline", "pivot", "value", "values", "correlate", "by", "quantiles", "curve")
#: keys of ``show.curve`` (the report's ``curve`` panel: y against x, mean over seeds)
CURVE_KEYS = ("x", "y", "logx", "logy", "target")


class SweepSpec(StrictModel):
    name: str = "sweep"
    description: str = ""
    #: ``verify``: the sweep of ``learnscope verify`` (its ``claims`` are checked on its runs)
    kind: Literal["sweep", "verify"] = "sweep"
    #: what the sweep shows (:class:`learnscope.config.Claim`), checked on its members once
    #: they have trained: a claim's case against its control's case, member by member
    claims: list[dict[str, Any]] = Field(default_factory=list)
    base: str | None = None
    config: dict[str, Any] | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    cases: dict[str, dict[str, Any]] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    random: RandomAxes | None = None
    seeds: int = Field(1, ge=1, le=10**6)
    resources: Resources = Resources()
    show: dict[str, Any] = Field(default_factory=dict)

    @property
    def axes(self) -> list[str]:
        """Axis names as they appear in member tables: dotted paths, then ``seed``."""
        names = (["case"] if self.cases else []) + list(self.grid)
        names += list(self.random.params) if self.random else []
        return names + (["seed"] if self.seeds > 1 else [])

    @property
    def size(self) -> int:
        """How many members it has: grid points x cases x random draws x seeds."""
        total = math.prod(len(v) for v in self.grid.values()) * self.seeds
        return total * max(1, len(self.cases)) * (self.random.count if self.random else 1)

    def case_of(self, config: dict[str, Any]) -> str | None:
        """The case whose every override ``config`` holds (the one with the most overrides if
        several do: ``{format: plain}`` and ``{format: plain, regularizers: [...]}``), else None."""
        held = [
            (len(overrides), name)
            for name, overrides in self.cases.items()
            if all(get_path(config, p) == v for p, v in overrides.items())
        ]
        return max(held, key=lambda h: h[0])[1] if held else None


def sweep_names() -> list[str]:
    folder = resources.files("learnscope.recipes") / "sweeps"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_spec(ref: str | dict[str, Any]) -> SweepSpec:
    """A built-in sweep name, a YAML path, or a dict, validated into a :class:`SweepSpec`."""
    if isinstance(ref, dict):
        data = ref
    else:
        path = Path(ref)
        if path.exists() or ref.endswith((".yaml", ".yml")):
            text = read_text(path, "sweep")
        elif ref in sweep_names():
            text = (resources.files("learnscope.recipes") / "sweeps" / f"{ref}.yaml").read_text()
        else:
            raise UserError(
                f"sweep: unknown sweep {ref!r}; allowed: {', '.join(sweep_names())} "
                "or a path to a YAML file"
            )
        data = load_yaml(text, f"sweep: {ref}")
        if not isinstance(data, dict):
            raise UserError(f"sweep: {ref} must hold a mapping, not {type(data).__name__}")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        raise from_validation(err, "sweep", model=SweepSpec) from None
    if (spec.base is None) == (spec.config is None):
        raise UserError("sweep: give exactly one of base (a recipe or YAML path) or config")
    for name, overrides in spec.cases.items():
        if not overrides:
            raise UserError(f"sweep.cases.{name}: no overrides; give at least one path: value")
        both = sorted(set(overrides) & set(spec.grid))
        if both:
            raise UserError(f"sweep.cases.{name}: {', '.join(both)} is also a grid axis")
    for path, values in spec.grid.items():
        if not values:
            raise UserError(f"sweep.grid.{path}: empty list of values; give at least one")
    if spec.random:
        for path, dist in spec.random.params.items():
            _check_distribution(path, dist)
    _check_show(spec)
    if spec.kind == "sweep":
        _check_claims(spec)
    total = spec.size
    if total > MAX_MEMBERS:
        raise UserError(
            f"sweep: {total} members (grid x random.count x seeds); at most {MAX_MEMBERS}"
        )
    return spec


def _check_claims(spec: SweepSpec) -> None:
    """A sweep's ``claims`` (:class:`learnscope.config.Claim`): valid claims whose ``case`` and
    control ``case`` are cases of this sweep (a sweep's control is one of its cases)."""
    names = []
    for i, data in enumerate(spec.claims):
        try:
            claim = Claim.model_validate(data)
        except ValidationError as err:
            raise from_validation(err, f"sweep.claims[{i}]", model=Claim) from None
        where = f"sweep.claims[{i}] ({claim.name})"
        if claim.control is not None and claim.control.case is None:
            raise UserError(f"{where}: control: a sweep's control is one of its cases (case: NAME)")
        for case in (claim.case, claim.control.case if claim.control else None):
            if case is not None and case not in spec.cases:
                allowed = ", ".join(spec.cases) or "none: the sweep has no cases"
                raise UserError(
                    f"{where}: case {case!r} is not a case of the sweep; allowed: {allowed}"
                )
        names.append(claim.name)
    if len(set(names)) != len(names):
        raise UserError(f"sweep.claims: claim names must differ (got {names})")


def _check_show(spec: SweepSpec) -> None:
    """``show: {pivot: [A, B], value(s): ...}``: known keys, and two axes of this sweep (an
    axis may be named by its last dotted part), checked before anything trains."""
    for key in spec.show:
        if key not in SHOW_KEYS:
            raise unknown_field("sweep.show", str(key), list(SHOW_KEYS))
    head = spec.show.get("headline")
    if head is not None and not _name(head):
        raise UserError(f"sweep.show.headline: give one value's name (got {shown(head)})")
    for key in ("value", "values", "quantiles"):
        got = spec.show.get(key)
        if key in spec.show and not (
            _name(got) or isinstance(got, list) and got and all(_name(v) for v in got)
        ):
            raise UserError(
                f"sweep.show.{key}: give a value's name or a list of them, e.g. test_acc or "
                f"[grok_test_step, test_acc] (got {shown(got)})"
            )
    by = spec.show.get("by")
    if by is not None and not (_name(by) and by in spec.axes):
        raise UserError(
            f"sweep.show.by: give one axis of the sweep; allowed: {', '.join(spec.axes) or 'none'}"
            f" (got {shown(by)})"
        )
    corr = spec.show.get("correlate")
    if corr is not None and not (
        isinstance(corr, dict)
        and set(corr) == {"target", "metrics"}
        and isinstance(corr["target"], str)
        and isinstance(corr["metrics"], list)
        and all(isinstance(m, str) for m in corr["metrics"])
    ):
        raise UserError(
            f"sweep.show.correlate: give {{target: NAME, metrics: [NAME, ...]}} (got {shown(corr)})"
        )
    if "curve" in spec.show:
        _check_curve(spec.show["curve"], spec.axes)
    if "pivot" not in spec.show:
        return
    pivot, axes = spec.show["pivot"], spec.axes
    if not isinstance(pivot, list) or len(pivot) != 2:
        raise UserError(f"sweep.show.pivot: give two axes [rows, columns] (got {shown(pivot)})")
    for name in pivot:
        hits = [a for a in axes if name == a or a.split(".")[-1] == name]
        if len(hits) != 1:
            raise UserError(
                f"sweep.show.pivot: unknown axis {shown(name)}; allowed: {', '.join(axes)}"
            )


def _check_curve(curve: Any, axes: list[str]) -> None:
    """``show.curve: {x, y, logx, logy, target}``: ``x`` a config path that is, or lies under,
    an axis of the sweep (or an axis's last dotted part), ``y`` a value's name, ``logx`` and
    ``logy`` booleans, ``target`` a fraction in (0, 1]."""
    if not isinstance(curve, dict):
        raise UserError(
            f"sweep.show.curve: give {{x: CONFIG PATH, y: NAME, logx: BOOL}} (got {shown(curve)})"
        )
    for key in curve:
        if key not in CURVE_KEYS:
            raise unknown_field("sweep.show.curve", str(key), list(CURVE_KEYS))
    for key in ("x", "y"):
        if not _name(curve.get(key)):
            what = "config path, e.g. model.width" if key == "x" else "value's name, e.g. test_loss"
            got = shown(curve.get(key))
            raise UserError(f"sweep.show.curve.{key}: give one {what} (got {got})")
    x = curve["x"]
    if not any(x == a or x.startswith(a + ".") or a.split(".")[-1] == x for a in axes):
        raise UserError(
            f"sweep.show.curve.x: {x!r} is not an axis of the sweep; allowed: "
            f"{', '.join(a for a in axes if a != 'seed') or 'none'}"
        )
    for key in ("logx", "logy"):
        if key in curve and not isinstance(curve[key], bool):
            raise UserError(f"sweep.show.curve.{key}: true or false (got {shown(curve[key])})")
    target = curve.get("target")
    if target is not None and not (
        isinstance(target, int | float) and not isinstance(target, bool) and 0 < target <= 1
    ):
        raise UserError(f"sweep.show.curve.target: a fraction in (0, 1] (got {shown(target)})")


def _name(value: Any) -> bool:
    """Whether ``value`` is a summary key's or a metric's name (non-empty text)."""
    return isinstance(value, str) and 0 < len(value) <= 200


def _check_distribution(path: str, dist: dict[str, list[Any]]) -> None:
    where = f"sweep.random.params.{path}"
    if len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
        raise UserError(
            f"{where}: give one distribution; allowed: {', '.join(DISTRIBUTIONS)} "
            f"(got {shown(dist)})"
        )
    kind, args = next(iter(dist.items()))
    if kind == "choice":
        if not args:
            raise UserError(f"{where}: choice needs at least one value")
        return
    numbers = all(
        isinstance(a, int | float) and not isinstance(a, bool) and math.isfinite(a) for a in args
    )
    if len(args) != 2 or not numbers or args[0] >= args[1]:
        raise UserError(
            f"{where}: {kind} needs [low, high] finite numbers with low < high (got {shown(args)})"
        )
    if kind == "loguniform" and args[0] <= 0:
        raise UserError(f"{where}: loguniform needs low > 0 (got {args[0]})")


# -- expanding it into members -----------------------------------------------------------------


@dataclass
class Member:
    index: int
    axes: dict[str, Any]  # axis path -> value
    config: RunConfig


def _draw(rng: np.random.Generator, dist: dict[str, list[Any]]) -> Any:
    kind, args = next(iter(dist.items()))
    if kind == "choice":
        return args[int(rng.integers(len(args)))]
    if kind == "uniform":
        return float(rng.uniform(args[0], args[1]))
    return float(np.exp(rng.uniform(np.log(args[0]), np.log(args[1]))))


def expand(spec: SweepSpec) -> list[Member]:
    """Every member's axis values and validated config, in a deterministic order.

    >>> spec = load_spec({"config": {"task": {"name": "modular", "p": 7}},
    ...                   "grid": {"train.lr": [0.1, 0.01]}, "seeds": 2})
    >>> [(m.axes["train.lr"], m.axes["seed"], m.config.seed) for m in expand(spec)]
    [(0.1, 0, 0), (0.1, 1, 1), (0.01, 0, 0), (0.01, 1, 1)]
    """
    base = copy.deepcopy(spec.config) if spec.config is not None else load_recipe_dict(spec.base)
    for path, value in spec.set.items():
        set_path(base, path, value, where=f"sweep axis {path}")
    base["claims"] = []  # a recipe's claims are about the recipe, not about every member (a
    # verification sweep keeps them in its spec)
    draws: list[dict[str, Any]] = [{}]
    if spec.random:
        rng = np.random.default_rng(spec.random.seed)
        params = spec.random.params
        draws = [{p: _draw(rng, d) for p, d in params.items()} for _ in range(spec.random.count)]
    grid = [dict(zip(spec.grid, combo)) for combo in itertools.product(*spec.grid.values())]
    cases = list(spec.cases.items()) or [(None, {})]
    members = []
    for (case, overrides), point, draw, s in itertools.product(
        cases, grid, draws, range(spec.seeds)
    ):
        axes = ({"case": case} if spec.cases else {}) | point | draw
        axes |= {"seed": s} if spec.seeds > 1 else {}
        data = copy.deepcopy(base)
        for path, value in {**overrides, **point, **draw}.items():
            set_path(data, path, value, where=f"sweep axis {path}")
        # the member's own seed (the base's, or a grid, case or draw's ``seed``) + replicate
        seed = data.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            where = cut(", ".join(f"{k}={shown(v)}" for k, v in axes.items()))
            raise UserError(
                f"sweep member {len(members)} ({where}): seed: must be an integer (got "
                f"{shown(seed)})"
            )
        data["seed"] = seed + s
        data["name"] = f"{spec.name}-{len(members):04d}"
        try:
            cfg = validate_config(data)
        except UserError as err:
            where = cut(", ".join(f"{k}={shown(v)}" for k, v in axes.items()))
            raise UserError(f"sweep member {len(members)} ({where}): {err}") from None
        members.append(Member(len(members), axes, cfg))
    return members
