"""Claims checked over seeds (``learnscope verify RECIPE --seeds N``).

A recipe's ``claims:`` (:class:`learnscope.config.Claim`) say what it shows. ``verify`` trains
the recipe, and the matched control of every paired claim, at ``N`` seeds ``S, S+1, ...`` (the
model's seed and, where the task has one, the data's), as one sweep of the store
(``kind: verify``; its spec keeps the claims, so the results can be read again from the store
at any time). Members of one shape train stacked where the engine allows, and a cut-short
verification resumes (``--resume``) like any sweep.

Per claim: the value measured at each seed (module :class:`learnscope.config.Claim`), whether
it meets the threshold, and ``holds k/N`` with the 95 % Wilson score interval of ``k/N``
(:func:`learnscope.studies.evaluation.wilson`). A ``reproduces`` claim passes when it holds at
``require x N`` seeds or more; a ``null`` claim (an effect of the paper that did not appear,
with the search that was run) is reported, never counted as a reproduction.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from learnscope.config import (
    Claim,
    RunConfig,
    load_recipe_dict,
    load_study_dict,
    study_names,
    validate_config,
)
from learnscope.errors import UserError
from learnscope.measures import claim_value, holds
from learnscope.store import Store
from learnscope.studies.evaluation import wilson
from learnscope.sweep import SweepSpec, expand, load_spec, run_sweep
from learnscope.sweep.backends import as_today, config_key, member_runs
from learnscope.sweep.tables import resolve_sweep

#: the case of the recipe itself (the controls' cases are named after them)
RECIPE = "recipe"
MAX_SEEDS = 100


@dataclass
class ClaimResult:
    """One claim over the seeds: the value measured at each (None: not measured, e.g. a
    failed run or a missing key) and whether it held there."""

    claim: Claim
    seeds: list[int]
    values: list[float | None]
    holds: list[bool]

    @property
    def k(self) -> int:
        return sum(self.holds)

    @property
    def n(self) -> int:
        return len(self.holds)

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.k, self.n)

    @property
    def measured(self) -> list[float]:
        return [v for v in self.values if v is not None and math.isfinite(v)]

    @property
    def median(self) -> float | None:
        return statistics.median(self.measured) if self.measured else None

    @property
    def passed(self) -> bool:
        """A reproduces claim held at ``require x N`` seeds or more; a null claim never fails
        the verification (it records an absence)."""
        if self.claim.kind == "null":
            return True
        return self.n > 0 and self.k >= math.ceil(self.claim.require * self.n - 1e-9)

    def line(self) -> str:
        """``name: holds k/N [lo, hi], median m (range a .. b); paper: ...``"""
        lo, hi = self.interval
        shown = self.measured
        where = (
            f"median {_num(self.median)} (range {_num(min(shown))} .. {_num(max(shown))})"
            if shown
            else "not measured"
        )
        kind = "null (the effect, not expected): " if self.claim.kind == "null" else ""
        paper = f"; paper: {self.claim.paper_value}" if self.claim.paper_value else ""
        return (
            f"{self.claim.name}: {kind}holds {self.k}/{self.n} [{lo:.2f}, {hi:.2f}] "
            f"{self.claim.threshold}, {where}{paper}"
        )


@dataclass
class Verification:
    """A recipe verified: the sweep that holds its runs, the claims' results, and the median
    wall time of one seed's runs (the recipe and its controls)."""

    recipe: str
    sweep_id: str
    seeds: list[int]
    results: list[ClaimResult]
    wall_s: float | None = None
    failed_runs: list[str] = field(default_factory=list)
    note: str = ""  # e.g. why fewer seeds than asked were trained

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.4g}"


# -- the sweep of a verification ------------------------------------------------------------


def _seeded(data: dict[str, Any], seed: int) -> dict[str, Any]:
    """Overrides that set the model's seed and, where the task takes one, the data's."""
    out: dict[str, Any] = {"seed": seed}
    try:
        validate_config({**data, "seed": seed, "task": {**data["task"], "seed": seed}})
    except UserError:
        return out  # the task has no seed of its own
    out["task.seed"] = seed
    return out


