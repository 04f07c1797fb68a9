"""Sweeps: a spec expanded into member runs, grouped into ensembles, run locally or on Ray.

A sweep spec (YAML; built-in ones live in ``recipes/sweeps/``)::

    name: grokking-phase-diagram
    base: grokking-mlp                 # a recipe name or YAML path; or `config: {...}` inline
    set: {train.steps: 2000}           # dotted overrides applied to every member
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

Every member is validated (as a run config, and its task is built) before anything trains: a
bad spec is a :class:`UserError` naming the axis. Members whose :func:`ensemble_key` agrees form
a group; a group is cut into pieces of at most ``max_members`` and each piece is trained by
:func:`run_group`, which picks by a short calibration whether to train it as one ensemble,
as chunks of k members, or member after member with the plain trainer.

The store holds one ``sweeps`` row (id, name, status, the spec, the member count) and the
members as normal runs with ``runs.sweep_id``. Workers (processes, Ray tasks) only train and
return :class:`~learnscope.train.ensemble.MemberResult` s; the driver alone writes the store.
``--resume`` finds the newest sweep with the same spec and trains only the members with no
finished run (a member is matched by its whole config).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from learnscope.config import RunConfig, load_recipe_dict, validate_config
from learnscope.errors import UserError, from_validation
from learnscope.store import Store
from learnscope.train.loop import resolve_device

DISTRIBUTIONS = ("uniform", "loguniform", "choice")


# -- the spec --------------------------------------------------------------------------------


class RandomAxes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(ge=1)
    seed: int = 0
    params: dict[str, dict[str, list[Any]]]


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_cpus: float = Field(1, ge=0)
    num_gpus: float = Field(0, ge=0)


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "sweep"
    description: str = ""
    base: str | None = None
    config: dict[str, Any] | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    random: RandomAxes | None = None
    seeds: int = Field(1, ge=1)
    resources: Resources = Resources()
    show: dict[str, Any] = Field(default_factory=dict)

    @property
    def axes(self) -> list[str]:
        """Axis names as they appear in member tables: dotted paths, then ``seed``."""
        names = list(self.grid) + (list(self.random.params) if self.random else [])
        return names + (["seed"] if self.seeds > 1 else [])


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
            try:
                text = path.read_text()
            except OSError as err:
                raise UserError(f"sweep: cannot read {ref}: {err.strerror}") from None
        elif ref in sweep_names():
            text = (resources.files("learnscope.recipes") / "sweeps" / f"{ref}.yaml").read_text()
        else:
            raise UserError(
                f"sweep: unknown sweep {ref!r}; allowed: {', '.join(sweep_names())} "
                "or a path to a YAML file"
            )
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise UserError(
                f"sweep: {ref} is not valid YAML: {' '.join(str(err).split())}"
            ) from None
        if not isinstance(data, dict):
            raise UserError(f"sweep: {ref} must hold a mapping, not {type(data).__name__}")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        raise from_validation(err, "sweep") from None
    if (spec.base is None) == (spec.config is None):
        raise UserError("sweep: give exactly one of base (a recipe or YAML path) or config")
    for path, values in spec.grid.items():
        if not values:
            raise UserError(f"sweep.grid.{path}: empty list of values; give at least one")
    if spec.random:
        for path, dist in spec.random.params.items():
            _check_distribution(path, dist)
    return spec


def _check_distribution(path: str, dist: dict[str, list[Any]]) -> None:
    where = f"sweep.random.params.{path}"
    if len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
        raise UserError(
            f"{where}: give one distribution; allowed: {', '.join(DISTRIBUTIONS)} (got {dist})"
        )
    kind, args = next(iter(dist.items()))
    if kind == "choice":
        if not args:
            raise UserError(f"{where}: choice needs at least one value")
        return
    if len(args) != 2 or not all(isinstance(a, int | float) for a in args) or args[0] >= args[1]:
        raise UserError(f"{where}: {kind} needs [low, high] numbers with low < high (got {args})")
    if kind == "loguniform" and args[0] <= 0:
        raise UserError(f"{where}: loguniform needs low > 0 (got {args[0]})")


# -- expanding it into members -----------------------------------------------------------------


@dataclass
class Member:
    index: int
    axes: dict[str, Any]  # axis path -> value
    config: RunConfig


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    node = data
    parts = path.split(".")
    for i, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"sweep axis {path}: {'.'.join(parts[: i + 1])} is not a section")
    node[parts[-1]] = value


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
        _set_path(base, path, value)
    base["expect"] = {}  # a recipe's expectation is about the recipe, not about every member
    base_seed = int(base.get("seed", 0))
    draws: list[dict[str, Any]] = [{}]
    if spec.random:
        rng = np.random.default_rng(spec.random.seed)
        params = spec.random.params
        draws = [{p: _draw(rng, d) for p, d in params.items()} for _ in range(spec.random.count)]
    grid = [dict(zip(spec.grid, combo)) for combo in itertools.product(*spec.grid.values())]
    members = []
    for point, draw, s in itertools.product(grid, draws, range(spec.seeds)):
        axes = {**point, **draw} | ({"seed": s} if spec.seeds > 1 else {})
        data = copy.deepcopy(base)
        for path, value in {**point, **draw}.items():
            _set_path(data, path, value)
        data["seed"] = base_seed + s
        data["name"] = f"{spec.name}-{len(members):04d}"
        try:
            cfg = validate_config(data)
        except UserError as err:
            shown = ", ".join(f"{k}={v!r}" for k, v in axes.items())
            raise UserError(f"sweep member {len(members)} ({shown}): {err}") from None
        members.append(Member(len(members), axes, cfg))
    return members


def group_members(members: list[Member], max_members: int) -> list[list[Member]]:
    """Members with equal :func:`ensemble_key` together, cut into pieces of <= max_members.

    Building each member's task here also checks it (e.g. a training fraction that leaves a
    split empty) before any training starts.
    """
    from learnscope.train.ensemble import ensemble_key

    groups: dict[str, list[Member]] = {}
    for m in members:
        try:
            key = ensemble_key(m.config)
        except UserError as err:
            shown = ", ".join(f"{k}={v!r}" for k, v in m.axes.items())
            raise UserError(f"sweep member {m.index} ({shown}): {err}") from None
        groups.setdefault(key if key is not None else f"alone-{m.index}", []).append(m)
    return [g[i : i + max_members] for g in groups.values() for i in range(0, len(g), max_members)]


# -- choosing how to train a group ----------------------------------------------------------------

CANDIDATES = (8, 32, 128, 512)
MEMORY_BUDGET = 4 * 2**30  # bytes of activations an ensemble step may use


def _fastest_step(marks: list[float]) -> float | None:
    """The shortest interval between step-end times ``marks``, the first step left out (a
    warm-up). The fastest, not the mean: on a shared machine it is the measurement least
    disturbed by other processes."""
    return min((b - a for a, b in zip(marks[1:], marks[2:])), default=None)


def _time_alone(cfg: RunConfig, steps: int) -> float:
    """Seconds of the fastest of ``steps`` training steps of the plain trainer, after two
    warm-up steps (a throw-away run of ``cfg``)."""
    from learnscope.train.ensemble import train_alone

    marks: list[float] = []

    def tick() -> bool:  # True stops the run
        marks.append(time.perf_counter())
        return len(marks) > steps + 1

    train_alone(
        cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": 10**9})}),
        on_step=tick,
    )
    return _fastest_step(marks)


def _time_ensemble(cfgs: list[RunConfig], steps: int) -> float:
    """Seconds of the fastest of ``steps`` training steps of an ensemble of ``cfgs``."""
    from learnscope.train.ensemble import Ensemble

    ens = Ensemble(cfgs, probes=False)
    ens.train_step()
    ens.train_step()
    best = float("inf")
    for _ in range(steps):
        t0 = time.perf_counter()
        ens.train_step()
        best = min(best, time.perf_counter() - t0)
    return best


def _activation_bytes(cfg: RunConfig, k: int) -> int:
    """A rough cost model of one ensemble step's memory: rows x widest layer x 8 tensors."""
    from learnscope.train.ensemble import member_task

    task = member_task(cfg)
    rows = cfg.train.batch_size or len(task.split("train"))
    rows = min(rows, len(task.split("train")))
    width = max(int(cfg.model.params.get("width", 512)), sum(task.model_dims().values()))
    return 4 * 8 * k * rows * width


