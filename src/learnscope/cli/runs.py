"""Runs side by side and labelled: ``learnscope compare``, ``tag`` and ``note``
(:mod:`learnscope.report.compare`; tags and notes live in the store with the run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from learnscope.cli.common import (
    RunsDir,
    console,
    fail,
    fitted_table,
    plain,
    print_left_out,
    resolve_run,
)
from learnscope.cli.common import fmt as _fmt
from learnscope.errors import UserError
from learnscope.store import Store

RunRef = Annotated[str, typer.Argument(metavar="RUN", help="run id, unique prefix or 'last'")]


def tag(
    run_ref: RunRef,
    tags: Annotated[list[str], typer.Argument(metavar="TAG...", help="tags to add")],
    remove: Annotated[bool, typer.Option("--remove", help="remove these tags instead")] = False,
    runs_dir: RunsDir = None,
) -> None:
    """Tag a run (shown by ls, show, report and compare; ls --tag TAG lists the runs with it)."""
    try:
        store = Store(runs_dir)
        run_id = resolve_run(store, run_ref)
        now = store.tag(run_id, tags, remove=remove)
    except UserError as err:
        fail(str(err))
    console.print(plain(f"{run_id}: tags ", ", ".join(now) or "none"), soft_wrap=True)


def note(
    run_ref: RunRef,
    text: Annotated[str, typer.Argument(metavar="TEXT", help="the note (quote it)")],
    runs_dir: RunsDir = None,
) -> None:
    """Add a note to a run (a run keeps every note; shown by show, report and compare)."""
    try:
        store = Store(runs_dir)
        run_id = resolve_run(store, run_ref)
        store.note(run_id, text)
    except UserError as err:
        fail(str(err))
    console.print(plain(f"{run_id}: noted ({len(store.labels(run_id)['note'])} notes)"))


def compare(
    run_refs: Annotated[
        list[str], typer.Argument(metavar="RUN...", help="two or more runs (id, prefix, last)")
    ],
    metric: Annotated[
        str | None, typer.Option(help="the metric overlaid (default test/acc, else a loss)")
    ] = None,
    html: Annotated[
        Path | None, typer.Option(help="also write an HTML page with the curves overlaid")
    ] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Runs side by side: the config values that differ, tags and notes, the summaries in one
    table, and one metric over training."""
    from learnscope.report.compare import compare as build
    from learnscope.report.compare import write_page

    try:
        store = Store(runs_dir)
        if not len(store.runs()):
            resolve_run(store, run_refs[0])  # the empty-store message
        cmp = build(store, run_refs)
        name = cmp.metric(metric)
        ids = [r.id for r in cmp.runs]
        short = [i[-6:] for i in ids]  # the columns: an id's distinctive end
        console.print(
            plain("runs: ", ", ".join(f"{s} = {r.id} ({r.name})" for s, r in zip(short, cmp.runs))),
            soft_wrap=True,
        )
        rows = _rows(cmp.config_table())
        for kind in ("tag", "note"):
            if any(cmp.labels[i][kind] for i in ids):
                rows.append([kind + "s", *("; ".join(cmp.labels[i][kind]) or "-" for i in ids)])
        if rows:
            _print(["differs", *short], rows)
        else:
            console.print("configs: the same (apart from the name)")
        _print(["summary", *short], _rows(cmp.summary_table()))
        console.print(plain(f"{name} over training:"))
        _print(["step", *short], _rows(cmp.curves(name)))
        if html is not None:
            out = write_page(cmp, name, html)
            console.print(plain("wrote ", out), soft_wrap=True)
    except UserError as err:
        fail(str(err))


def _rows(frame) -> list[list[str]]:
    """A table's rows as text: its index, then each value."""
    return [[str(k), *(_fmt(v) for v in row)] for k, row in zip(frame.index, frame.values.tolist())]


def _print(headers: list[str], rows: list[list[str]]) -> None:
    out, left = fitted_table(headers, rows, 1, console.width, wrap=0)
    console.print(out)
    print_left_out(left)
