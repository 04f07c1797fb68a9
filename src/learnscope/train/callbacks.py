"""The standard callbacks: store logging, checkpoints and the progress bar."""

from __future__ import annotations

from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from learnscope.store import Store
from learnscope.train import checkpoint
from learnscope.train.loop import Callback, Trainer


class StoreLogger(Callback):
    """Writes every eval's metrics to the store, one transaction per eval."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store, self.run_id = store, run_id

    def on_eval(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        self.store.log(self.run_id, step, metrics)
        self.store.flush()

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        self.store.flush()


class Checkpointer(Callback):
    """Saves the trainer's state every ``every`` steps (0: never in between) and at the end."""

    def __init__(self, directory: Path, every: int = 0) -> None:
        self.directory, self.every = Path(directory), every
        self.saved: list[int] = []

    def _save(self, trainer: Trainer) -> None:
        if trainer.step not in self.saved:
            checkpoint.save(self.directory, trainer.step, trainer.state_dict())
            self.saved.append(trainer.step)

    def on_step_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        if self.every and step % self.every == 0:
            self._save(trainer)

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        self._save(trainer)


def format_metrics(
    metrics: dict[str, float], keys=("train/loss", "train/acc", "test/loss", "test/acc")
) -> str:
    """``train loss 0.012 acc 1.000 | test ...`` for the splits present."""
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


class ProgressBar(Callback):
    """A rich progress bar: step, elapsed time, and the latest losses and accuracies."""

    def __init__(self, console: Console | None = None, description: str = "train") -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=console,
            transient=False,
        )
        self.description = description
        self.task_id = None

    def on_train_start(self, trainer: Trainer) -> None:
        self.progress.start()
        self.task_id = self.progress.add_task(
            self.description, total=trainer.cfg.steps, completed=trainer.step, metrics=""
        )

    def on_step_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        self.progress.update(self.task_id, completed=step)

    def on_eval(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        self.progress.update(self.task_id, completed=step, metrics=format_metrics(metrics))

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        self.progress.stop()
