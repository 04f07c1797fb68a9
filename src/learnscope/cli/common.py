"""What every CLI module shares: the consoles, the ``--runs-dir`` option, the exit-2 failure
and the way a value is printed in a table."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

console = Console()
err_console = Console(stderr=True)

RunsDir = Annotated[
    Path | None,
    typer.Option(
        "--runs-dir", help="runs root (default ./runs, or $LEARNSCOPE_RUNS)", show_default=False
    ),
]


def fail(message: str) -> None:
    """A user's mistake: one red line on stderr, exit code 2."""
    err_console.print(
        Text("error: ", style="bold red") + Text(message), highlight=False, soft_wrap=True
    )
    raise typer.Exit(2)


def fmt(value: Any) -> str:
    """A table cell: floats to 4 significant digits, None and NaN as ``-``."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Inside the block, SIGTERM (``kill PID``, a job scheduler's stop) acts as Ctrl-C: the
    run ends with a final checkpoint and status ``interrupted``."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (a test runner's worker): leave it alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def storage_error(err: BaseException) -> str | None:
    """One line for a full disk or an unwritable runs directory, else None."""
    import errno
    import sqlite3

    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full: {err.strerror} ({err.filename or 'runs directory'})"
    if isinstance(err, sqlite3.OperationalError) and "full" in str(err):
        return f"disk full: the run store cannot grow ({err})"
    if isinstance(err, PermissionError):
        return f"runs directory not writable: {err.strerror} ({err.filename})"
    return None
