"""THE run pipeline: ``config -> task + model -> trainer (+ callbacks) -> store -> events``.

Every run goes through it: ``learnscope run``, every sweep member and every command that
trains. A run is built (task, model, trainer, probe plan), given its callbacks (the divergence
guard, the probe recorder, the store logger, checkpoints, then the caller's sinks), trained,
read for events (with the layer widths the collapse detectors need) and summarised into the
store. :func:`execute` trains one run with the plain :class:`~learnscope.train.loop.Trainer`;
:func:`execute_ensemble` trains several same-shaped runs at once with the stacked engine
(:class:`~learnscope.train.ensemble.Ensemble`), each member getting the same callbacks,
events and summary as a single run.

Everything that can fail on user input (the task's parameters, the model's fields, the
probes, the device, the checkpoint to resume from) is built *before* the store is touched, so
a bad config leaves no run behind.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from learnscope import checkpoint
from learnscope import events as events_mod
from learnscope.config import ProbeSpec, RunConfig, validate_config
from learnscope.errors import UserError
from learnscope.measures import run_claims
from learnscope.models import build_model, hook_names, memory_limit, model_config
from learnscope.probes.plan import ProbePlan, plan_probes
from learnscope.probes.registry import PROBES
from learnscope.store import Store, configs_yaml, missing_dir
from learnscope.tasks import make_task
from learnscope.train import continual
from learnscope.train.callbacks import (
    Checkpointer,
    DivergenceGuard,
    LinearisedTwin,
    ProbeRecorder,
    StopWhen,
    StoreLogger,
    layer_sizes,
    rft_stats,
)
from learnscope.train.ensemble import (
    Ensemble,
    frozen_heap,
    member_events,
    member_task,
)
from learnscope.train.examples import ExampleRecorder
from learnscope.train.loop import Callback, Trainer

#: What a caller adds to a run: a callback, or a function that builds one from the run's id
#: (for a sink that names its output after the run, or reads the run's history).
Sink = Callback | Callable[[str], Callback]

#: seconds an ensemble's evaluation rows may wait in memory for one commit with later rounds'
#: (a round that writes checkpoints or ends members commits them first): 51 commits of 8000
#: rows cost ~1 s of CPU at 1000 members, one every 2 s a fifth of that
HOLD_ROWS_S = 2.0


@dataclass
class RunResult:
    run_id: str
    dir: Path
    status: str
    summary: dict[str, Any]
    events: list[events_mod.Event] = field(default_factory=list)


def build(cfg: RunConfig) -> Trainer:
    """Task, model and trainer for ``cfg``, seeded; no store involved. A training batch whose
    activations would not fit in memory is refused here, with the figures."""
    _check_positions(cfg)
    task = make_task(cfg.task.name, **cfg.task.params)
    dims = task.model_dims()
    sized = model_config(cfg.model.kind, cfg.model.params, dims)  # once per run
    _check_batch_memory(cfg, task, sized)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model.kind, cfg.model.params, dims, sized)
    summary: dict[str, Any] = {}
    if cfg.train.autoinit is not None:
        model, summary = _autoinit(cfg, task, model)
    if cfg.train.subspace is not None:  # theta_0 + P z, only z trained (Li et al. 2018)
        from learnscope.models.subspace import Subspace

        sub = cfg.train.subspace
        model = Subspace(model, sub.dim, sub.kind, seed=cfg.seed)
    try:
        trainer = Trainer(model, task, cfg.train, seed=cfg.seed)
    except (RuntimeError, AssertionError) as err:  # e.g. a CUDA device on a CPU machine
        if "cuda" in str(err).lower() or "device" in str(err).lower():
            raise UserError(f"train.device: {cfg.train.device!r} is not available: {err}") from None
        raise
    trainer.init_summary = summary
    continual.setup(trainer, cfg)  # a task sequence, EWC, plasticity remedies (or nothing)
    return trainer


def _check_positions(cfg: RunConfig) -> None:
    """``model.pos`` coupled or abacus reads the ids of ``task.positions``: the two agree."""
    given = cfg.task.params.get("positions", "none")
    pos = cfg.model.params.get("pos") if cfg.model.kind == "gpt" else None
    if (pos in ("coupled", "abacus") or given != "none") and pos != given:
        raise UserError(
            f"task.positions: {given!r} with model.kind {cfg.model.kind}, pos {pos!r}; "
            "model.pos coupled or abacus (a GPT) goes with the same task.positions"
        )
    if given != "none" and cfg.train.objective != "task":
        raise UserError(f"task.positions: {given!r} trains with train.objective task only")


def _autoinit(cfg: RunConfig, task, model) -> tuple[torch.nn.Module, dict[str, Any]]:
    """AutoInit (He, Doshi & Gromov 2022) on the first ``rows`` training inputs, and what it
    did for the run's summary: its steps, whether it converged and the largest ``|log J|``
    left between adjacent layers."""
    import math

    from learnscope.interventions.autoinit import autoinit

    opts = cfg.train.autoinit
    if cfg.model.kind != "mlp" or task.kind != "classification":
        raise UserError("train.autoinit: needs an MLP (model.kind: mlp) on a classification task")
    x = task.split("train")["x"][: opts.rows]
    try:
        result = autoinit(model, x, opts.steps, opts.lr, opts.tol, opts.n_proj, cfg.seed)
    except ValueError as err:
        raise UserError(f"train.autoinit: {err}") from None
    worst = max(abs(math.log(j)) if j > 0 else math.inf for j in result.apjn)
    return result.model, {
        "autoinit_steps": result.steps,
        "autoinit_converged": result.converged,
        "autoinit_max_log_apjn": round(worst, 4),
    }


def _check_batch_memory(cfg: RunConfig, task, model) -> None:
    """About ``4 bytes x 2 (the backward pass) x rows x floats per row`` for one training step
    (``activation_floats`` of the model's config ``model``), against half of this machine's
    memory."""
    rows = cfg.train.batch_size or len(task.split("train"))
    need = 8 * rows * model.activation_floats()
    if need > memory_limit():
        whole = "the full training split" if cfg.train.batch_size is None else "a batch"
        raise UserError(
            f"train.batch_size: {whole} of {rows} rows needs about {need / 2**30:.1f} GiB of "
            f"activations per step (> {memory_limit() / 2**30:.1f} GiB, half of this "
            "machine's memory); allowed: a smaller train.batch_size or model"
        )


def _spec_dicts(specs: list[ProbeSpec] | None) -> list[dict[str, Any]] | None:
    if specs is None:
        return None
    return [{"probe": s.probe, "sites": s.sites, "every": s.every, **s.options} for s in specs]


def probe_plan(cfg: RunConfig, trainer, specs: list[ProbeSpec] | None | str = "config"):
    """The probes of ``cfg`` (or ``specs``) resolved for ``trainer``'s freshly built model."""
    specs = cfg.probes if specs == "config" else specs
    return plan_probes(
        _spec_dicts(specs),
        trainer.model,
        trainer.task,
        trainer.objective.forward,
        kind=cfg.model.kind,
        eval_every=cfg.train.eval_every,
        batch_split=cfg.probe_batch.split,
        batch_size=cfg.probe_batch.size,
        seed=cfg.seed,
        device=trainer.device,
    )


# -- the pipeline's steps, the same for a trainer and an ensemble member ----------------------


@dataclass
class _Watch:
    """The callbacks whose findings go into the run's summary."""

    guard: DivergenceGuard
    stop: StopWhen | None


def _attach(
    trainer, plan: ProbePlan, cfg: RunConfig, store: Store, run_id: str, sinks: Sequence[Sink]
) -> _Watch:
    """The callbacks every run gets, in this order, then the caller's sinks."""
    guard = DivergenceGuard()  # a non-finite loss stops the run at once: status "diverged"
    trainer.add_callback(guard)
    stop = None
    if cfg.train.stop_when:  # the question is answered: stop (train.stop_when)
        stop = StopWhen(cfg.train.stop_when, cfg.train.stop_patience, cfg.events)
        trainer.add_callback(stop)
    if any(item.probe == "ntk_distance" for item in plan.items):
        trainer.add_callback(LinearisedTwin(plan))  # steps before the probes read it
    if examples := [item for item in plan.items if item.probe == "examples"]:
        trainer.add_callback(ExampleRecorder(examples, store.root / run_id / "examples"))
    if plan.items:
        trainer.add_callback(ProbeRecorder(plan))
    trainer.add_callback(StoreLogger(store, run_id))
    directory = store.root / run_id / "checkpoints"
    every, keep = cfg.train.checkpoint_every, cfg.train.keep_checkpoints
    trainer.add_callback(Checkpointer(directory, every, keep))
    if (stats := rft_stats(trainer, cfg.seed)) is not None:  # per-input RFT statistics
        trainer.add_callback(stats)
    for sink in sinks:
        trainer.add_callback(sink if isinstance(sink, Callback) else sink(run_id))
    return _Watch(guard, stop)


def _finish(
    trainer,
    watch: _Watch,
    cfg: RunConfig,
    store: Store,
    run_id: str,
    extra: dict[str, Any] | None = None,
    sizes: dict[str, int] | None = None,
    table=None,
    found: list[events_mod.Event] | None = None,
) -> RunResult:
    """Events read off the stored series (``table``, read from the store unless given; with
    the model's layer widths, measured unless ``sizes`` are given), the summary, and the run's
    final status in the store. ``found``: the events already detected on that series (an
    ensemble member's, from its metrics in memory; its ``table`` is then given only where the
    summary reads it: claims, a task sequence)."""
    if found is None:
        table = store.metric_table(run_id) if table is None else table
        if sizes is None:
            sizes = layer_sizes(trainer)
        found = events_mod.detect(table, cfg.events, sizes)
    if watch.guard.event:  # the guard saw the exact step and metric; the table the next eval
        found = [e for e in found if e.kind != "divergence"] + [watch.guard.event]
    for e in found:
        store.add_event(run_id, e.step, e.kind, e.data)
    summary = summary_of(trainer.metrics, set(trainer.splits), trainer.step, trainer.wall_s, found)
    summary.update(getattr(trainer, "init_summary", {}))
    summary.update(continual.summary(trainer, table))  # a task sequence's accuracies
    summary.update(extra or {})
    if watch.stop is not None and watch.stop.reason and trainer.status == "stopped":
        summary["stopped_by"] = watch.stop.reason
    if cfg.claims:  # those a single run can check (a paired claim needs its control)
        summary["claims"] = run_claims(cfg.claims, summary, [e.kind for e in found], table)
    store.finish_run(run_id, trainer.status, summary)
    return RunResult(run_id, store.root / run_id, trainer.status, summary, found)


def summary_of(
    metrics: dict[str, float],
    splits: set[str],
    steps: int,
    wall_s: float,
    found: list[events_mod.Event],
) -> dict[str, Any]:
    """Flat summary: final split metrics (``test_acc``...), steps, wall time, grokking steps,
    slingshot cycles (count, first step) and, for a diverged run, where it diverged."""
    summary: dict[str, Any] = {
        k.replace("/", "_"): v for k, v in metrics.items() if k.split("/")[0] in splits
    }
    summary.update(
        steps=steps,
        wall_s=round(wall_s, 3),
        steps_per_s=round(steps / wall_s, 2) if wall_s else None,
    )
    for e in found:
        if e.kind == "grokking":
            summary.update(
                {f"grok_{k}": e.data[k] for k in ("train_step", "test_step", "gap", "ratio")}
            )
        if e.kind == "divergence":
            summary.update(diverged_step=e.step, diverged_metric=e.data.get("metric"))
        if e.kind == "structure_onset":  # Chen et al. 2024: SAS onset and the loss drop
            summary.update(
                sas_onset_step=e.step, sas_loss_drop_step=e.data["loss_step"], sas_lag=e.data["lag"]
            )
    cycles = [e.step for e in found if e.kind == "slingshot"]
    summary["slingshots"] = len(cycles)  # Thilak et al. 2022: how many cycles (0: none) ...
    if cycles:  # ... and when the first began
        summary["slingshot_step"] = min(cycles)
    summary.update(events_mod.slingshot_grokking(found))  # test jump at a slingshot, grok lag
    return summary


# -- running -------------------------------------------------------------------------------


def execute(
    cfg: RunConfig | dict[str, Any],
    store: Store,
    sinks: Sequence[Sink] = (),
    sweep_id: str | None = None,
    resume: str | None = None,
    restart: str | None = None,
    extra: dict[str, Any] | None = None,
    weights: dict[str, torch.Tensor] | None = None,
) -> RunResult:
    """Train ``cfg`` with the plain trainer and record it in ``store``.

    ``weights``: the model's initial weights instead of its seeded init (e.g. a pruned model
    healed by fine-tuning); their names and shapes must be the model's.

    ``resume``: continue that run from its latest readable checkpoint (the rows logged at and
    after the checkpoint's step are measured again, so none is stored twice; a run killed
    before its first checkpoint starts again from step 0). ``restart``:
    train that run's row again from step 0 (a sweep member that ended before any checkpoint).
    ``sinks`` are added after the pipeline's own callbacks. The run is locked while it trains
    (:class:`~learnscope.store.RunLock`): a second process cannot train it at the same time.
    """
    cfg = cfg if isinstance(cfg, RunConfig) else validate_config(cfg)
    trainer = build(cfg)
    if cfg.train.init_from is not None:  # before the plan: its initial weights are these
        extra = {**(extra or {}), "init_from": init_from(store, cfg, trainer)}
    if weights is not None:
        trainer.model.load_state_dict(weights)
    plan = probe_plan(cfg, trainer)  # sites checked, initial weights kept: before loading
    if resume is not None or restart is not None:
        run_id = resume if resume is not None else restart
        lock = store.lock(run_id)  # before anything of the run is touched
        try:
            _reopen(store, run_id, trainer, cfg, from_checkpoint=resume is not None)
        except BaseException:
            lock.release()
            raise
    else:
        run_id = store.create_run(cfg.name, cfg.to_dict(), sweep_id).id
        lock = store.lock(run_id)
    try:
        watch = _attach(trainer, plan, cfg, store, run_id, sinks)
        try:
            trainer.fit()
        except BaseException:
            _mark_failed(store, run_id, trainer.step)
            raise
        return _finish(trainer, watch, cfg, store, run_id, extra)
    finally:
        lock.release()


def init_from(store: Store, cfg: RunConfig, trainer: Trainer) -> str:
    """Load the model weights (not the optimizer) of ``train.init_from: RUN[@step]`` (a run id,
    unique prefix, ``last``, or a run name: the newest finished run of that name, so a recipe
    can start from another recipe's run; default step: the latest readable checkpoint) into
    ``trainer``.
    The run's ``model`` section and every weight's shape must match this run's (a task with
    other sizes gives other shapes); a mismatch is a :class:`UserError`. Returns ``id@step``."""
    ref, at, raw_step = str(cfg.train.init_from).partition("@")
    where = "train.init_from"
    if at and not raw_step.isdigit():
        raise UserError(f"{where}: {cfg.train.init_from!r}: the step after @ must be an integer")
    try:
        run_id = _run_by_name(store, ref) or store.resolve(ref)
        step, state = checkpoint_at(store.root / run_id, int(raw_step) if at else None)
    except UserError as err:
        raise UserError(f"{where}: {err}") from None
    source, mine = store.run(run_id)["config"].get("model"), cfg.to_dict()["model"]
    if source != mine:
        raise UserError(
            f"{where}: run {run_id} has model {source}, this run has {mine}; allowed: a run "
            "with the same model section"
        )
    own = trainer.model.state_dict()
    weights = state["model"]
    for name in sorted(set(own) | set(weights)):
        a, b = own.get(name), weights.get(name)
        if a is None or b is None or a.shape != b.shape:
            raise UserError(
                f"{where}: weight {name} is {_shape(b)} in run {run_id} but {_shape(a)} here "
                "(the task's sizes, e.g. vocabulary or block size, must match)"
            )
    trainer.model.load_state_dict(weights)
    return f"{run_id}@{step}"


def _shape(t: torch.Tensor | None) -> str:
    return "missing" if t is None else str(tuple(t.shape))


def _run_by_name(store: Store, name: str) -> str | None:
    """The newest finished run named ``name``, if any."""
    runs = store.runs()
    if not len(runs) or "name" not in runs:
        return None
    hits = runs[(runs["name"] == name) & (runs["status"] == "finished")]
    return str(hits["id"].iloc[-1]) if len(hits) else None


def _reopen(
    store: Store, run_id: str, trainer: Trainer, cfg: RunConfig, from_checkpoint: bool
) -> None:
    """Make an existing run trainable again: from its latest readable checkpoint (its rows
    from that step on dropped), or from step 0 (every row and checkpoint dropped). A config
    that differs from the stored one (more steps) replaces it."""
    directory = store.root / run_id / "checkpoints"
    if from_checkpoint and checkpoint.steps(directory):
        found = checkpoint.latest(directory)
        if found is None:
            raise UserError(f"resume: run {run_id} has no readable checkpoint to resume from")
        step, state = found
        trainer.load_state_dict(state)
    else:  # restarted, or killed before its first checkpoint: from step 0, in place
        step = 0
        for s in checkpoint.steps(directory):
            checkpoint.path_for(directory, s).unlink()
    if store.run(run_id)["config"] != cfg.to_dict():
        store.set_config(run_id, cfg.to_dict())
    store.truncate_metrics(run_id, step)
    store.set_status(run_id, "running")


def _mark_failed(store: Store, run_id: str, steps: int) -> None:
    """Status ``failed`` for a run whose training raised; best effort (on a full disk the
    store may refuse this write too: the run then shows as stale, its lock released)."""
    try:
        store.finish_run(run_id, "failed", {"steps": steps})
    except Exception:  # the original error is the one worth raising
        pass


def execute_ensemble(
    cfgs: Sequence[RunConfig | dict[str, Any]],
    store: Store,
    sinks: Sequence[Sink] = (),
    sweep_id: str | None = None,
) -> list[RunResult]:
    """Train ``cfgs`` (one :func:`~learnscope.train.ensemble.ensemble_key`) as one stacked
    ensemble, each member recorded as a run of its own exactly as :func:`execute` records
    one: same callbacks, checkpoints, probes, events and summary (plus ``mode: ensemble``
    and ``ensemble_size``; ``wall_s`` is the member's share of the ensemble's time). The
    objects alive when it starts are frozen for the collector while it runs
    (:func:`~learnscope.train.ensemble.frozen_heap`)."""
    with frozen_heap():
        return _execute_ensemble(cfgs, store, sinks, sweep_id)


def _execute_ensemble(
    cfgs: Sequence[RunConfig | dict[str, Any]],
    store: Store,
    sinks: Sequence[Sink],
    sweep_id: str | None,
) -> list[RunResult]:
    cfgs = [c if isinstance(c, RunConfig) else validate_config(c) for c in cfgs]
    for cfg in cfgs:  # each member must fit on its own (the runner sizes the ensembles)
        task = member_task(cfg)
        _check_batch_memory(
            cfg, task, model_config(cfg.model.kind, cfg.model.params, task.model_dims())
        )
    ens = Ensemble(cfgs)
    plans = [probe_plan(cfg, m) for cfg, m in zip(cfgs, ens.members)]
    run_ids: list[str] = []
    dicts = [cfg.to_dict() for cfg in cfgs]
    try:  # the K rows in one transaction; a failure leaves neither rows nor directories
        with store.batch():
            for cfg, config, text in zip(cfgs, dicts, configs_yaml(dicts)):
                run_ids.append(store.create_run(cfg.name, config, sweep_id, text).id)
    except BaseException:
        for run_id in run_ids:
            shutil.rmtree(store.root / run_id, ignore_errors=True)
        raise
    lock = store.lock_group(run_ids)  # one lock for the K runs

    def batch(hold_s: float = 0.0) -> contextlib.ExitStack:
        """A round of the members' callbacks writes once: its rows, events and statuses in
        one transaction, then its checkpoint files with one sync (after the rows). An
        evaluation round's rows may wait up to ``hold_s`` for a later round's commit
        (``Store.batch``); a round that writes checkpoints commits every row first."""
        stack = contextlib.ExitStack()
        stack.enter_context(checkpoint.deferred())
        stack.enter_context(store.batch(hold_s))
        return stack

    try:
        watches = [
            _attach(member, plan, cfg, store, run_id, sinks)
            for cfg, member, plan, run_id in zip(cfgs, ens.members, plans, run_ids)
        ]
        try:
            ens.fit(batch, lambda: batch(HOLD_ROWS_S))
        except BaseException:
            with contextlib.suppress(Exception), store.batch():
                for member, run_id in zip(ens.members, run_ids):
                    if member.ended_at is None:
                        _mark_failed(store, run_id, member.step)
            raise
        extra = {"mode": "ensemble", "ensemble_size": ens.k}
        sizes = layer_sizes(ens.members[0])  # one shape for every member
        # events from each member's metrics in memory (the rows its store logger wrote); the
        # stored tables are read (one query) only for members whose summary reads the table
        # or whose rows cannot be rebuilt in memory
        found, need = member_events(ens.members, cfgs, sizes)
        tables = store.metric_tables([run_ids[i] for i in need]) if need else {}
        with store.batch():  # every member's events and summary in one transaction
            return [
                _finish(member, watch, cfg, store, run_id, extra, sizes, tables.get(run_id), f)
                for cfg, member, watch, run_id, f in zip(cfgs, ens.members, watches, run_ids, found)
            ]
    finally:
        lock.release()


# -- runs that were measured, not trained ---------------------------------------------------


def record(
    store: Store,
    name: str,
    config: dict[str, Any],
    rows: Sequence[tuple[int, dict[str, float]]],
    summary: dict[str, Any],
) -> RunResult:
    """Store values measured without training (a fresh evaluation: one row per level) as a
    run, the way a trained run is stored: created, locked while written, its rows logged, its
    events detected (default settings), its summary written, and marked ``failed`` if the
    writing is cut short."""
    run_id = store.create_run(name, config).id
    lock = store.lock(run_id)
    try:
        for step, values in rows:
            store.log(run_id, step, values)
        store.flush()
        found = events_mod.detect(store.metric_table(run_id))
        for e in found:
            store.add_event(run_id, e.step, e.kind, e.data)
        store.finish_run(run_id, "finished", summary)
    except BaseException:
        _mark_failed(store, run_id, 0)
        raise
    finally:
        lock.release()
    return RunResult(run_id, store.root / run_id, "finished", summary, found)


def annotate(store: Store, run_id: str, step: int, values: dict[str, float]) -> None:
    """Add values measured on an ended run's checkpoint (e.g. its generalisation measures,
    :mod:`learnscope.studies.gen_measures`) to its metrics at ``step``, under the run's lock
    (refused while another process trains it)."""
    lock = store.lock(run_id)
    try:
        store.log(run_id, step, values)
        store.flush()
    finally:
        lock.release()


def evaluate(cfg: RunConfig | dict[str, Any], model: torch.nn.Module) -> dict[str, float]:
    """The split metrics of ``model`` on ``cfg``'s task, measured as a run of ``cfg`` measures
    them at an eval step, on the CPU (``cfg`` builds the task and the objective; ``model``
    replaces the model it would build, e.g. a pruned one). Nothing is trained or stored."""
    trainer = build(_on_cpu(cfg.to_dict() if isinstance(cfg, RunConfig) else cfg))
    trainer.model = model.to("cpu")
    return trainer.evaluate()


# -- probes on a saved checkpoint (``learnscope probe``) -------------------------------------


def checkpoint_at(run_dir: Path, step: int | None = None) -> tuple[int, dict[str, Any]]:
    """A run's checkpoint at ``step`` (default: the latest readable one): ``(step, state)``."""
    if not Path(run_dir).is_dir():
        raise UserError(missing_dir(Path(run_dir).name, Path(run_dir)))
    directory = Path(run_dir) / "checkpoints"
    if step is None:
        found = checkpoint.latest(directory)
        if found is None:
            raise UserError(f"checkpoint: no readable checkpoint in {directory}")
        return found
    if step not in checkpoint.steps(directory):
        raise UserError(
            f"--step: no checkpoint at step {step}; steps: {checkpoint.steps(directory)}"
        )
    return step, checkpoint.load(checkpoint.path_for(directory, step))


def restore(config: dict[str, Any], run_dir: Path, step: int | None = None) -> tuple[Trainer, int]:
    """A run's trainer rebuilt from its stored ``config`` on the CPU, with the model of its
    checkpoint at ``step`` (default: the latest readable one), and that step."""
    step, state = checkpoint_at(run_dir, step)
    trainer = build(_on_cpu(config))
    trainer.model.load_state_dict(state["model"])
    return trainer, step


def _on_cpu(config: dict[str, Any]) -> RunConfig:
    train = {**config.get("train", {}), "device": "cpu"}
    return validate_config({**config, "train": train}, stored=True)


def probe_checkpoint(
    config: dict[str, Any],
    run_dir: Path,
    step: int | None = None,
    probe: str | None = None,
    sites: list[str] | None = None,
) -> tuple[int, dict[str, float]]:
    """Probe values of a run's checkpoint at ``step`` (default: the latest).

    The model is rebuilt from the run's stored ``config`` (seeded as in training, so
    ``incremental_rank`` sees the same initial weights) and loaded from the checkpoint.
    Without ``probe``: the run's probes (its defaults if it recorded none). With ``probe``:
    that probe on ``sites``, or, without sites, on the sites the run's probes used it on.
    """
    if probe is not None and probe not in PROBES:
        raise UserError(f"--probe: unknown probe {probe!r}; allowed: {', '.join(PROBES)}")
    cfg = _on_cpu(config)
    step, state = checkpoint_at(run_dir, step)
    trainer = build(cfg)  # the plan keeps its initial weights: before loading
    if probe is not None and (sites or PROBES[probe].targets == "none"):
        plan = probe_plan(cfg, trainer, [ProbeSpec(probe=probe, sites=list(sites or []))])
    else:
        plan = probe_plan(cfg, trainer)
        if not plan.items:
            plan = probe_plan(cfg, trainer, None)
        if probe is not None:
            plan.items = [item for item in plan.items if item.probe == probe]
            if not plan.items:
                raise UserError(
                    f"--probe: this run records no {probe}; give --site patterns; "
                    f"sites: {hook_names(trainer.model)}"
                )
    trainer.model.load_state_dict(state["model"])
    obj = trainer.objective
    return step, plan.compute(trainer.model, obj.forward, obj.loss)