def recipe_at_seed(recipe: str, seed: int, overrides: dict[str, Any] | None = None) -> RunConfig:
    """The run config of ``recipe`` at ``seed`` (the model's seed and, where the task takes
    one, the data's: as ``verify`` seeds it), with dotted ``overrides``: what a study's
    ``measure`` trains through the runner, and the run ``init_from`` is pinned to."""
    from learnscope.dotted import set_path

    data = load_recipe_dict(recipe)
    for key, value in {**_seeded(data, seed), **(overrides or {})}.items():
        set_path(data, key, value, where=f"options.set {key}")
    return validate_config(data)


def control_overrides(control, recipe: dict[str, Any]) -> dict[str, Any]:
    """A control as overrides of the recipe: its ``set``, or every section of another recipe."""
    if control.recipe is None:
        return dict(control.set)
    other = load_recipe_dict(control.recipe)
    defaults = {"task": {}, "model": {}, "train": {}, "events": {}, "probes": None}
    return {**{k: other.get(k, v) for k, v in defaults.items()}, **control.set}


def check_seeds(seeds: int, seed_start: int) -> None:
    """``--seeds`` in 1..:data:`MAX_SEEDS` and ``--seed-start`` >= 0, else a UserError."""
    if not 1 <= seeds <= MAX_SEEDS:
        raise UserError(f"--seeds: must be in 1..{MAX_SEEDS} (got {seeds})")
    if seed_start < 0:
        raise UserError(f"--seed-start: must be >= 0 (got {seed_start})")


def pinned_start(init: str | None, seed: int, store: Store) -> str | None:
    """``train.init_from`` at one seed of a verification. A run reference stays as it is; a
    built-in recipe's name (a recipe that starts from another recipe's run: ``rft-sft`` from
    ``rft-pretrain``) becomes the run of that recipe at the same ``seed``, trained now (itself
    pinned the same way) unless the store holds a finished run of that very config. Without
    this, a run name resolves to the newest run of the name, at whatever seed."""
    from learnscope.config import recipe_names
    from learnscope.runner import execute

    if init is None:
        return None
    ref, at, step = str(init).partition("@")
    if ref not in recipe_names():
        return init
    inner = pinned_start(load_recipe_dict(ref).get("train", {}).get("init_from"), seed, store)
    cfg = recipe_at_seed(ref, seed, {} if inner is None else {"train.init_from": inner})
    key = config_key(cfg.to_dict())
    runs = store.runs()
    if len(runs):
        for r in runs[(runs["name"] == ref) & (runs["status"] == "finished")].itertuples():
            if config_key(as_today(r.config)) == key:
                return f"{r.id}{at}{step}"
    result = execute(cfg, store)
    if result.status not in ("finished", "stopped"):
        raise UserError(f"verify: {ref} at seed {seed} (the run {init!r} starts from) failed")
    return f"{result.run_id}{at}{step}"


def verify_spec(
    recipe: str, seeds: int, seed_start: int = 0, store: Store | None = None
) -> SweepSpec:
    """The sweep that verifies ``recipe``: one case per (recipe or control, seed). With a
    ``store``, a ``train.init_from`` that names a recipe is pinned to that recipe's run at
    the case's seed (:func:`pinned_start`)."""
    check_seeds(seeds, seed_start)
    data = load_recipe_dict(recipe)
    cfg = validate_config(data)
    if not cfg.claims:
        raise UserError(f"verify: recipe {recipe!r} states no claims")
    controls = {c.control.name: c.control for c in cfg.claims if c.control is not None}
    cases: dict[str, dict[str, Any]] = {}
    for s in range(seed_start, seed_start + seeds):
        cases[f"{RECIPE}-s{s}"] = _seeded(data, s)
        for name, control in controls.items():
            cases[f"{name}-s{s}"] = {**control_overrides(control, data), **_seeded(data, s)}
    for case in cases.values() if store is not None else []:
        init = case.get("train.init_from", data.get("train", {}).get("init_from"))
        pinned = pinned_start(init, case["seed"], store)
        if pinned != init:
            case["train.init_from"] = pinned
    return load_spec(
        {
            "name": f"verify:{cfg.name}",
            "kind": "verify",
            "base": recipe,
            "cases": cases,
            "claims": [c.model_dump(mode="json") for c in cfg.claims],
        }
    )


