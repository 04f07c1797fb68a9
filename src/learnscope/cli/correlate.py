"""``learnscope sweep correlate SWEEP --target gap``: the generalisation measures of every
finished member (:mod:`learnscope.studies.gen_measures`, cached in the store), and each
measure's Kendall tau with the gap, overall and granulated per axis (Jiang et al. 2020)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from learnscope.cli.common import (
    RunsDir,
    console,
    fail,
    fitted_table,
    print_left_out,
    resolve_sweep,
)
from learnscope.errors import UserError
from learnscope.store import Store


def _num(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:+.2f}"


def correlate(
    sweep_ref: Annotated[str, typer.Argument(metavar="SWEEP", help="id, prefix, name or 'last'")],
    target: Annotated[
        str, typer.Option(help="gap (train acc - test acc) or loss_gap (test - train loss)")
    ] = "gap",
    plot: Annotated[
        Path | None, typer.Option(help="draw the taus as a bar chart into this PNG file")
    ] = None,
    min_train_acc: Annotated[
        float, typer.Option(help="only members whose final train accuracy reaches this count")
    ] = 0.0,
    runs_dir: RunsDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Kendall's tau of each generalisation measure with the gap over a sweep's members:
    overall, granulated per axis (psi_i, Jiang et al.) and their mean Psi."""
    from learnscope.cli.common import member_progress
    from learnscope.studies.gen_measures import correlate as compute

    try:
        store = Store(runs_dir)
        sweep_id = resolve_sweep(store, sweep_ref)
        if plot is not None and plot.suffix.lower() != ".png":
            raise UserError(f"--plot: give a .png file (got {plot})")
        with member_progress("measures", quiet) as progress:
            corr = compute(store, sweep_id, target, progress=progress, min_train_acc=min_train_acc)
    except UserError as err:
        fail(str(err))
    frame = corr.table()
    short = [a.split(".")[-1] for a in corr.axes]
    groups = ", ".join(f"{s} {corr.groups[a]}" for s, a in zip(short, corr.axes))
    console.print(
        Text(
            f"sweep {sweep_id}: {corr.members} members trained"
            + (f" to a train accuracy >= {min_train_acc}" if min_train_acc else "")
            + f"; Kendall tau of each measure "
            f"with {target}; psi_i: mean tau over members differing only in axis i "
            f"(groups per axis: {groups})"
        ),
        soft_wrap=True,
    )
    headers = ["measure", "tau", "Psi", *(f"psi {s}" for s in short), "same sign"]
    rows = [
        [name, _num(row["tau"]), _num(row["Psi"]), *(_num(row[a]) for a in corr.axes)]
        + ["yes" if row["same_sign"] else "no"]
        for name, row in frame.iterrows()
    ]
    out, left = fitted_table(headers, rows, 3, console.width)
    console.print(out)
    print_left_out(left)
    kept = [m for m in frame.index if frame.loc[m, "same_sign"]]
    console.print(
        Text(
            f"same sign under every axis: {len(kept)} of {len(frame)} measures"
            + (f" ({', '.join(kept)})" if kept else "")
        ),
        soft_wrap=True,
    )
    if plot is not None:
        from learnscope.report.taus import taus_figure

        fig = taus_figure(frame, corr.axes, target)
        try:
            fig.savefig(plot, dpi=120)
        except OSError as err:
            fail(f"--plot: cannot write {plot}: {err.strerror or err}")
        console.print(Text(f"taus drawn: {plot}"), soft_wrap=True)
