"""Checkpoints that survive a kill: temp file, fsync, rename; the previous one is kept.

``save`` writes ``step_{step:08d}.pt`` (e.g. ``step_00000300.pt``) through a temporary file
in the same directory, fsyncs it, renames it into place (atomic on POSIX) and fsyncs the
directory; a crash at any moment
leaves either the old set of files or the new one, never a torn file. ``latest`` finds the
newest readable checkpoint, skipping unreadable ones.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from learnscope.errors import UserError

_NAME = re.compile(r"step_(\d{8})\.pt$")


def path_for(directory: Path, step: int) -> Path:
    return Path(directory) / f"step_{step:08d}.pt"


def save(directory: Path, step: int, state: dict[str, Any]) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = path_for(directory, step)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def steps(directory: Path) -> list[int]:
    """Steps that have a checkpoint file, ascending."""
    if not Path(directory).is_dir():
        return []
    return sorted(int(m.group(1)) for p in Path(directory).iterdir() if (m := _NAME.match(p.name)))


def load(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file: say which, not a traceback
        raise UserError(f"checkpoint: cannot read {path}: {type(err).__name__}: {err}") from None


def latest(directory: Path, at_or_before: int | None = None) -> tuple[int, dict[str, Any]] | None:
    """The newest readable checkpoint (at or before a step, when given), or None."""
    for step in reversed(steps(directory)):
        if at_or_before is not None and step > at_or_before:
            continue
        try:
            return step, load(path_for(directory, step))
        except UserError:
            continue
    return None
