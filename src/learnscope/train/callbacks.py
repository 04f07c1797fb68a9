"""The callbacks every run gets from the pipeline (``learnscope.runner``): the divergence guard,
the probe recorder, the store logger, checkpoints; and the TensorBoard sink a caller may add.

They print nothing (the live view and progress bars are in ``learnscope.cli``). Each works on
a :class:`~learnscope.train.loop.Trainer` and on a member of a stacked ensemble alike.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pandas as pd
import torch

from learnscope import checkpoint, events
from learnscope.errors import UserError
from learnscope.events import Event
from learnscope.models.hooks import site_sizes
from learnscope.probes.ntk import linearised_grad, model_function
from learnscope.probes.plan import ProbePlan
from learnscope.store import Store
from learnscope.train.loop import Callback, Trainer
from learnscope.train.rft import RFTObjective


def layer_sizes(trainer: Trainer) -> dict[str, int]:
    """The widths of a trainer's (or member's) activation sites and weights
    (:func:`~learnscope.models.hooks.site_sizes` on a few training rows), which the collapse
    detectors of :mod:`learnscope.events` compare against."""
    train = trainer.splits["train"]
    batch = train.rows(torch.arange(min(4, len(train)), device=trainer.device))
    return site_sizes(trainer.model, trainer.objective.forward, batch)


class DivergenceGuard(Callback):
    """Stops the run at once at a non-finite training loss (or eval loss): ``trainer.status``
    becomes ``diverged`` and :attr:`event` records the step and the metric. The loop then
    evaluates once more and ends; the store logger keeps everything logged so far."""

    def __init__(self) -> None:
        self.event: Event | None = None

    def _trip(self, trainer: Trainer, step: int, metric: str, value: float) -> None:
        if self.event is None:
            data = {"step": step, "metric": metric, "value": str(value)}
            self.event = Event("divergence", step, data)
        trainer.status, trainer.should_stop = "diverged", True

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        if not math.isfinite(loss):
            self._trip(trainer, step, "train_step/loss", loss)

    def on_metrics(self, trainer: Trainer, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            if name.endswith("/loss") and not math.isfinite(value):
                self._trip(trainer, step, name, value)
                return


class ProbeRecorder(Callback):
    """Computes the plan's probes at step 0, every ``every`` steps and at the last step, and
    publishes their values (``trainer.publish``) like the eval metrics.

    A resumed run records again the probes due at the step it resumes from (the store drops
    that step's rows when resuming), and a run stopped early by a callback gets a last record
    at the step it stopped.
    """

    def __init__(self, plan: ProbePlan) -> None:
        self.plan = plan
        self.recorded: list[int] = []

    def record(self, trainer: Trainer, step: int, items) -> None:
        obj = trainer.objective
        values = self.plan.compute(trainer.model, obj.forward, obj.loss, items)
        self.recorded.append(step)
        trainer.publish(step, values)

    def _due(self, trainer: Trainer, step: int):
        last = step >= trainer.cfg.steps
        return [item for item in self.plan.items if last or step % item.every == 0]

    def on_train_start(self, trainer: Trainer) -> None:
        due = self.plan.items if trainer.step == 0 else self._due(trainer, trainer.step)
        if due:
            self.record(trainer, trainer.step, due)

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        due = self._due(trainer, step)
        if due:
            self.record(trainer, step, due)

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        if status == "stopped" and self.plan.items and trainer.step not in self.recorded:
            self.record(trainer, trainer.step, self.plan.items)


class LinearisedTwin(Callback):
    """Trains the run's linearised network beside it, for the ``ntk_distance`` probe.

    ``f_lin(x; theta) = f(x; theta_0) + J(theta_0) (theta - theta_0)`` (Lee et al. 2019),
    ``theta_0`` the plan's snapshot of the initial weights, starts at ``theta_0`` and takes one
    step of the run's own optimiser, per-layer learning rates and schedule on each training
    batch the trainer used (``trainer.last_batch``), its gradient ``J(theta_0)^T dL/df_lin``
    (:func:`~learnscope.probes.ntk.linearised_grad`). Its weights are the plan's ``twin``,
    which the probe reads: the probe stays a pure function of what it is given, the state
    lives here. A resumed run's twin starts again from ``theta_0`` at the resumed step (it is
    not checkpointed), so its ``gap`` is only meaningful for runs trained in one go.
    """

    def __init__(self, plan: ProbePlan) -> None:
        self.plan = plan

    def on_train_start(self, trainer: Trainer) -> None:
        from learnscope.train.optim import make_optimizer, make_scheduler

        self.theta_0 = {k: v for k, v in self.plan.initial.items()}
        self.twin = copy.deepcopy(trainer.model)
        with torch.no_grad():
            for name, p in self.twin.named_parameters():
                if name in self.theta_0:
                    p.copy_(self.theta_0[name])
        self.optimizer = make_optimizer(self.twin, trainer.cfg)
        self.scheduler = make_scheduler(self.optimizer, trainer.cfg)
        self.plan.twin = dict(self.twin.named_parameters())

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        batch = trainer.last_batch
        obj = trainer.objective

        f = model_function(trainer.model, obj.forward, batch)
        theta = {k: p.detach() for k, p in self.twin.named_parameters() if k in self.theta_0}
        grads = linearised_grad(f, self.theta_0, theta, lambda out: obj.loss(out, batch))
        for name, p in self.twin.named_parameters():
            p.grad = grads.get(name)
        if trainer.cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.twin.parameters(), trainer.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()


class StopWhen(Callback):
    """Ends the run once one of the ``names`` (``learnscope.events.STOP_CONDITIONS``: e.g.
    ``grokked``) has fired and held for ``patience`` more evaluations (``train.stop_when``,
    ``train.stop_patience``): the question the run asks is answered. :attr:`reason` says
    which, and when.

    Each evaluation runs only the detectors named, on the series seen so far.
    """

    def __init__(self, names: list[str], patience: int, cfg=None) -> None:
        self.names, self.patience, self.cfg = list(names), patience, cfg
        self.rows: dict[int, dict[str, float]] = {}
        self.sizes: dict[str, int] = {}
        self.held = 0  # evaluations since the condition first held, while it holds
        self.reason: str | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        if {"attention_collapse", "rank_collapse"} & set(self.names):  # they need widths
            self.sizes = layer_sizes(trainer)

    def on_metrics(self, trainer: Trainer, step: int, values: dict[str, float]) -> None:
        self.rows.setdefault(step, {}).update(values)
        if "lr" not in values:  # probe values: wait for the evaluation
            return
        if set(self.names) <= {"grokked", "fitted"}:  # the same events, without a table
            table = None
        else:
            table = pd.DataFrame.from_dict(self.rows, orient="index").sort_index()
        for name in self.names:
            if table is None:
                event = events.stop_condition_rows(self.rows, name, self.cfg)
            else:
                event = events.stop_condition(table, name, self.cfg, self.sizes)
            if event is not None:
                if self.held >= self.patience:
                    self.reason = f"{name} at step {event.step}"
                    trainer.should_stop = True
                self.held += 1
                return
        self.held = 0


class StoreLogger(Callback):
    """Writes every published value to the store, one transaction per publication (so the
    rows of a step are in the store before a checkpoint of that step is written)."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store, self.run_id = store, run_id

    def on_metrics(self, trainer: Trainer, step: int, values: dict[str, float]) -> None:
        self.store.log(self.run_id, step, values)
        if not self.store.batching:  # in Store.batch(): flushed at its end
            self.store.flush()

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        self.store.flush()


