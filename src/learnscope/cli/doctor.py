"""``learnscope doctor``: check the run store, and rebuild it from the runs' directories."""

from __future__ import annotations

from typing import Annotated

import typer

from learnscope.cli.common import RunsDir, console, fail, plain
from learnscope.store import default_root, diagnose, rebuild


def doctor(
    runs_dir: RunsDir = None,
    rebuild_: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="move the store aside and re-create it: every row it still gives back, and "
            "a row for each run directory it lacks",
        ),
    ] = False,
) -> None:
    """Check the run store (SQLite integrity_check) against the runs' directories; with
    --rebuild, re-create it (run it while nothing trains under the runs directory)."""
    root = runs_dir if runs_dir is not None else default_root()
    if not root.is_dir():
        fail(f"--runs-dir: {root} is not a directory")
    if rebuild_:
        done = rebuild(root)
        if done.moved_to is not None:
            console.print(plain("moved the old store to ", done.moved_to), soft_wrap=True)
        got = ", ".join(f"{n} {t}" for t, n in done.copied.items() if n) or "none"
        console.print(plain("rows read back from it: ", got), soft_wrap=True)
        console.print(
            plain(
                f"runs re-created from their directories (status recovered): {len(done.from_dirs)}",
                f" ({', '.join(done.from_dirs)})" if done.from_dirs else "",
            ),
            soft_wrap=True,
        )
        return
    d = diagnose(root)
    if d.problem is not None:
        console.print(
            plain(
                f"damaged: {d.store}: {d.problem}; the runs' directories still hold their "
                "configs and checkpoints: learnscope doctor --rebuild re-creates the store "
                "from them (the damaged file is moved aside)"
            ),
            soft_wrap=True,
        )
        raise typer.Exit(1)
    console.print(plain(f"store: {d.store}: ok" if d.store.exists() else f"no store at {d.store}"))
    for run_id in d.rows_without_dir:
        console.print(plain(f"run {run_id}: its directory is missing (deleted?)"), soft_wrap=True)
    if d.dirs_without_row:
        console.print(
            plain(
                f"{len(d.dirs_without_row)} run directories have no row in the store "
                f"({', '.join(d.dirs_without_row[:5])}); learnscope doctor --rebuild adds them"
            ),
            soft_wrap=True,
        )
