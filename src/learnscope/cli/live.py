"""Watching a run while it trains: the progress bar with the latest metrics and probe values,
and a line for each event as soon as the detectors of :mod:`learnscope.events` see it
("grokked at step 4 200").

:class:`LiveProgress` is a trainer callback built by ``learnscope run`` once the run exists:
it reads the run's history from the store first, so a resumed run's event lines and grokking
steps count from the run's start, not from the resumed segment.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.text import Text

from learnscope import events as events_mod
from learnscope.probes.names import is_probe_metric
from learnscope.train.callbacks import layer_sizes
from learnscope.train.loop import Callback, Trainer


def format_metrics(
    metrics: dict[str, float], keys=("train/loss", "train/acc", "test/loss", "test/acc")
) -> str:
    """``train loss 0.012 acc 1 | test ...`` for the splits present.

    >>> format_metrics({"train/loss": 0.0123, "train/acc": 1.0, "lr": 0.1})
    'train loss 0.0123 acc 1'
    """
    parts = []
    for split in dict.fromkeys(k.split("/")[0] for k in keys):
        vals = [
            f"{k.split('/')[1]} {metrics[k]:.3g}"
            for k in keys
            if k.startswith(split + "/") and k in metrics
        ]
        if vals:
            parts.append(f"{split} " + " ".join(vals))
    return " | ".join(parts)


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


def format_probes(metrics: dict[str, float], limit: int = 3) -> str:
    """The first ``limit`` probe values, short: ``erank(l0.post) 12.3``.

    >>> format_probes({"train/acc": 1.0, "effective_rank/layers.0.hook_post": 12.34, "lr": 1.0})
    'erank(l0.post) 12.3'
    """
    parts = []
    for name in sorted(metrics):
        if not is_probe_metric(name):
            continue
        probe, _, site = name.partition("/")
        for long, short in (("hook_", ""), ("blocks.", "b"), ("layers.", "l"), (".weight", ".w")):
            site = site.replace(long, short)
        parts.append(f"{_SHORT.get(probe, probe)}({site}) {metrics[name]:.3g}")
        if len(parts) == limit:
            break
    return " ".join(parts)


class EventWatcher:
    """Runs the event detectors on the metrics seen so far, and calls ``emit(event)`` once for
    each new event: at most every ``every_s`` seconds and at most once per 20x the time a
    detection takes (so it costs ~5% of a run at most), and at the end. Each detection sees
    the series so far: a collapse that later recovers may be printed live and not stored.

    ``history`` (a wide metric table, as ``Store.metric_table``) is what the run logged
    before this segment (a resumed run): detections count from the run's start, and the events
    it already shows are not printed again.
    """

    def __init__(
        self,
        cfg: Any = None,
        emit=None,
        every_s: float = 0.5,
        history: pd.DataFrame | None = None,
    ) -> None:
        self.cfg, self.emit, self.every_s = cfg, emit, every_s
        self.rows: dict[int, dict[str, float]] = {}
        if history is not None and len(history):
            self.rows = {
                int(step): {k: v for k, v in row.items() if v == v}
                for step, row in history.to_dict(orient="index").items()
            }
        self.seen: set[tuple] = set()
        self.sizes: dict[str, int] = {}
        self._last, self._cost = 0.0, 0.0

    def start(self, trainer: Trainer) -> None:
        self.sizes = layer_sizes(trainer)
        if self.rows:  # the events of the history were shown when they fired
            table = pd.DataFrame.from_dict(self.rows, orient="index").sort_index()
            self.seen |= {e.key() for e in events_mod.detect(table, self.cfg, self.sizes)}

    def add(self, step: int, values: dict[str, float]) -> None:
        self.rows.setdefault(step, {}).update(values)
        self.maybe_check()

    def maybe_check(self) -> None:
        """:meth:`check`, unless the last one was too recent."""
        wait = max(self.every_s, 20 * self._cost) if self.every_s > 0 else 0.0  # 0: every time
        if time.perf_counter() - self._last >= wait:
            self.check()

    def check(self) -> list[events_mod.Event]:
        t0 = self._last = time.perf_counter()
        table = pd.DataFrame.from_dict(self.rows, orient="index").sort_index()
        found = events_mod.detect(table, self.cfg, self.sizes)
        new = [e for e in found if e.key() not in self.seen]
        for e in new:
            self.seen.add(e.key())
            if self.emit is not None:
                self.emit(e)
        self._cost = time.perf_counter() - t0
        return new


def run_header(device: Any) -> Text:
    """The line above the progress bar: torch's thread count, the cores and their load (a busy
    machine trains many times slower), the device.

    >>> "torch threads" in run_header("cpu").plain
    True
    """
    cores = os.cpu_count() or 1
    line = f"torch threads {torch.get_num_threads()}, {cores} cores"
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        load = None
    if load is not None:
        line += f", load {load:.1f}"
    text = Text(line + f", device {device}", style="dim")
    if load is not None and load > 1.5 * cores:
        text.append(
            f"  (the machine is busy: {load:.1f} runnable processes for {cores} cores; "
            "training will be slower than usual)",
            style="yellow",
        )
    return text


class SlowdownWatch:
    """Says once when training runs far slower than it started: steps/s over the last
    ``window_s`` seconds below ``ratio`` times the rate of the first ``window_s`` seconds (the
    first step, which pays for warm-up, left out) -- another job on the machine, most often.

    ``clock`` returns seconds (``time.perf_counter``; a fake one in tests).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        window_s: float = 2.0,
        ratio: float = 1 / 3,
    ) -> None:
        self.clock, self.window_s, self.ratio = clock, window_s, ratio
        self.start: tuple[float, int] | None = None
        self.mark: tuple[float, int] | None = None
        self.baseline: float | None = None
        self.warned = False

    def observe(self, step: int) -> str | None:
        """Call after each step; returns the warning once, when it applies, else None."""
        now = self.clock()
        if self.start is None:
            self.start = (now, step)
            return None
        t0, s0 = self.mark or self.start
        if now - t0 < self.window_s:
            return None
        rate = (step - s0) / (now - t0)
        self.mark = (now, step)
        if self.baseline is None:
            self.baseline = rate
            return None
        if self.warned or rate >= self.ratio * self.baseline:
            return None
        self.warned = True
        return (
            f"slow: {rate:.3g} steps/s now against {self.baseline:.3g} at the start "
            f"({rate / self.baseline:.0%}); is something else running on this machine? "
            f"(torch uses {torch.get_num_threads()} threads on {os.cpu_count()} cores: with "
            "other jobs running, --threads 1 is often several times faster)"
        )


