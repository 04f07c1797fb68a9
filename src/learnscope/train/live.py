"""Watching a run while it trains: divergence, events the moment they fire, TensorBoard.

- :class:`DivergenceGuard` stops the run at the first non-finite loss (status ``diverged``);
- :class:`LiveProgress` is the rich progress bar plus the latest probe values and a line for
  each event as soon as the detectors of :mod:`learnscope.events` see it ("grokked at step
  4 200");
- :class:`TensorBoardSink` writes the same scalars for TensorBoard (``learnscope[tensorboard]``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.text import Text

from learnscope import events as events_mod
from learnscope.errors import UserError
from learnscope.models.hooks import capture, eval_mode, hook_names
from learnscope.train.callbacks import ProgressBar, format_metrics
from learnscope.train.loop import Callback, Trainer


@torch.no_grad()
def site_sizes(trainer: Trainer, rows: int = 4) -> dict[str, int]:
    """Size of the last dimension at every activation site (one forward pass on ``rows``
    training examples) and the smaller side of every weight matrix, by name.

    For an attention pattern ``(b, head, query, key)`` that is the context length; for a hidden
    layer ``(b, width)`` or ``(b, T, d)`` its width. The rank and entropy collapse detectors
    compare against these.
    """
    model, sizes = trainer.model, {}
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            sizes[name] = min(p.shape)
    names = hook_names(model)
    if not names:
        return sizes
    train = trainer.splits["train"]
    batch = train.rows(torch.arange(min(rows, len(train)), device=trainer.device))
    with eval_mode(model), capture(model, names) as acts:
        trainer.objective.forward(model, batch)
    sizes.update({k: int(v.shape[-1]) for k, v in acts.items() if v.dim() >= 1})
    return sizes


class DivergenceGuard(Callback):
    """Stops the run at once at a non-finite training loss (or eval loss): ``trainer.status``
    becomes ``diverged`` and :attr:`event` records the step and the metric. The loop then
    evaluates once more and ends; the store logger flushes everything logged so far."""

    def __init__(self) -> None:
        self.event: events_mod.Event | None = None

    def _trip(self, trainer: Trainer, step: int, metric: str, value: float) -> None:
        if self.event is None:
            data = {"step": step, "metric": metric, "value": str(value)}
            self.event = events_mod.Event("divergence", step, data)
        trainer.status, trainer.should_stop = "diverged", True

    def on_step_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss).all()):
            self._trip(trainer, step, "train_step/loss", float(loss.float().mean()))

    def on_eval(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            if name.endswith("/loss") and not math.isfinite(value):
                self._trip(trainer, step, name, value)
                return


def tee_probes(trainer: Trainer, also: Callable[[int, dict[str, float]], None]) -> None:
    """Send the probe runner's values to ``also(step, values)`` too, at the steps it records
    them (it logs at its own steps, not through ``on_eval``); the values it recorded before
    this call (step 0) are sent at once."""
    from learnscope.probes.runner import ProbeRunner

    for runner in (cb for cb in trainer.callbacks if isinstance(cb, ProbeRunner)):
        inner = runner.log

        def tee(step: int, values: dict[str, float], inner=inner) -> None:
            if inner is not None:
                inner(step, values)
            also(step, values)

        runner.log = tee
        if runner.recorded:
            also(runner.recorded[-1], dict(runner.latest))


# -- the live view --------------------------------------------------------------------------

_SHORT = {
    "effective_rank": "erank",
    "attention_entropy": "attnH",
    "matrix_entropy": "H",
    "partial_jacobian_norm": "J",
    "hessian_top_eigenvalue": "hess",
    "incremental_rank": "incr",
    "ncc_accuracy": "ncc",
    "angular_distance": "angle",
}
_NOT_PROBES = {"lr", "weight_norm", "reg", "train_step"}


def format_probes(metrics: dict[str, float], splits=(), limit: int = 3) -> str:
    """The first ``limit`` probe values, short: ``erank(l0.post) 12.3``.

    >>> format_probes({"train/acc": 1.0, "effective_rank/layers.0.hook_post": 12.34, "lr": 1.0})
    'erank(l0.post) 12.3'
    """
    parts = []
    for name in sorted(metrics):
        probe, _, site = name.partition("/")
        if not site or probe in _NOT_PROBES or probe in splits:
            continue
        if site in ("acc", "loss", "token_acc"):  # a split's metric
            continue
        for long, short in (("hook_", ""), ("blocks.", "b"), ("layers.", "l"), (".weight", ".w")):
            site = site.replace(long, short)
        parts.append(f"{_SHORT.get(probe, probe)}({site}) {metrics[name]:.3g}")
        if len(parts) == limit:
            break
    return " ".join(parts)


class EventWatcher(Callback):
    """Runs the event detectors on the metrics seen so far, and calls ``emit(event)`` once for
    each new event: at most every ``every_s`` seconds and at most once per 20x the time a
    detection takes (so it costs ~5% of a run at most), and at the end. Each detection sees
    the series so far: a collapse that later recovers may be printed live and not stored."""

    def __init__(self, cfg: Any = None, emit=print, every_s: float = 0.5) -> None:
        self.cfg, self.emit, self.every_s = cfg, emit, every_s
        self.rows: dict[int, dict[str, float]] = {}
        self.seen: set[tuple] = set()
        self.sizes: dict[str, int] = {}
        self._last, self._cost = 0.0, 0.0

    def on_train_start(self, trainer: Trainer) -> None:
        self.sizes = site_sizes(trainer)

    def on_eval(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        self.rows.setdefault(step, {}).update(metrics)
        wait = max(self.every_s, 20 * self._cost) if self.every_s > 0 else 0.0  # 0: every eval
        if time.perf_counter() - self._last >= wait:
            self.check()

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        self.check()

    def check(self) -> list[events_mod.Event]:
        t0 = self._last = time.perf_counter()
        table = pd.DataFrame.from_dict(self.rows, orient="index").sort_index()
        new = [
            e for e in events_mod.detect(table, self.cfg, self.sizes) if e.key() not in self.seen
        ]
        for e in new:
            self.seen.add(e.key())
            self.emit(e)
        self._cost = time.perf_counter() - t0
        return new


class MetricsColumn(ProgressColumn):
    """The task's ``metrics`` field on one line, cut with an ellipsis where it does not fit."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=False))  # the column that may shrink

    def render(self, task) -> Text:
        return Text(task.fields.get("metrics", ""), no_wrap=True, overflow="ellipsis")