_PEAK: dict[str, float] = {}


#: The share of a group's member-steps that timing candidate ensembles may spend: the runner's
#: choice can then cost at most about this much more than the loop when the loop wins.
CALIBRATION_SHARE = 0.05


def peak_flops(device: str = "cpu") -> float:
    """Measured FLOP/s of a 512^3 float32 matmul on ``device`` (once per process)."""
    if device not in _PEAK:
        a = torch.randn(512, 512, device=device)
        b = torch.randn(512, 512, device=device)
        best = float("inf")
        for _ in range(10):  # the fastest of ten, the least disturbed on a shared machine
            t0 = time.perf_counter()
            a @ b
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        _PEAK[device] = 2 * 512**3 / best
    return _PEAK[device]


def member_step_flops(cfg: RunConfig) -> float:
    """Cost model of one member's training step: ``6 x rows x weights`` (forward 2, backward 4
    multiply-adds per weight and row, Kaplan et al. 2020), for a member that can join an
    ensemble (see :func:`~learnscope.train.ensemble.member_shapes`)."""
    from learnscope.train.ensemble import member_shapes, member_task

    n_train = len(member_task(cfg).split("train"))
    rows = min(cfg.train.batch_size or n_train, n_train)
    weights = [math.prod(s) for s in member_shapes(cfg).values() if len(s) >= 2]
    return 6.0 * rows * sum(weights)