def verify(
    recipe: str,
    store: Store,
    seeds: int = 3,
    seed_start: int = 0,
    backend: str = "local",
    resume: str | None = None,
    progress: Callable[[float, int], None] | None = None,
    workers: int | None = None,
) -> Verification:
    """Train ``recipe`` and its controls at ``seeds`` seeds from ``seed_start`` (a sweep of
    ``store``; ``workers``: its processes, default the sweep runner's) and check every claim
    (module docstring)."""
    spec = verify_spec(recipe, seeds, seed_start, store)
    sweep_id = run_sweep(
        spec, store, backend=backend, resume=resume, progress=progress, workers=workers
    )
    return results_of(store, sweep_id, recipe)


def recheck(recipe: str, store: Store, refs: list[str]) -> Verification:
    """The recipe's claims as they read now, checked on the runs of stored verification sweeps
    (``refs``; their seeds merged): after a threshold or a statement is revised, without
    training again."""
    claims = validate_config(load_recipe_dict(recipe)).claims
    if not claims:
        raise UserError(f"verify: recipe {recipe!r} states no claims")
    return merge([results_of(store, ref, recipe, claims) for ref in refs])


def verify_seed_by_seed(
    recipe: str,
    store: Store,
    seeds: int,
    seed_start: int,
    budget_s: float,
    backend: str = "local",
) -> Verification:
    """:func:`verify` one seed at a time (one sweep each), stopping once the training time so
    far is over ``budget_s``: what ``verify --all --fast`` does for each recipe. The results of
    the seeds trained are merged."""
    parts: list[Verification] = []
    spent = 0.0
    for s in range(seed_start, seed_start + seeds):
        if parts and spent >= budget_s:
            break
        part = verify(recipe, store, 1, s, backend)
        parts.append(part)
        spent += part.wall_s or 0.0
    merged = merge(parts)
    if len(parts) < seeds:
        merged.note = (
            f"over the budget of {budget_s:.0f} s after {len(parts)} of {seeds} seeds "
            f"({spent:.0f} s of training); run it alone for the rest"
        )
    return merged


def merge(parts: list[Verification]) -> Verification:
    """Verifications of one recipe at different seeds as one (seeds in order)."""
    first = parts[0]
    results = []
    for i, r in enumerate(first.results):
        seeds, values, held = [], [], []
        for part in parts:
            seeds += part.results[i].seeds
            values += part.results[i].values
            held += part.results[i].holds
        results.append(ClaimResult(r.claim, seeds, values, held))
    walls = [p.wall_s for p in parts if p.wall_s is not None]
    return Verification(
        first.recipe,
        ", ".join(p.sweep_id for p in parts),
        [s for p in parts for s in p.seeds],
        results,
        statistics.median(walls) if walls else None,
        [r for p in parts for r in p.failed_runs],
    )


