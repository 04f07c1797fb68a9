"""``learnscope sweep``: run a sweep spec, list sweeps, show one (with a pivot grid).

``learnscope sweep SPEC ...`` is short for ``learnscope sweep run SPEC ...``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from learnscope.cli.common import (
    App,
    Group,
    RunsDir,
    cell,
    console,
    fitted_table,
    member_progress,
    print_left_out,
    resolve_sweep,
    sigterm_as_ctrl_c,
    table,
)
from learnscope.cli.common import fail as _fail
from learnscope.cli.common import fmt as _fmt
from learnscope.cli.correlate import correlate
from learnscope.errors import UserError
from learnscope.store import Store


class _DefaultRun(Group):
    """Anything that is not a subcommand is the SPEC of ``run``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


sweep_app = App(
    cls=_DefaultRun,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Sweeps: SPEC (run it), ls, show SWEEP, correlate SWEEP.",
)


@sweep_app.command("run")
def run(
    spec: Annotated[str, typer.Argument(help="a built-in sweep name or a sweep YAML file")],
    backend: Annotated[str, typer.Option(help="local or ray")] = "local",
    workers: Annotated[
        int | None, typer.Option(help="processes (local) or CPUs of a local Ray instance")
    ] = None,
    max_members: Annotated[int, typer.Option(help="members per ensemble at most")] = 128,
    chunk: Annotated[
        int | None,
        typer.Option(help="members trained at once (1: in turn); default: calibrated per group"),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(help="continue SWEEP (an id, prefix, name or 'last') run with this SPEC"),
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (e.g. auto); default: start one")
    ] = None,
    runs_dir: RunsDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Expand SPEC into members, train them in ensembles and record the sweep."""
    from learnscope import sweep as sw

    try:
        parsed = sw.load_spec(spec)
        store = Store(runs_dir)
        store.require_writable()
        with member_progress(parsed.name, quiet) as progress, sigterm_as_ctrl_c():
            sweep_id = sw.run_sweep(
                parsed,
                store,
                backend=backend,
                workers=workers,
                max_members=max_members,
                resume=resume,
                address=address,
                chunk=chunk,
                progress=progress,
            )
    except UserError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        _print_interrupted(store, parsed, spec)
        raise typer.Exit(1) from None
    _print_sweep(store, sweep_id, None, None)
    if parsed.claims:
        _print_claims(store, sweep_id)


def _print_claims(store: Store, sweep_id: str) -> None:
    """The sweep spec's claims on its members: one line each, ``holds k/N`` (exit 1 when a
    reproduces claim does not hold where it must)."""
    from learnscope.studies.claims import results_of

    v = results_of(store, sweep_id)
    for r in v.results:
        style = "red" if not r.passed else ("green" if r.claim.kind == "reproduces" else "")
        console.print(Text("claim " + r.line(), style=style), soft_wrap=True)
    if not v.passed:
        raise typer.Exit(1)


def _print_interrupted(store: Store, parsed, spec_ref: str) -> None:
    """How many members ended, and the command that continues the sweep."""
    from learnscope import sweep as sw

    try:
        sweep_id = sw.resolve_sweep(store, parsed.name)
    except UserError:  # stopped before anything was recorded
        console.print("interrupted before any member started; nothing was recorded")
        return
    table = sw.member_table(store, sweep_id)
    ended = int(table["status"].isin(sw.ENDED).sum()) if len(table) else 0
    total = int(store.sweeps().set_index("id").loc[sweep_id, "members"])
    console.print(
        Text(f"interrupted: {ended} of {total} members ended; continue with: ")
        + Text(f"learnscope sweep {spec_ref} --resume {sweep_id}", style="bold"),
        soft_wrap=True,
    )


@sweep_app.command("ls")
def ls(runs_dir: RunsDir = None) -> None:
    """List the sweeps in the store."""
    from learnscope.sweep import SweepSpec, sweep_names

    store = Store(runs_dir)
    sweeps = store.sweeps()
    if not len(sweeps):
        console.print(
            Text(
                f"no sweeps in {store.root} yet; built-in specs: {', '.join(sweep_names())} "
                "(learnscope recipes lists them with their sizes); run one with `learnscope "
                "sweep NAME`, or point --runs-dir at the directory that holds your sweeps"
            ),
            soft_wrap=True,
        )
        return
    runs = store.runs()
    rows = []
    for s in sweeps.itertuples():
        done = int(((runs["sweep_id"] == s.id) & (runs["status"] == "finished")).sum())
        axes = ",".join(a.split(".")[-1] for a in SweepSpec.model_validate(s.spec).axes)
        rows.append([s.id, s.name, s.status, str(s.members), str(done), axes])
    headers = ["id", "name", "status", "members", "finished", "axes"]
    out, left = fitted_table(headers, rows, 2, console.width, wrap=1)
    console.print(out)
    print_left_out(left)


sweep_app.command("correlate")(correlate)  # generalisation measures vs the gap (cli/correlate)


@sweep_app.command("show")
def show(
    sweep_ref: Annotated[str, typer.Argument(metavar="SWEEP", help="id, prefix, name or 'last'")],
    pivot: Annotated[
        tuple[str, str] | None,
        typer.Option(help="two axes: rows and columns of a grid", show_default=False),
    ] = None,
    value: Annotated[
        str | None, typer.Option(help="cell value, e.g. grok_test_step or test_acc")
    ] = None,
    runs_dir: RunsDir = None,
) -> None:
    """The members of a sweep with their final metrics; --pivot A B: a grid of --value."""
    try:
        store = Store(runs_dir)
        sweep_id = resolve_sweep(store, sweep_ref)
        _print_sweep(store, sweep_id, pivot, value, members=True)
    except UserError as err:
        _fail(str(err))


#: The member table's columns after the run, its status and the axes, most useful first:
#: those that do not fit the terminal are left out (and named), the run id never.
MEMBER_COLUMNS = {
    "grok_test_step": "grok test",
    "test_acc": "test acc",
    "train_acc": "train acc",
    "grok_train_step": "grok train",
    "test_loss": "test loss",
    "train_loss": "train loss",
    "mode": "mode",
}


def _print_sweep(store, sweep_id, pivot, value, members: bool = False) -> None:
    from learnscope import sweep as sw

    rec = store.sweeps().set_index("id").loc[sweep_id]
    frame = sw.member_table(store, sweep_id)
    console.rule()
    console.print(
        Text(f"sweep {sweep_id}  {rec['name']}  [{rec['status']}]  {len(frame)} runs"),
        soft_wrap=True,  # the id whole, whatever the width
    )
    if members and len(frame):
        _print_members(frame)
    show_cfg = sw.SweepSpec.model_validate(rec["spec"]).show
    axes = pivot or tuple(show_cfg.get("pivot", ()))
    if len(axes) == 2 and len(frame):
        values = [value] if value else headlined(show_cfg)
        by = show_cfg.get("by") if not pivot else None
        groups = [(None, frame)]
        if by in frame.columns:  # one grid per value of show.by (e.g. model.param)
            groups = [(g, frame[frame[by] == g]) for g in dict.fromkeys(frame[by])]
        for label, part in groups:
            for v in values:
                _print_grid(part, axes, v, None if label is None else f"{by} = {label}")
    if show_cfg.get("correlate") and len(frame):
        _print_correlations(store, frame, show_cfg["correlate"])
    spread = show_cfg.get("quantiles") or []
    for v in [spread] if isinstance(spread, str) else spread:
        _print_quantiles(frame, v)


def _print_quantiles(frame, value: str) -> None:
    """``show: {quantiles: VALUE}``: how many members have the value, and its quantiles."""
    from learnscope.sweep.tables import quantiles

    q = quantiles(frame, value)
    names = [k for k in q if k.startswith("q")]
    t = table("members", f"with {value}", *(f"{k[1:]} %" for k in names))
    t.add_row(str(int(q["members"])), str(int(q["have"])), *(_fmt(q[k]) for k in names))
    console.print(Text(f"{value} over the members (quantiles of those that have one)", "bold"))
    console.print(t)


def headlined(show_cfg: dict) -> list[str]:
    """The values a sweep's grids show: its ``headline`` first, then its ``values`` (default
    the grok step and the test accuracy)."""
    values = show_cfg.get("values", show_cfg.get("value", ["grok_test_step", "test_acc"]))
    values = [values] if isinstance(values, str) else list(values)
    head = show_cfg.get("headline")
    return [head, *(v for v in values if v != head)] if head else values


def _print_grid(frame, axes, v: str, label: str | None) -> None:
    from learnscope import sweep as sw

    """One pivot grid of ``v`` over ``axes`` (its title says which ``show.by`` group)."""
    grid = sw.pivot(frame, axes[0], axes[1], v)
    have, total = sw.pivot_counts(frame, axes[0], axes[1], v)
    word = "grokked" if v.startswith("grok") else "reached"
    corner = f"{grid.index.name.split('.')[-1]} \\ {grid.columns.name.split('.')[-1]}"
    g = table(corner, *map(_fmt, grid.columns))
    for column in g.columns:
        column.overflow = "fold"
    for idx, row in grid.iterrows():
        cells = []
        for col, x in row.items():
            count = sw.cell_count(int(have.loc[idx, col]), int(total.loc[idx, col]), word)
            cells.append(Text(_fmt(x) + (f" ({count})" if count else "")))
        g.add_row(cell(idx), *cells)
    partial = bool((have < total).to_numpy().any())
    console.print(
        Text(v + (f" ({label})" if label else ""), style="bold")
        + Text(
            " (mean over the seeds that have a value; -: never reached, or no member yet"
            + (f"; n/m {word}: n of the cell's m members {word}" if partial else "")
            + ")"
        )
    )
    console.print(g)


def _print_correlations(store, frame, corr: dict) -> None:
    """Each member's final ``target`` and ``metrics``, then the Spearman rank correlation of
    each metric with the target over the members (``show: {correlate: ...}``)."""
    from learnscope import sweep as sw

    target, metrics = corr["target"], list(corr["metrics"])
    values = sw.final_values(store, list(frame["run"]), [target, *metrics])
    axes = frame.attrs["axes"]
    t = table("run", *(a.split(".")[-1] for a in axes), target, *metrics)
    by_run = frame.set_index("run")
    for run in frame["run"]:
        cells = [_fmt(v) for v in by_run.loc[run, axes]]
        t.add_row(run, *cells, *(_fmt(v) for v in values.loc[run]))
    console.print(t)
    rho = sw.rank_correlations(values, target, metrics)
    c = table("metric", f"Spearman with {target}", "members")
    for name, r in rho.iterrows():
        c.add_row(name, _fmt(r["spearman"]), str(int(r["n"])))
    console.print(c)


def _header(column: str) -> str:
    """An axis by its last dotted part (``weight_decay``); a metric (``effective_rank/blocks.0.
    hook_resid_post``) whole, since its last part may repeat (one per layer)."""
    return column if "/" in column else column.split(".")[-1].replace("_", " ")


def _print_members(frame) -> None:
    """One row per member; the run id, status and axes always, the other columns as the
    terminal's width allows."""
    axes = frame.attrs["axes"]
    shown = [c for c in frame.attrs["shown"] if c in frame.columns and c not in MEMBER_COLUMNS]
    order = ["run", "status", *axes, *shown, *(c for c in MEMBER_COLUMNS if c in frame.columns)]
    headers = [MEMBER_COLUMNS.get(c) or _header(c) for c in order]
    rows = [[_fmt(v) for v in row] for row in frame[order].itertuples(index=False)]
    out, left = fitted_table(headers, rows, 2 + len(axes), console.width)
    console.print(out)
    print_left_out(left)