#: Above this fraction of the device's matmul rate one member keeps the hardware busy.
BUSY = 0.5
#: Steps of one member timed with the plain trainer (after two warm-up steps) before choosing.
TIMED_STEPS = 5


def utilisation(cfg: RunConfig, step_s: float) -> float:
    """The fraction of the device's matmul rate that one member of ``cfg`` uses when a step
    takes ``step_s`` seconds (cost model :func:`member_step_flops`)."""
    return member_step_flops(cfg) / step_s / peak_flops(str(resolve_device(cfg.train.device)))


def start_first(cfg: RunConfig) -> tuple[Any, float | None]:
    """Train the group's first member with the plain trainer, timing its first steps.

    If that member keeps the hardware busy (:func:`utilisation` over :data:`BUSY`), or its run
    is shorter than the timing, it trains to the end and its result is returned; otherwise it
    stops after ``TIMED_STEPS + 2`` steps and None is returned (it is trained again with the
    others, so an ensemble costs it only those steps). Also returns the fastest timed step.
    """
    from learnscope.train.ensemble import train_alone

    marks: list[float] = []

    def tick() -> bool:  # True stops the member
        marks.append(time.perf_counter())
        return len(marks) == TIMED_STEPS + 2 and utilisation(cfg, _fastest_step(marks)) <= BUSY

    result = train_alone(cfg, on_step=tick)
    return (None if result.status == "stopped" else result), _fastest_step(marks)


def candidate_sizes(cfgs: list[RunConfig], steps: int = 5) -> list[int]:
    """Ensemble sizes :func:`choose_chunk` may time (``steps`` + 2 steps each): those of
    :data:`CANDIDATES` below ``len(cfgs)``, and ``len(cfgs)``, while their timing stays within
    :data:`CALIBRATION_SHARE` of the group's member-steps and their activations within
    :data:`MEMORY_BUDGET`."""
    budget = CALIBRATION_SHARE * len(cfgs) * cfgs[0].train.steps  # member-steps it may spend
    sizes = []
    for k in [c for c in CANDIDATES if c < len(cfgs)] + [len(cfgs)]:
        if k * (steps + 2) > budget or _activation_bytes(cfgs[0], k) > MEMORY_BUDGET:
            break
        sizes.append(k)
    return sizes


def choose_chunk(
    cfgs: list[RunConfig], steps: int = 5, alone_s: float | None = None
) -> tuple[int, dict[str, float]]:
    """How many members to train at once: 1 (the plain trainer, in turn) or an ensemble size.

    1. Time a few steps of one member with the plain trainer (or take ``alone_s``, measured
       as :func:`run_group` starts the first member: :func:`start_first`). If its FLOP rate
       (cost model :func:`member_step_flops`) is already over half of the device's matmul rate
       (:func:`peak_flops`), one member keeps the hardware busy and stacking cannot pay
       for its larger, freshly allocated activations: members go in turn.
    2. Otherwise time ensembles of 8, 32, 128... members (:func:`candidate_sizes`), moving
       to a larger one only when it is at least 10% cheaper per member-step than the best so
       far, and stopping at the first that is not.

    Returns the chunk size and the measured seconds per member-step by size (``"util"``: the
    single member's fraction of the peak rate).
    """
    from learnscope.train.ensemble import ensemble_key

    if len(cfgs) == 1 or ensemble_key(cfgs[0]) is None:
        return 1, {}
    cfg0 = cfgs[0]
    cost: dict = {1: alone_s if alone_s is not None else _time_alone(cfg0, steps)}
    cost["util"] = utilisation(cfg0, cost[1])
    if cost["util"] > BUSY:
        return 1, cost
    best = 1
    for k in candidate_sizes(cfgs, steps):
        cost[k] = _time_ensemble(cfgs[:k], steps) / k
        if cost[k] >= 0.9 * cost[best]:  # within timing noise: keep the smaller (less memory)
            break
        best = k
    return best, cost