class Checkpointer(Callback):
    """Saves the trainer's state every ``every`` steps (0: never in between) and at the end,
    to ``directory/step_<8-digit step>.pt`` (:mod:`learnscope.checkpoint`), keeping the newest
    ``keep`` (None: all). At the start it removes the temporary files of a save a kill cut
    short."""

    def __init__(self, directory: Path, every: int = 0, keep: int | None = None) -> None:
        self.directory, self.every, self.keep = Path(directory), every, keep
        self.saved: list[int] = []

    def on_train_start(self, trainer: Trainer) -> None:
        checkpoint.remove_temporary(self.directory)

    def _save(self, trainer: Trainer) -> None:
        if trainer.step not in self.saved:
            checkpoint.save(self.directory, trainer.step, trainer.state_dict())
            self.saved.append(trainer.step)
            if self.keep is not None:
                checkpoint.prune(self.directory, self.keep)

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        if self.every and step % self.every == 0:
            self._save(trainer)

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        self._save(trainer)


class TensorBoardSink(Callback):
    """Writes every published value (the names of the store) to TensorBoard event files under
    ``log_dir/<run_id>`` (``tensorboard --logdir log_dir`` compares runs)."""

    def __init__(self, log_dir: str | Path, run_id: str) -> None:
        self.require()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(log_dir) / run_id))

    @staticmethod
    def require() -> None:
        """A :class:`UserError` when the tensorboard package is missing (check it before the
        run is created)."""
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise UserError(
                "--tensorboard: needs the tensorboard package; "
                "pip install 'learnscope[tensorboard]'"
            ) from None

    def on_metrics(self, trainer: Trainer, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        self.writer.flush()
        self.writer.close()


class RFTStats(Callback):
    """Per-input RFT statistics on the first ``probe_inputs`` training rows, at step 0, every
    ``eval_every`` steps and at the last step: ``rft/in{i}/reward_mean``,
    ``rft/in{i}/reward_std``, ``rft/in{i}/grad_norm`` for each input ``i``, their means over the
    inputs (``rft/reward_mean``, ``rft/reward_std``, ``rft/grad_norm``), the fraction of inputs
    whose reward std is below 0.1 (``rft/frac_small_std``) and the latest training batch's
    ``rft/train_reward`` (and ``rft/kl``). Sampling uses its own generator (seeded by the
    step), so recording never changes the training run's random stream."""

    def __init__(self, objective: RFTObjective, rows: dict[str, torch.Tensor], seed: int) -> None:
        self.objective, self.rows, self.seed = objective, rows, seed

    def record(self, trainer, step: int) -> None:
        device = self.rows["tokens"].device
        generator = torch.Generator(device=device).manual_seed(self.seed * 1_000_003 + step)
        k = self.objective.rft.probe_samples
        stats = self.objective.input_stats(trainer.model, self.rows, k, generator)
        trainer.model.zero_grad(set_to_none=True)
        values = {f"rft/{key}": v.mean().item() for key, v in stats.items()}
        values["rft/frac_small_std"] = (stats["reward_std"] < 0.1).float().mean().item()
        for key, v in stats.items():
            values.update({f"rft/in{i}/{key}": x for i, x in enumerate(v.tolist())})
        values.update(self.objective.last)
        trainer.publish(step, values)

    def on_train_start(self, trainer) -> None:
        if trainer.step == 0 or trainer.step % trainer.cfg.eval_every == 0:
            self.record(trainer, trainer.step)

    def on_step_end(self, trainer, step: int, loss: float) -> None:
        if step % trainer.cfg.eval_every == 0 or step >= trainer.cfg.steps:
            self.record(trainer, step)


def rft_stats(trainer, seed: int) -> RFTStats | None:
    """The :class:`RFTStats` callback of an RFT trainer (None when it logs no inputs)."""
    n = trainer.cfg.rft.probe_inputs
    if not isinstance(trainer.objective, RFTObjective) or n == 0:
        return None
    train = trainer.splits["train"]
    rows = train.rows(torch.arange(min(n, len(train)), device=trainer.device))
    return RFTStats(trainer.objective, rows, seed)