def results_of(
    store: Store, ref: str, recipe: str | None = None, claims: list[Claim] | None = None
) -> Verification:
    """The claims' results of a stored verification sweep (``ref``: id, prefix, name, last):
    the claims it was run with, or ``claims`` (e.g. a recipe's claims as they read now, checked
    on the runs already trained; a control the sweep did not train is not measured)."""
    sweep_id = resolve_sweep(store, ref)
    spec = load_spec(store.sweeps().set_index("id").loc[sweep_id, "spec"])
    if spec.kind != "verify":
        if spec.claims:
            return sweep_results(store, sweep_id, spec)
        raise UserError(f"sweep {sweep_id} is neither a verification nor states claims")
    if claims is None:
        claims = [Claim.model_validate(c) for c in spec.claims]
    runs = member_runs(store, sweep_id)
    by_case: dict[str, tuple[str, str]] = {}
    for member in expand(spec):
        key = config_key(member.config.to_dict())
        if key in runs:
            by_case[member.axes["case"]] = runs[key]
    seeds = sorted({int(case.rpartition("-s")[2]) for case in spec.cases})
    done: dict[str, tuple[dict, list[str]] | None] = {}
    walls: dict[int, float] = {}
    failed = []
    for case, (run_id, status) in by_case.items():
        if status not in ("finished", "stopped"):
            failed.append(run_id)
            done[case] = None
            continue
        rec = store.run(run_id)
        kinds = store.events(run_id)
        table = store.metric_table(run_id) if any(c.metric for c in claims) else None
        done[case] = (rec["summary"] or {}, list(kinds["kind"]) if len(kinds) else [], table)
        s = int(case.rpartition("-s")[2])
        walls[s] = walls.get(s, 0.0) + float((rec["summary"] or {}).get("wall_s") or 0.0)
    results = []
    for claim in claims:
        values = []
        for s in seeds:
            control = done.get(f"{claim.control.name}-s{s}") if claim.control else None
            values.append(claim_value(claim, done.get(f"{RECIPE}-s{s}"), control))
        results.append(ClaimResult(claim, seeds, values, [holds(claim, v) for v in values]))
    wall = statistics.median(walls.values()) if walls else None
    name = recipe or spec.base or spec.name
    return Verification(name, sweep_id, seeds, results, wall, failed)


# -- the table of docs/results.md -------------------------------------------------------------


BEGIN, END = "<!-- verify:begin -->", "<!-- verify:end -->"
#: the README's table of recipes: one row per verified recipe, made from the claims table
RECIPES_BEGIN, RECIPES_END = "<!-- recipes:begin -->", "<!-- recipes:end -->"


def claim_rows(text: str) -> list[list[str]]:
    """The rows of the generated claims table in ``text`` (docs/results.md), as cells."""
    if BEGIN not in text or END not in text:
        return []
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = [r for r in block.splitlines() if r.startswith("| `")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows]


def recipes_table(results: str) -> str:
    """The README's recipe table from docs/results.md's claims table: per recipe its
    description, each claim ``name holds k/N`` (nulls marked), and the wall time of a seed."""
    by: dict[str, list[list[str]]] = {}
    for row in claim_rows(results):
        by.setdefault(row[0].strip("`"), []).append(row)
    lines = [
        "| recipe | what it shows | claims: holds k/N at seeds | wall per seed |",
        "|---|---|---|---|",
    ]
    for name, rows in sorted(by.items()):
        description = str(_spec_dict(name).get("description", "")).replace("|", "/")
        held = ", ".join(
            f"{r[1].split(':', 1)[0]}{' (null)' if r[2] == 'null' else ''} {r[5].split(' [')[0]}"
            for r in rows
        )
        lines.append(f"| `{name}` | {description} | {held} | {rows[0][6]} |")
    return "\n".join(lines) + "\n"


def _spec_dict(name: str) -> dict[str, Any]:
    """A recipe's or a study spec's dict (for its description)."""
    return load_study_dict(name) if name in study_names() else load_recipe_dict(name)


def update_readme(text: str, results: str) -> str:
    """``text`` (the README) with its recipe table (:data:`RECIPES_BEGIN` ..) regenerated
    from ``results`` (docs/results.md); unchanged without the markers."""
    if RECIPES_BEGIN not in text or RECIPES_END not in text:
        return text
    head, rest = text.split(RECIPES_BEGIN, 1)
    tail = rest.split(RECIPES_END, 1)[1]
    return f"{head}{RECIPES_BEGIN}\n{recipes_table(results)}{RECIPES_END}{tail}"