class _Progress(Progress):
    """A progress bar with the task's ``metrics`` on the line below it, wrapped rather than
    cut: at 80 columns the values are all there."""

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        for task in self.tasks:
            metrics = task.fields.get("metrics", "")
            if metrics:
                yield Text("  " + metrics, overflow="fold")


class LiveProgress(Callback):
    """A rich progress bar (step, elapsed time, the latest losses, accuracies and probe
    values), and each event printed when it fires."""

    def __init__(
        self,
        console: Console | None = None,
        description: str = "train",
        cfg: Any = None,
        history: pd.DataFrame | None = None,
    ) -> None:
        # the name (literal text, folded if long), the bar, the step count and the time on one
        # line; the metrics on the next (never cut)
        fixed = Column(no_wrap=True)
        self.progress = _Progress(
            TextColumn(
                "{task.description}",
                style="bold",
                markup=False,
                table_column=Column(overflow="fold"),
            ),
            BarColumn(bar_width=30, table_column=fixed),
            MofNCompleteColumn(table_column=fixed),
            TimeElapsedColumn(table_column=fixed),
            console=console,
            transient=False,
        )
        self.description = description
        self.speed = SlowdownWatch()
        self.task_id = None
        self.watcher = EventWatcher(cfg, self._print_event, history=history)
        self.latest: dict[str, float] = {}  # the latest value of every series

    def _print_event(self, event: events_mod.Event) -> None:
        text = Text("event ", style="bold magenta") + Text(events_mod.describe(event))
        self.progress.console.print(text)

    def on_train_start(self, trainer: Trainer) -> None:
        self.progress.console.print(run_header(trainer.device), soft_wrap=True)
        self.progress.start()
        self.task_id = self.progress.add_task(
            self.description, total=trainer.cfg.steps, completed=trainer.step, metrics=""
        )
        self.watcher.start(trainer)

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        self.progress.update(self.task_id, completed=step)
        warning = self.speed.observe(step)
        if warning is not None:
            self.progress.console.print(Text(warning, style="yellow"), soft_wrap=True)

    def on_metrics(self, trainer: Trainer, step: int, values: dict[str, float]) -> None:
        self.latest.update(values)
        self.watcher.rows.setdefault(step, {}).update(values)
        if self.task_id is None:  # published by a callback that started before this one
            return
        shown = (format_metrics(self.latest), format_probes(self.latest))
        self.progress.update(
            self.task_id, completed=step, metrics=" | ".join(s for s in shown if s)
        )
        self.watcher.maybe_check()

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        self.watcher.check()
        if status == "stopped" and self.task_id is not None:  # the question was answered
            self.progress.update(
                self.task_id,
                total=trainer.step,
                completed=trainer.step,
                description=f"{self.description} (stopped at step {trainer.step} of "
                f"{trainer.cfg.steps})",
            )
        self.progress.stop()
