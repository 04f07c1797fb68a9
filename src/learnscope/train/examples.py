"""The per-example records of a run (the ``examples`` probe), written and read back.

A run whose ``probes:`` hold ``{probe: examples, every: N}`` (``grand: 1`` to add GraNd, one
backward pass per example) gets an :class:`ExampleRecorder` from the runner: at step 0, every
``N`` steps and at the last step it records, for every row of the training split, its loss,
whether it is classified correctly, its EL2N and (optionally) its GraNd
(:func:`learnscope.probes.examples.records`), in eval mode, without drawing randomness.

Storage: one compressed numpy file a record, ``<run dir>/examples/step_00000100.npz``
(arrays ``loss``, ``correct``, ``el2n``, ``grand``: one value per training row, float32 or
bool), written atomically (a temporary file, then a rename), and ``rows.npz`` with the
training rows' labels ``y`` and the rows whose label ``task.label_noise`` flipped
(``flipped``). 1,000 rows cost about 8 KB a record. :func:`frame` reads them back as one
long DataFrame (``learnscope.examples(run)``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from learnscope.probes.examples import records
from learnscope.train.loop import Callback

#: the folder of a run's records
FOLDER = "examples"
_STEP = re.compile(r"step_(\d+)\.npz")


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` to a temporary file, fsync, then rename over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ExampleRecorder(Callback):
    """Records every training example at the ``examples`` probe's steps (``items``: the
    plan's entries of that probe; the union of their schedules, GraNd if any asks for it)
    into ``directory``."""

    def __init__(self, items, directory: Path) -> None:
        self.every = sorted({item.every for item in items})
        self.with_grand = any(item.options.get("grand") for item in items)
        self.directory = Path(directory)
        self.recorded: list[int] = []

    def record(self, trainer, step: int) -> None:
        model, obj = trainer.model, trainer.objective
        train = trainer.splits["train"]
        was_training = model.training
        model.eval()
        try:
            arrays = records(model, obj.forward, obj.loss, train.tensors, self.with_grand)
        finally:
            model.train(was_training)
        _save(self.directory / f"step_{step:08d}.npz", arrays)
        self.recorded.append(step)

    def _due(self, trainer, step: int) -> bool:
        return step >= trainer.cfg.steps or any(step % e == 0 for e in self.every)

    def on_train_start(self, trainer) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        train = trainer.task.split("train")
        flipped = getattr(trainer.task, "flipped", None)
        flipped = np.zeros(0, np.int64) if flipped is None else flipped.cpu().numpy()
        _save(self.directory / "rows.npz", {"y": train["y"].cpu().numpy(), "flipped": flipped})
        if trainer.step == 0 or self._due(trainer, trainer.step):
            self.record(trainer, trainer.step)

    def on_step_end(self, trainer, step: int, loss: float) -> None:
        if self._due(trainer, step):
            self.record(trainer, step)

    def on_train_end(self, trainer, status: str) -> None:
        if status == "stopped" and trainer.step not in self.recorded:
            self.record(trainer, trainer.step)


def steps(run_dir: Path) -> list[int]:
    """The steps a run recorded per-example arrays at, in order."""
    folder = Path(run_dir) / FOLDER
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _STEP.fullmatch(p.name)))


def load(run_dir: Path, step: int) -> dict[str, np.ndarray]:
    """The arrays recorded at ``step`` (``loss``, ``correct``, ``el2n`` and maybe ``grand``)."""
    with np.load(Path(run_dir) / FOLDER / f"step_{step:08d}.npz") as f:
        return {k: f[k] for k in f.files}


def rows(run_dir: Path) -> dict[str, np.ndarray]:
    """The training rows' labels ``y`` and the flipped rows ``flipped`` (sorted indices)."""
    with np.load(Path(run_dir) / FOLDER / "rows.npz") as f:
        return {k: f[k] for k in f.files}


def stacked(run_dir: Path, key: str) -> tuple[list[int], np.ndarray]:
    """The steps and array ``key`` at every one of them, stacked: ``(T, n)``."""
    at = steps(run_dir)
    return at, np.stack([load(run_dir, s)[key] for s in at]) if at else np.zeros((0, 0))


def frame(run_dir: Path) -> pd.DataFrame:
    """Every record of a run, long: one row per (step, example) with columns ``step``,
    ``example`` (the training row), ``loss``, ``correct``, ``el2n``, ``grand`` (NaN where
    not recorded) and ``flipped`` (whether ``label_noise`` flipped the row's label)."""
    columns = ["step", "example", "loss", "correct", "el2n", "grand", "flipped"]
    at = steps(run_dir)
    if not at:
        return pd.DataFrame(columns=columns)
    flipped = rows(run_dir)["flipped"]
    parts = []
    for s in at:
        a = load(run_dir, s)
        n = len(a["loss"])
        mask = np.zeros(n, bool)
        mask[flipped[flipped < n]] = True
        parts.append(
            pd.DataFrame(
                {
                    "step": np.full(n, s),
                    "example": np.arange(n),
                    "loss": a["loss"],
                    "correct": a["correct"],
                    "el2n": a["el2n"],
                    "grand": a.get("grand", np.full(n, np.nan, np.float32)),
                    "flipped": mask,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)[columns]