def update_markdown(text: str, verifications: list[Verification]) -> str:
    """``text`` (a markdown file) with the generated table between :data:`BEGIN` and
    :data:`END` brought up to date: the rows of the recipes verified now replaced, the other
    recipes' rows kept, sorted by recipe. Without the markers, the table alone."""
    if BEGIN not in text or END not in text:
        return markdown(verifications)
    head, rest = text.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    new = markdown(verifications).splitlines()
    done = {f"| `{v.recipe}` |" for v in verifications}
    kept = [
        r for r in block.splitlines() if r.startswith("| `") and r[: r.index("` |") + 3] not in done
    ]
    rows = sorted(kept + new[2:], key=lambda r: r.split("`")[1])
    return f"{head}{BEGIN}\n" + "\n".join(new[:2] + rows) + f"\n{END}{tail}"


def claim_cell(c: Claim) -> str:
    """The claim as the table's second column: ``name: statement (`threshold`)``."""
    return f"{c.name}: {c.statement} (`{c.threshold}`)".replace("|", "\\|")


def markdown(verifications: list[Verification]) -> str:
    """One row per claim: recipe, claim, kind, the paper's figure, our median and range over
    the seeds, ``holds k/N`` with its interval, and the wall time of one seed."""
    lines = [
        "| recipe | claim | kind | paper | ours: median (range) | holds | wall per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in verifications:
        for r in v.results:
            c = r.claim
            shown = r.measured
            ours = f"{_num(r.median)} ({_num(min(shown))} .. {_num(max(shown))})" if shown else "-"
            lo, hi = r.interval
            paper = ": ".join(x for x in (c.paper, c.paper_value) if x) or "-"
            wall = f"{v.wall_s:.0f} s" if v.wall_s is not None else "-"
            lines.append(
                f"| `{v.recipe}` | {claim_cell(c)} | {c.kind} | {paper.replace('|', '/')} "
                f"| {ours} | {r.k}/{r.n} [{lo:.2f}, {hi:.2f}] | {wall} |"
            )
    return "\n".join(lines) + "\n"


# -- the claims of a sweep spec --------------------------------------------------------------


def sweep_results(store: Store, sweep_id: str, spec: SweepSpec) -> Verification:
    """The claims of a (non-verification) sweep spec on its members: each member of a claim's
    ``case`` (default: every member outside its control's case) against the member of the
    control's case at the same grid point and seed. ``seeds`` are the measured members'
    indices; a member that did not finish (or has no matching control) is not measured."""
    claims = [Claim.model_validate(c) for c in spec.claims]
    runs = member_runs(store, sweep_id)
    members = expand(spec)
    summaries = store.runs().set_index("id")["summary"]  # read once (a sweep may hold 1000s)
    data: dict[int, tuple | None] = {}
    for m in members:
        run_id, status = runs.get(config_key(m.config.to_dict()), (None, None))
        if run_id is None or status not in ("finished", "stopped"):
            data[m.index] = None
            continue
        kinds = store.events(run_id)
        table = store.metric_table(run_id) if any(c.metric for c in claims) else None
        summary = summaries.get(run_id) or {}
        data[m.index] = (summary, list(kinds["kind"]) if len(kinds) else [], table)

    def point(m) -> tuple:  # the member's place apart from its case
        return tuple(sorted((k, repr(v)) for k, v in m.axes.items() if k != "case"))

    results = []
    for claim in claims:
        control_case = claim.control.case if claim.control else None
        controls = {point(m): m.index for m in members if m.axes.get("case") == control_case}
        measured = [
            m
            for m in members
            if (m.axes.get("case") == claim.case if claim.case else
                claim.control is None or m.axes.get("case") != control_case)
        ]  # fmt: skip
        values = []
        for m in measured:
            control = data.get(controls.get(point(m), -1)) if claim.control else None
            values.append(claim_value(claim, data[m.index], control))
        results.append(
            ClaimResult(
                claim, [m.index for m in measured], values, [holds(claim, v) for v in values]
            )
        )
    failed = [m.index for m in members if data[m.index] is None]
    return Verification(spec.name, sweep_id, [m.index for m in members], results, None,
                        [f"member {i}" for i in failed])  # fmt: skip