def run_group(
    configs: list[dict[str, Any]],
    chunk: int | None = None,
    threads: int | None = None,
    on_results: Callable[[list[Any]], None] | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> list[Any]:
    """Train one group of compatible members; returns their results in order.

    ``chunk``: members per ensemble (1: the plain trainer, member after member); None
    chooses it with :func:`choose_chunk`. Runs in a worker process or a Ray task, and writes
    nothing: results go back to the caller (and to ``on_results`` after each chunk;
    ``on_progress(members)`` gets the fraction of the current chunk done, in members).
    """
    from learnscope.train.ensemble import Ensemble, train_alone

    if threads:
        torch.set_num_threads(threads)
    from learnscope.train.ensemble import ensemble_key

    cfgs = [validate_config(c) for c in configs]
    results: list[Any] = []
    if chunk is None and (
        len(cfgs) == 1 or ensemble_key(cfgs[0]) is None or not candidate_sizes(cfgs)
    ):
        chunk = 1  # nothing to stack, or a run too short to time an ensemble within budget
    if chunk is None:  # the first member starts with the plain trainer, which times it
        first, alone_s = start_first(cfgs[0])
        if first is not None:  # it ran to the end: keep it
            results.append(first)
            if on_results is not None:
                on_results([first])
            if first.status == "interrupted":
                raise KeyboardInterrupt  # as for a chunk below
            cfgs = cfgs[1:]
        chunk, _ = choose_chunk(cfgs, alone_s=alone_s) if cfgs else (1, {})
    for i in range(0, len(cfgs), chunk):
        part = cfgs[i : i + chunk]

        def report(step: int, k: int = len(part), steps: int = part[0].train.steps) -> None:
            if on_progress is not None:
                on_progress(k * step / steps)

        done = [train_alone(c, report) for c in part] if chunk == 1 else Ensemble(part).fit(report)
        results += done
        if on_results is not None:
            on_results(done)
        if any(r.status == "interrupted" for r in done):
            raise KeyboardInterrupt  # recorded as interrupted; --resume trains them again
    return results


# -- running a sweep --------------------------------------------------------------------------


def _config_key(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


def find_resumable(store: Store, spec: SweepSpec) -> str | None:
    sweeps = store.sweeps()
    dump = json.loads(json.dumps(spec.model_dump(mode="json"), sort_keys=True))
    same = sweeps[sweeps["spec"].map(lambda s: s == dump)]
    return None if same.empty else str(same["id"].iloc[-1])


def finished_configs(store: Store, sweep_id: str) -> set[str]:
    runs = store.runs()
    runs = runs[(runs["sweep_id"] == sweep_id) & (runs["status"] == "finished")]
    return {_config_key(c) for c in runs["config"]}


def run_sweep(
    spec: SweepSpec,
    store: Store,
    backend: str = "local",
    workers: int | None = None,
    max_members: int = 128,
    resume: bool = False,
    address: str | None = None,
    chunk: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Expand, validate, group and train ``spec``; record everything; return the sweep id.

    ``progress(done, total)`` is called as members finish, and in between with fractional
    ``done`` as the running chunk evaluates (inline runs only; for the CLI's progress bar).
    """
    from learnscope.train.ensemble import record

    if backend not in ("local", "ray"):
        raise UserError(f"--backend: {backend!r}; allowed: local, ray")
    if max_members < 1:
        raise UserError(f"--max-members: must be >= 1 (got {max_members})")
    if chunk is not None and chunk < 1:
        raise UserError(f"--chunk: must be >= 1 (got {chunk})")
    if workers is not None and workers < 1:
        raise UserError(f"--workers: must be >= 1 (got {workers})")
    members = expand(spec)
    sweep_id = find_resumable(store, spec) if resume else None
    if resume and sweep_id is None:
        raise UserError(f"--resume: no sweep named {spec.name!r} with this spec in {store.root}")
    done = finished_configs(store, sweep_id) if sweep_id else set()
    todo = [m for m in members if _config_key(m.config.to_dict()) not in done]
    groups = group_members(todo, max_members)  # validates every member's task too
    if sweep_id is None:
        sweep_id = store.create_sweep(spec.name, spec.model_dump(mode="json"), len(members))
    else:
        store.set_sweep_status(sweep_id, "running")
    finished = len(members) - len(todo)
    if progress:
        progress(finished, len(members))

    def partial(in_flight: float) -> None:  # members' worth of the running chunk
        if progress:
            progress(finished + in_flight, len(members))

    def take(results: list[Any]) -> None:
        nonlocal finished
        for r in results:
            record(store, r, sweep_id)
        finished += len(results)
        if progress:
            progress(finished, len(members))

    payloads = [[m.config.to_dict() for m in g] for g in groups]
    status = "finished"
    try:
        if backend == "ray":
            _run_ray(payloads, spec.resources, take, workers, address, chunk)
        else:
            _run_local(payloads, take, workers, chunk, partial)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except BaseException:
        status = "failed"
        raise
    finally:
        store.set_sweep_status(sweep_id, status)
    return sweep_id


def _run_local(payloads, take, workers: int | None, chunk: int | None, partial=None) -> None:
    """One process when ``workers`` is 1 (or there is one group); else a spawn process pool,
    each worker with ``cores // workers`` torch threads."""
    cores = os.cpu_count() or 1
    workers = min(workers or cores, len(payloads)) if payloads else 1
    if workers <= 1:
        for p in payloads:
            run_group(p, chunk, on_results=take, on_progress=partial)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, cores // workers)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        futures = [pool.submit(run_group, p, chunk, threads) for p in payloads]
        for f in as_completed(futures):
            take(f.result())


def _run_ray(payloads, res: Resources, take, workers, address, chunk) -> None:
    """Each group is a Ray task with the spec's ``num_cpus`` / ``num_gpus``; results come back
    to this driver, which alone writes the store."""
    try:
        import ray
    except ImportError:
        raise UserError(
            "--backend ray: ray is not installed; pip install 'learnscope[ray]'"
        ) from None
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=workers or 2, include_dashboard=False, log_to_driver=False)
    try:
        threads = max(1, int(res.num_cpus))
        task = ray.remote(num_cpus=res.num_cpus, num_gpus=res.num_gpus)(run_group)
        pending = [task.remote(p, chunk, threads) for p in payloads]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            take(ray.get(ready[0]))
    finally:
        if started:
            ray.shutdown()


# -- reading a sweep back -----------------------------------------------------------------------


def resolve_sweep(store: Store, ref: str) -> str:
    """A sweep id from an id, a unique prefix, a name (its newest sweep) or ``last``."""
    sweeps = store.sweeps()
    if not len(sweeps):
        raise UserError(f"sweep: no sweeps in {store.root}")
    if ref == "last":
        return str(sweeps["id"].iloc[-1])
    named = sweeps[sweeps["name"] == ref]
    if len(named):
        return str(named["id"].iloc[-1])
    hits = [s for s in sweeps["id"] if s.startswith(ref)]
    if len(hits) == 1:
        return hits[0]
    known = ", ".join(sweeps["id"].tail(5))
    raise UserError(f"sweep: {ref!r} {'is ambiguous' if hits else 'matches no sweep'}; {known}")


def _lookup(config: dict[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def member_table(store: Store, sweep_id: str) -> pd.DataFrame:
    """One row per member run: its axis values, status and final metrics and events."""
    rec = store.sweeps().set_index("id").loc[sweep_id]
    spec = SweepSpec.model_validate(rec["spec"])
    runs = store.runs()
    runs = runs[runs["sweep_id"] == sweep_id]
    rows = []
    first_seed = min((c["seed"] for c in runs["config"]), default=0)
    for r in runs.itertuples():
        row: dict[str, Any] = {"run": r.id, "status": r.status}
        for axis in spec.axes:
            row[axis] = _lookup(r.config, axis)
        if "seed" in spec.axes:
            row["seed"] = r.config["seed"] - first_seed  # 0 .. seeds - 1
        for key in ("train_acc", "test_acc", "test_loss", "grok_train_step", "grok_test_step"):
            row[key] = r.summary.get(key)
        row["mode"] = r.summary.get("mode")
        rows.append(row)
    return pd.DataFrame(rows)


def pivot(table: pd.DataFrame, rows: str, cols: str, value: str) -> pd.DataFrame:
    """Mean of ``value`` over members (seeds) at each (rows, cols) point; an axis may be named
    by its last dotted part (``weight_decay`` for ``train.weight_decay``)."""

    def axis(name: str) -> str:
        if name in table.columns:
            return name
        hits = [c for c in table.columns if c.split(".")[-1] == name]
        if len(hits) == 1:
            return hits[0]
        raise UserError(f"--pivot: unknown axis {name!r}; allowed: {list(table.columns)}")

    rows, cols = axis(rows), axis(cols)
    if value not in table.columns:
        raise UserError(f"--value: unknown column {value!r}; allowed: {list(table.columns)}")
    values = pd.to_numeric(table[value], errors="coerce")
    return (
        table.assign(**{value: values})
        .pivot_table(index=rows, columns=cols, values=value, aggfunc="mean", dropna=False)
        .sort_index()
    )
