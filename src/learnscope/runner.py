"""From a validated config to a finished run in the store:
``config -> task + model -> trainer (+ callbacks) -> store -> events``.

Everything that can fail on user input (the task's parameters, the model's fields, the
device) is built *before* the store is touched, so a bad config leaves no run behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from learnscope import events as events_mod
from learnscope.config import RunConfig, check_expectation, validate_config
from learnscope.errors import UserError
from learnscope.models import build_model
from learnscope.probes.runner import ProbeRunner, plan_probes
from learnscope.store import Store
from learnscope.tasks import make_task
from learnscope.train import checkpoint
from learnscope.train.callbacks import Checkpointer, StoreLogger
from learnscope.train.live import DivergenceGuard, site_sizes
from learnscope.train.loop import Callback, Trainer


@dataclass
class RunResult:
    run_id: str
    dir: Path
    status: str
    summary: dict[str, Any]
    events: list[events_mod.Event] = field(default_factory=list)


def build(cfg: RunConfig) -> Trainer:
    """Task, model and trainer for ``cfg``, seeded; no store involved."""
    task = make_task(cfg.task.name, **cfg.task.params)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model.kind, cfg.model.params, task.model_dims())
    try:
        return Trainer(model, task, cfg.train, seed=cfg.seed)
    except (RuntimeError, AssertionError) as err:  # e.g. a CUDA device on a CPU machine
        if "cuda" in str(err).lower() or "device" in str(err).lower():
            raise UserError(f"train.device: {cfg.train.device!r} is not available: {err}") from None
        raise


def summarize(trainer: Trainer, found: list[events_mod.Event]) -> dict[str, Any]:
    """Flat summary of a trained run (see :func:`summary_of`)."""
    return summary_of(trainer.metrics, set(trainer.splits), trainer.step, trainer.wall_s, found)


def summary_of(
    metrics: dict[str, float],
    splits: set[str],
    steps: int,
    wall_s: float,
    found: list[events_mod.Event],
) -> dict[str, Any]:
    """Flat summary: final split metrics (``test_acc``...), steps, wall time, grokking steps
    and, for a diverged run, where it diverged."""
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
    return summary


def check_expectations(expect: dict[str, str], summary: dict[str, Any]) -> dict[str, bool]:
    """Each expectation of a recipe, checked against a run summary."""
    return {key: check_expectation(summary.get(key), cond) for key, cond in expect.items()}


def execute(
    cfg: RunConfig | dict[str, Any],
    store: Store,
    callbacks: Sequence[Callback] = (),
    sweep_id: str | None = None,
    resume: str | None = None,
) -> RunResult:
    """Train ``cfg`` (or resume run ``resume``) and record it in ``store``."""
    cfg = cfg if isinstance(cfg, RunConfig) else validate_config(cfg)
    trainer = build(cfg)
    probe_plan = plan_probes(cfg, trainer)  # sites checked, initial weights kept: before loading
    if resume is None:
        run = store.create_run(cfg.name, cfg.to_dict(), sweep_id)
        run_id, run_dir = run.id, run.dir
    else:
        run_id, run_dir = resume, store.root / resume
        found = checkpoint.latest(run_dir / "checkpoints")
        if found is None:
            raise UserError(f"resume: run {resume} has no readable checkpoint to resume from")
        step, state = found
        trainer.load_state_dict(state)
        store.truncate_metrics(run_id, step)
        store.set_status(run_id, "running")
    trainer.run_id = run_id  # for callbacks that name their output after the run
    guard = DivergenceGuard()  # a non-finite loss stops the run at once: status "diverged"
    trainer.add_callback(guard)
    if probe_plan.items:
        trainer.add_callback(ProbeRunner(probe_plan, lambda step, v: store.log(run_id, step, v)))
    trainer.add_callback(StoreLogger(store, run_id))
    trainer.add_callback(Checkpointer(run_dir / "checkpoints", cfg.train.checkpoint_every))
    for cb in callbacks:
        trainer.add_callback(cb)
    try:
        trainer.fit()
    except BaseException:
        store.finish_run(run_id, "failed", {"steps": trainer.step})
        raise
    table = store.metric_table(run_id)
    found_events = events_mod.detect(table, cfg.events, site_sizes(trainer))
    if guard.event:  # the guard saw the exact step and metric; the table only the next eval
        found_events = [e for e in found_events if e.kind != "divergence"] + [guard.event]
    for e in found_events:
        store.add_event(run_id, e.step, e.kind, e.data)
    summary = summarize(trainer, found_events)
    if cfg.expect:
        summary["expect_met"] = check_expectations(cfg.expect, summary)
    store.finish_run(run_id, trainer.status, summary)
    return RunResult(run_id, run_dir, trainer.status, summary, found_events)


def resume_config(store: Store, run_id: str) -> RunConfig:
    return validate_config(store.run(run_id)["config"])