class LiveProgress(ProgressBar):
    """The progress bar with the latest probe values, and each event printed when it fires."""

    def __init__(
        self, console: Console | None = None, description: str = "train", cfg: Any = None
    ) -> None:
        super().__init__(console, description)
        # only the metrics column gives way (cut with an ellipsis) when the line is too long:
        # a long line of probe values never squeezes the name, the bar or the step count
        fixed = Column(no_wrap=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}", table_column=fixed),
            BarColumn(bar_width=30, table_column=fixed),
            MofNCompleteColumn(table_column=fixed),
            TimeElapsedColumn(table_column=fixed),
            MetricsColumn(),
            console=console,
            transient=False,
        )
        self.watcher = EventWatcher(cfg, self._print_event)
        self.splits: tuple[str, ...] = ()
        self.probes: dict[str, float] = {}  # the latest value of every probe series

    def _print_event(self, event: events_mod.Event) -> None:
        self.progress.console.print(f"[bold magenta]event[/] {events_mod.describe(event)}")

    def _probe_values(self, step: int, values: dict[str, float]) -> None:
        self.probes.update(values)
        self.watcher.rows.setdefault(step, {}).update(values)

    def on_train_start(self, trainer: Trainer) -> None:
        super().on_train_start(trainer)
        self.splits = tuple(trainer.splits)
        self.watcher.on_train_start(trainer)
        tee_probes(trainer, self._probe_values)

    def on_eval(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        shown = {**metrics, **self.probes}
        text = " | ".join(
            s for s in (format_metrics(metrics), format_probes(shown, self.splits)) if s
        )
        self.progress.update(self.task_id, completed=step, metrics=text)
        self.watcher.on_eval(trainer, step, metrics)

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        self.watcher.on_train_end(trainer, status)
        super().on_train_end(trainer, status)


# -- TensorBoard ----------------------------------------------------------------------------


class TensorBoardSink(Callback):
    """Writes every eval's scalars (the names of the store) to TensorBoard event files under
    ``log_dir/<run id>`` (``tensorboard --logdir log_dir`` compares runs), and the probe
    runner's values at the steps it records them."""

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise UserError(
                "--tensorboard: needs the tensorboard package; "
                "pip install 'learnscope[tensorboard]'"
            ) from None
        self.log_dir = Path(log_dir)
        self.writer = None

    def on_train_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        run = getattr(trainer, "run_id", None) or time.strftime("%Y%m%d-%H%M%S")
        self.writer = SummaryWriter(log_dir=str(self.log_dir / run))
        tee_probes(trainer, self.write)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def on_eval(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        self.write(step, metrics)

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
