"""Checkpoint files of a run, beside the store: written so that they survive a kill, read so
that they cannot run code.

``save`` writes ``step_{step:08d}.pt`` (e.g. ``step_00000300.pt``) through a temporary file
in the same directory, fsyncs it, renames it into place (atomic on POSIX) and fsyncs the
directory; a crash at any moment
leaves either the old set of files or the new one, never a torn file. Ctrl-C or SIGTERM
arriving mid-write waits until the file is in place (the interrupt then ends the run as
``interrupted`` instead of tearing torch's zip writer). ``latest`` finds the newest readable
checkpoint, skipping unreadable ones.

``load`` reads with ``torch.load(..., weights_only=True)``: only tensors, numbers, strings and
plain containers, which is all a learnscope checkpoint holds. A pickle that asks for anything
else (a planted file that would run code when unpickled) is refused with a
:class:`~learnscope.errors.UserError`, never executed.
"""

from __future__ import annotations

import ctypes
import io
import os
import pickle
import re
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from learnscope.errors import UserError
from learnscope.files import write_atomic

_NAME = re.compile(r"step_(\d{8})\.pt$")


def path_for(directory: Path, step: int) -> Path:
    return Path(directory) / f"step_{step:08d}.pt"


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Inside the block, SIGINT and SIGTERM are recorded instead of handled; on leaving it the
    first one recorded is handed to the handler that was in place (Python runs signal handlers
    in the main thread only, so outside it nothing is deferred)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[tuple[int, Any]] = []
    numbers = (signal.SIGINT, signal.SIGTERM)
    previous = {n: signal.getsignal(n) for n in numbers}
    previous = {n: h for n, h in previous.items() if h is not None}  # None: set outside Python
    for n in previous:
        signal.signal(n, lambda signum, frame: pending.append((signum, frame)))
    try:
        yield
    finally:
        for n, handler in previous.items():
            signal.signal(n, handler)
        if pending:
            signum, frame = pending[0]
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def save(directory: Path, step: int, state: dict[str, Any]) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return write(path_for(directory, step), state)


class _Batch:
    """The saves and prunes of a :func:`deferred` block, done when it ends."""

    def __init__(self) -> None:
        self.written: list[tuple[Path, Path]] = []  # (temporary file, target)
        self.prunes: dict[Path, int] = {}


_batch: _Batch | None = None


@contextmanager
def deferred() -> Iterator[None]:
    """Checkpoints saved inside the block (an ensemble's K members at one step) reach the disk
    together: each is written whole to its temporary file with no fsync; when the block ends,
    one ``syncfs`` makes them all durable, they are renamed into place, and a second one makes
    the names durable (then the block's prunes run). Two syncs instead of 2 K fsyncs, in the
    order :func:`write` keeps (the data durable before the name), so a crash at any moment
    still leaves each checkpoint old or whole, never torn; a kill inside the block leaves
    only temporary files (:func:`remove_temporary`). Files appear when the block ends. Blocks
    inside it join it."""
    global _batch
    if _batch is not None:
        yield
        return
    _batch = batch = _Batch()
    try:
        yield
    finally:
        _batch = None
        if batch.written:
            with _interrupts_deferred():
                _sync(batch.written[0][1].parent)
                for tmp, target in batch.written:
                    os.replace(tmp, target)
                _sync(batch.written[0][1].parent)
        for directory, keep in batch.prunes.items():
            prune(directory, keep)


def _sync(directory: Path) -> None:
    """Flush the file system that holds ``directory`` (Linux ``syncfs``; elsewhere ``sync``)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(directory, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    os.sync()


def write(target: Path, obj: Any) -> Path:
    """``torch.save(obj)`` to ``target`` atomically (:func:`write_atomic`), with Ctrl-C and
    SIGTERM deferred until the file is in place. torch serialises into memory first, so a disk
    that fills up mid-write is an ``OSError(ENOSPC)`` from the write, never torch's "unexpected
    pos" from inside its zip writer. Inside a :func:`deferred` block the file is in place when
    the block ends."""
    target = Path(target)
    with _interrupts_deferred():
        buf = io.BytesIO()
        torch.save(obj, buf)
        if _batch is None:
            write_atomic(target, buf.getbuffer(), suffix=".pt")
            return target
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".pt")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buf.getbuffer())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _batch.written.append((Path(tmp), target))
    return target


def remove_temporary(directory: Path) -> list[Path]:
    """Delete the ``.tmp-*.pt`` files a kill in the middle of :func:`save` left behind (call
    it while holding the run's lock: no other writer can be mid-save); the files removed."""
    if not Path(directory).is_dir():
        return []
    found = sorted(Path(directory).glob(".tmp-*.pt"))
    for path in found:
        path.unlink(missing_ok=True)
    return found


def prune(directory: Path, keep: int) -> list[int]:
    """Delete all but the newest ``keep`` checkpoints (the newest is what resume, the report
    and ``learnscope probe`` read); the steps deleted (inside a :func:`deferred` block: when
    it ends, after its files are in place; none now)."""
    if _batch is not None:
        _batch.prunes[Path(directory)] = keep
        return []
    old = steps(directory)[:-keep] if keep >= 1 else []
    for step in old:
        path_for(directory, step).unlink(missing_ok=True)
    return old


def steps(directory: Path) -> list[int]:
    """Steps that have a checkpoint file, ascending."""
    if not Path(directory).is_dir():
        return []
    return sorted(int(m.group(1)) for p in Path(directory).iterdir() if (m := _NAME.match(p.name)))


def load(path: Path) -> dict[str, Any]:
    """The state saved in ``path``; a file that is not a learnscope checkpoint (truncated,
    foreign, or a pickle that would run code) is a :class:`UserError` saying which."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UnsafeCheckpoint(
            f"checkpoint: refusing {path}: it holds objects other than tensors and plain "
            f"containers (loading it could run code; {first[:160]})"
        ) from None
    except Exception as err:  # a truncated or foreign file: say which, not a traceback
        raise UserError(f"checkpoint: cannot read {path}: {type(err).__name__}: {err}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise UserError(f"checkpoint: {path} is not a learnscope checkpoint (no model state)")
    return state


class UnsafeCheckpoint(UserError):
    """A checkpoint file that would run code if unpickled: refused, never skipped quietly."""


def latest(directory: Path, at_or_before: int | None = None) -> tuple[int, dict[str, Any]] | None:
    """The newest readable checkpoint (at or before a step, when given), or None. A file that
    cannot be read (truncated, foreign) is skipped for the one before it; a file that would run
    code stops everything (:class:`UnsafeCheckpoint`)."""
    for step in reversed(steps(directory)):
        if at_or_before is not None and step > at_or_before:
            continue
        try:
            return step, load(path_for(directory, step))
        except UnsafeCheckpoint:
            raise
        except UserError:
            continue
    return None
