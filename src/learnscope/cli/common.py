"""What every CLI module shares: the consoles, the ``--runs-dir`` option, the exit-2 failure
and the way a value is printed in a table."""

from __future__ import annotations

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
