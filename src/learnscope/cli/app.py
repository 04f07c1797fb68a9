"""The ``learnscope`` command line: run, recipes, ls, show, report, probe (and ``sweep``).

Every mistake a user can make ends in one line naming the field and what is allowed, exit
code 2, no traceback, and nothing written (see ``learnscope.errors``).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from learnscope.cli import (
    analysis,
    criticality,
    estimate,
    evaluate,
    hf,
    layers,
    runs,
    verify,
    width,
)
from learnscope.cli.capacity import capacity as _capacity
from learnscope.cli.common import (
    App,
    RunsDir,
    cell,
    check_recipe,
    console,
    err_console,
    fail,
    fitted_table,
    plain,
    print_left_out,
    resolve_run,
    resolve_sweep,
    set_threads,
    sigterm_as_ctrl_c,
    storage_error,
    table,
    writable_dir,
)
from learnscope.cli.common import fmt as _fmt
from learnscope.cli.data_diet import data_diet as _data_diet
from learnscope.cli.doctor import doctor
from learnscope.cli.double_descent import double_descent as _double_descent
from learnscope.cli.generations import generations as _generations
from learnscope.cli.intrinsic import intrinsic_dim as _intrinsic_dim
from learnscope.cli.memory import memory_scaling as _memory_scaling
from learnscope.cli.redshift import redshift as _redshift
from learnscope.cli.sweep import sweep_app
from learnscope.cli.transfer import transfer as _transfer
from learnscope.config import (
    RunConfig,
    apply_overrides,
    load_config,
    load_recipe_dict,
    recipe_names,
    validate_config,
)
from learnscope.errors import UserError
from learnscope.store import Store

app = App(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="learnscope: can this network, trained this way, learn this task?",
)
app.add_typer(sweep_app, name="sweep")


@app.command()
def run(
    recipe: Annotated[str, typer.Argument(help="a built-in recipe name or a YAML file")] = "",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override: key.path=value")
    ] = None,
    runs_dir: RunsDir = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N, mps")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    resume: Annotated[str | None, typer.Option(help="resume RUN from its last checkpoint")] = None,
    tensorboard: Annotated[
        Path | None, typer.Option(help="also write the scalars for TensorBoard under DIR/<run>")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="torch threads (default: the cores not busy at the start, at least 1; "
            "$OMP_NUM_THREADS if set)",
            min=1,
            max=1024,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="say where the time went: imports, config, run")
    ] = False,
) -> None:
    """Train a recipe or config file and record the run; or continue a run (--resume)."""
    clock = [("start", time.perf_counter())]
    from learnscope.cli.live import LiveProgress  # torch only for the commands that train
    from learnscope.runner import execute
    from learnscope.train.callbacks import TensorBoardSink

    clock.append(("imports (torch, the trainer)", time.perf_counter()))
    set_threads(threads)
    try:
        store = Store(runs_dir)
        store.require_writable()
        overrides = list(set_ or []) + ([f"train.device={device}"] if device else [])
        cfg, run_id = _config_to_run(store, recipe, overrides, resume)
        clock.append(("the config (read, validated)", time.perf_counter()))
        sinks = []
        if not quiet:  # the live view reads the run's history (a resumed run's too)
            sinks.append(
                lambda rid: LiveProgress(console, cfg.name, cfg.events, store.metric_table(rid))
            )
        if tensorboard is not None:
            TensorBoardSink.require()
            writable_dir(tensorboard, "--tensorboard")
            sinks.append(lambda rid: TensorBoardSink(tensorboard, rid))
        with sigterm_as_ctrl_c():
            result = execute(cfg, store, sinks, resume=run_id)
        clock.append(("the run", time.perf_counter()))
    except UserError as err:
        fail(str(err))
    except KeyboardInterrupt:  # during training the trainer catches it: the run ends interrupted
        err_console.print(
            Text("interrupted before training started: nothing was trained", style="yellow"),
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    except (OSError, sqlite3.OperationalError) as err:
        if (line := storage_error(err)) is None:
            raise
        err_console.print(Text("error: ", style="bold red") + Text(line), soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(_summary_table(cfg, result))
    _print_outcome(result)
    if verbose:
        console.print(plain(startup_line(clock, result.summary.get("wall_s"))), soft_wrap=True)
    if result.status not in ("finished", "stopped"):
        raise typer.Exit(1)


def startup_line(clock: list[tuple[str, float]], training_s: float | None) -> str:
    """Where a command's time went, from its ``clock`` marks (name, perf_counter) and the run's
    own training seconds (the rest of the run: building, evaluating, probes, the store).

    >>> line = startup_line([("start", 0.0), ("imports", 2.0), ("the run", 8.5)], 5.0)
    >>> line.split("; ")[0]
    'time: imports 2.00 s, the run 6.50 s (training 5.00 s'
    >>> line.split("; ")[-1]
    '8.50 s in all since the command started'
    """
    parts, detail = [], ""
    for (_, before), (name, at) in zip(clock, clock[1:]):
        parts.append(f"{name} {at - before:.2f} s")
    if training_s is not None and clock[-1][0] == "the run":
        rest = clock[-1][1] - clock[-2][1] - training_s
        detail = f" (training {training_s:.2f} s; building, evaluating and storing {rest:.2f} s)"
    total = clock[-1][1] - clock[0][1]
    return f"time: {', '.join(parts)}{detail}; {total:.2f} s in all since the command started"


def _config_to_run(
    store: Store, recipe: str, overrides: list[str], resume: str | None
) -> tuple[RunConfig, str | None]:
    """The config of the run to train and, with ``--resume``, the id of the stored run it
    continues (None for a new run)."""
    if resume:
        if recipe:
            fail(
                f"run: give a recipe or --resume RUN, not both: {resume} goes on with its "
                f"own stored config (got {recipe!r})"
            )
        run_id = resolve_run(store, resume)
        rec = store.run(run_id)
        store.require_dir(run_id)
        cfg = resumed_config(rec["config"], overrides)
        done = _steps_done(rec)
        if cfg.train.steps < done:
            fail(
                f"--set train.steps: run {run_id} has trained {done} steps; give at least "
                f"{done} (got {cfg.train.steps})"
            )
        return cfg, run_id
    if recipe:
        check_recipe(recipe)
        return load_config(recipe, overrides), None
    fail(f"recipe: give a recipe ({', '.join(recipe_names())}) or a YAML file")


def _steps_done(rec: dict) -> int:
    """The steps a stored run has trained, as its summary says (0 when it has none: a killed
    run, whose checkpoints are read only once it resumes)."""
    steps = rec["summary"].get("steps")
    return steps if isinstance(steps, int) and not isinstance(steps, bool) else 0


#: The summary keys ``learnscope run`` prints, in this order, when the run has them.
SUMMARY_KEYS = (
    "train_acc",
    "test_acc",
    "train_clean_acc",
    "train_corrupted_acc",
    "train_loss",
    "test_loss",
    "grok_train_step",
    "grok_test_step",
    "grok_gap",
    "avg_acc",  # a task sequence (task name sequence): learnscope.train.continual.summary
    "old_task_acc",
    "forgetting",
    "new_task_acc_first",
    "new_task_acc_last",
    "new_task_acc_drop",
    "steps",
    "stopped_by",
    "wall_s",
    "steps_per_s",
)


def _summary_table(cfg: RunConfig, result) -> Table:
    """The final metrics of ``result`` (a :class:`learnscope.runner.RunResult`), its
    the claims one run can check, its id and directory."""
    s = result.summary
    out = Table(title=Text(f"{cfg.name}: {result.status}"), show_header=False)
    out.add_column(no_wrap=True)
    out.add_column(overflow="fold")
    for key in SUMMARY_KEYS:
        if key in s:
            out.add_row(key, cell(s[key]))
    thresholds = {c.name: c.threshold for c in cfg.claims}
    for name, c in s.get("claims", {}).items():
        out.add_row(Text(f"claim {name} {thresholds.get(name, '')}"), claim_cell(c))
    if any(c.control is not None for c in cfg.claims):
        out.add_row("", Text("paired claims: learnscope verify " + cfg.name, style="dim"))
    out.add_row("run", Text(result.run_id, no_wrap=True))
    out.add_row("dir", Text(str(result.dir)))
    return out


def claim_cell(c: dict) -> Text:
    """A claim checked on one run: its value and whether it holds (for a null claim, whether
    the paper's effect appeared)."""
    value = Text(f"{cell(c['value'])}  ")
    if c["kind"] == "null":
        return value + (Text("effect appeared", style="yellow") if c["holds"] else Text("null"))
    return value + (Text("holds", style="green") if c["holds"] else Text("fails", style="red"))


def _print_outcome(result) -> None:
    """What became of the run (``result``, a :class:`learnscope.runner.RunResult`) and what
    to do next: where it diverged, how to resume it when interrupted, its report when done."""
    s = result.summary
    if result.status == "diverged":  # not a usage error: exit 1, with the step
        err_console.print(
            Text("diverged", style="bold red")
            + plain(
                f" at step {s.get('diverged_step')}: {s.get('diverged_metric')} is not finite; "
                f"the metrics logged until then are kept in run {result.run_id}"
            ),
            highlight=False,
            soft_wrap=True,
        )
    if result.status == "interrupted":
        console.print(
            Text(f"interrupted at step {s.get('steps')}; continue with: ")
            + Text(f"learnscope run --resume {result.run_id}", style="bold"),
            soft_wrap=True,
        )
    elif result.status in ("finished", "stopped"):
        console.print(
            Text("report: ") + Text(f"learnscope report {result.run_id}", style="bold"),
            soft_wrap=True,
        )


#: Fields ``--set`` may change when a run is resumed: how long it trains and where.
RESUMABLE = ("train.steps", "train.checkpoint_every", "train.keep_checkpoints", "train.device")


def resumed_config(stored: dict, overrides: list[str]):
    """A resumed run's config: its stored one, with ``--set`` allowed only on
    :data:`RESUMABLE` fields (anything else would make it another experiment)."""
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key not in RESUMABLE:
            fail(
                f"--set {key}: cannot change when resuming (the run keeps its config); "
                f"allowed: {', '.join(RESUMABLE)}"
            )
    return validate_config(apply_overrides(stored, overrides), stored=True)


@app.command()
def recipes() -> None:
    """List the built-in recipes (learnscope run NAME), sweeps (learnscope sweep NAME) and
    studies (learnscope verify NAME)."""
    from learnscope.config import load_study_dict, study_names
    from learnscope.sweep import load_spec, sweep_names

    out = table("recipe", "description", title="recipes: learnscope run RECIPE")
    out.columns[0].no_wrap = True
    for name in recipe_names():
        out.add_row(Text(name), Text(str(load_recipe_dict(name).get("description", ""))))
    console.print(out)
    sweeps = table("sweep", "members", "description", title="sweeps: learnscope sweep SWEEP")
    sweeps.columns[0].no_wrap = True
    for name in sweep_names():
        spec = load_spec(name)
        sweeps.add_row(Text(name), cell(spec.size), Text(spec.description or ""))
    console.print(sweeps)
    studies = table("study", "description", title="studies: learnscope verify STUDY")
    studies.columns[0].no_wrap = True
    for name in study_names():
        studies.add_row(Text(name), Text(str(load_study_dict(name).get("description", ""))))
    console.print(studies)


@app.command("ls")
def ls(
    runs_dir: RunsDir = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="only the runs with this tag (repeat: all of them)")
    ] = None,
) -> None:
    """List the runs in the store."""
    from learnscope.cli.common import no_runs_hint

    store = Store(runs_dir)
    runs = store.runs()
    if not len(runs):
        console.print(Text(no_runs_hint(store)), soft_wrap=True)
        return
    if tag:
        runs = runs[runs["tags"].map(lambda have: set(tag) <= set(have))]
        if not len(runs):
            console.print(Text(f"no run has the tag(s) {', '.join(tag)}"), soft_wrap=True)
            return
    headers = ["id", "name", "status", "test acc", "grok step", "steps"]
    tagged = any(len(t) for t in runs["tags"])
    headers += ["tags"] if tagged else []
    rows = [
        [
            r.id,
            r.name,
            shown_status(store, r.id, r.status),
            _fmt(r.summary.get("test_acc")),
            _fmt(r.summary.get("grok_test_step")),
            _fmt(r.summary.get("steps")),
            *([", ".join(r.tags)] if tagged else []),
        ]
        for r in runs.itertuples()
    ]
    # the id, which a user copies, is never cut; a name wraps; the columns on the right go
    # first when the terminal is narrow
    out, left = fitted_table(headers, rows, 2, console.width, wrap=1)
    console.print(out)
    print_left_out(left)


def shown_status(store: Store, run_id: str, status: str) -> str:
    """``stale`` for a run whose status says running but that no process trains (killed)."""
    return "stale" if status == "running" and not store.is_live(run_id) else status


@app.command()
def show(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="run id, unique prefix or 'last'")],
    runs_dir: RunsDir = None,
    rows: Annotated[
        int, typer.Option(min=1, max=100_000, help="metric rows to print (evenly spaced)")
    ] = 20,
    spectrum: Annotated[
        bool,
        typer.Option(
            "--spectrum",
            help="modular runs: how the first-layer neurons use the Fourier basis (reads the "
            "checkpoint)",
        ),
    ] = False,
) -> None:
    """Config, summary, events and metric table of one run."""
    try:
        store = Store(runs_dir)
        run_id = resolve_run(store, run_ref)
        rec = store.run(run_id)
    except UserError as err:
        fail(str(err))
    console.rule()
    status = shown_status(store, run_id, rec["status"])
    console.print(Text(f"{run_id}  {rec['name']}  [{status}]"), soft_wrap=True)  # id whole
    labels = store.labels(run_id)
    if labels["tag"]:
        console.print(plain("tags: ", ", ".join(labels["tag"])), soft_wrap=True)
    for text in labels["note"]:
        console.print(plain("note: ", text), soft_wrap=True)
    console.print_json(json.dumps(rec["config"]))
    summary = table("summary", "value")
    summary.columns[1].overflow = "fold"
    for key, value in rec["summary"].items():
        summary.add_row(Text(key), cell(value))
    console.print(summary if rec["summary"] else Text("summary: none yet (the run has not ended)"))
    wide = store.metric_table(run_id)
    last = int(wide.index.max()) if len(wide) else None
    done = rec["summary"].get("steps")
    if done is not None and last is not None and last > done:  # resumed, not ended again
        console.print(
            Text(
                f"the summary is from step {done}; metrics go on to step {last} (the run was "
                "resumed and has not ended since)",
                style="yellow",
            ),
            soft_wrap=True,
        )
    events = store.events(run_id)
    if len(events):
        from learnscope.events import Event, describe, label

        ev = table("event", "step", "what", "data")
        ev.columns[3].overflow = "fold"
        for e in events.itertuples():
            event = Event(e.kind, None if e.step != e.step else int(e.step), e.data)
            what, data = Text(describe(event)), Text(json.dumps(e.data))
            ev.add_row(Text(label(event)), cell(e.step), what, data)
        console.print(ev)
    _print_frequency_use(store, run_id, spectrum)
    probe_cols = _probe_columns(wide.columns)
    if probe_cols:
        _print_probe_series(wide[probe_cols])
        wide = wide.drop(columns=probe_cols).dropna(how="all")
    if len(wide):
        cols = [c for c in wide.columns if not c.startswith("weight_norm/")]
        norms = [c for c in wide.columns if c.startswith("weight_norm/")]
        n = min(rows, len(wide))
        pick = wide.iloc[sorted({round(i * (len(wide) - 1) / max(1, n - 1)) for i in range(n)})]
        # headers whole, or where that is too wide broken after a '/' (train_step/ loss), never
        # inside a word; the columns on the right that still do not fit are named instead
        rows_shown = [[str(step), *(_fmt(v) for v in row)] for step, row in pick[cols].iterrows()]
        metrics, left = fitted_table(["step", *cols], rows_shown, 1, console.width, whole=True)
        console.print(metrics)
        if n < len(wide):
            console.print(plain(f"{n} of {len(wide)} evaluation rows, evenly spaced (--rows N)"))
        print_left_out(left)
        if norms:
            console.print(
                plain(
                    "weight norms (last): ",
                    ", ".join(
                        f"{c.removeprefix('weight_norm/')} {_fmt(wide[c].dropna().iloc[-1])}"
                        for c in norms
                    ),
                ),
                highlight=False,
            )


@app.command()
def report(
    run_refs: Annotated[
        list[str] | None,
        typer.Argument(metavar="RUN", help="run ids, unique prefixes or 'last'"),
    ] = None,
    sweep: Annotated[
        str | None,
        typer.Option(help="add a sweep's runs (id, prefix, name or 'last'): phase diagrams"),
    ] = None,
    x: Annotated[str | None, typer.Option("--x", help="sweep axis: a config path")] = None,
    y: Annotated[str | None, typer.Option("--y", help="second sweep axis")] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="HTML file (default: <run dir>/report.html)"),
    ] = None,
    runs_dir: RunsDir = None,
) -> None:
    """One self-contained HTML report (plots embedded, also saved as PNGs next to it)."""
    from learnscope.report import build_report  # matplotlib only for this command

    if not run_refs and sweep is None:
        fail(
            "report: nothing to report; give a RUN (id, unique prefix or 'last'), several RUNs, "
            "or --sweep SWEEP (e.g. learnscope report last)"
        )
    try:
        store = Store(runs_dir)
        refs = [resolve_run(store, r) for r in run_refs or []]
        sweep_id = None
        if sweep is not None:
            try:
                sweep_id = resolve_sweep(store, sweep)
            except UserError as err:
                raise UserError(f"--sweep: {err}") from None
        result = build_report(store, refs, output, sweep_id, x, y)
    except UserError as err:
        fail(str(err))
    console.print(
        plain(
            f"wrote {result.path} ({len(result.panels)} panels, {len(result.files)} PNGs in ",
            f"{result.files[0].parent if result.files else '-'}) in {result.seconds:.1f} s",
        ),
        highlight=False,
        soft_wrap=True,
    )
    for note in result.notes:
        console.print(plain("  left out: ", note), highlight=False, soft_wrap=True)


def _print_frequency_use(store: Store, run_id: str, spectrum: bool) -> None:
    """For a modular-arithmetic run with ``--spectrum``: how its first-layer neurons use the
    Fourier basis, beside the analytic network's (read from the latest checkpoint: torch, so
    only when asked; without it, a line says how to ask)."""
    if store.run(run_id)["config"].get("task", {}).get("name") not in ("modular", "modular_seq"):
        return
    if not spectrum:
        console.print(plain("Fourier spectrum of the first layer: learnscope show RUN --spectrum"))
        return
    from learnscope.report.build import frequency_use
    from learnscope.studies.spectrum import first_layer_spectrum

    rec = store.run(run_id)
    got = first_layer_spectrum(rec["config"], rec["dir"])
    if not isinstance(got, str):
        power, ipr, what, p = got
        console.print(plain(f"{what}: ", frequency_use(power, ipr, p)), soft_wrap=True)


def _probe_columns(columns) -> list[str]:
    from learnscope.probes.names import is_probe_metric

    return [c for c in columns if is_probe_metric(c)]


def _print_probe_series(wide) -> None:
    """One row per probe series: how many records, the last step and value."""
    out = table("probe series", "records", "last step", "last value")
    out.columns[0].overflow = "fold"
    for name in wide.columns:
        series = wide[name].dropna()
        out.add_row(Text(name), str(len(series)), cell(series.index[-1]), cell(series.iloc[-1]))
    console.print(out)


@app.command()
def probe(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="run id, unique prefix or 'last'")],
    step: Annotated[int | None, typer.Option(help="checkpoint step (default: latest)")] = None,
    probe_name: Annotated[
        str | None, typer.Option("--probe", help="one probe (default: the run's probes)")
    ] = None,
    site: Annotated[
        list[str] | None, typer.Option("--site", help="glob pattern of sites for --probe")
    ] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Compute probes on a saved checkpoint of RUN and print them."""
    from learnscope.runner import probe_checkpoint

    try:
        store = Store(runs_dir)
        run_id = resolve_run(store, run_ref)
        rec = store.run(run_id)
        at, values = probe_checkpoint(rec["config"], rec["dir"], step, probe_name, site)
    except UserError as err:
        fail(str(err))
    console.print(Text(f"{run_id}  {rec['name']}  step {at}"), soft_wrap=True)
    out = table("probe", "value")
    out.columns[0].overflow = "fold"
    for name, value in values.items():
        out.add_row(Text(name), f"{value:.10g}")
    console.print(out if values else "no probe values (no site applies to this model)")


app.command("analytic")(analysis.analytic)
app.command("prune-memorizing")(analysis.prune_memorizing)
app.command("capacity")(_capacity)
app.command("intrinsic-dim")(_intrinsic_dim)
app.command("double-descent")(_double_descent)
app.command("memory-scaling")(_memory_scaling)
app.command("transfer")(_transfer)
app.command("generations")(_generations)
app.command("data-diet")(_data_diet)
app.command("prune-layers")(layers.prune_layers)
app.command("probe-hf")(hf.probe_hf)
app.command("eval")(evaluate.evaluate)
app.command("criticality")(criticality.criticality)
app.command("redshift")(_redshift)
app.command("estimate-accuracy")(estimate.estimate_accuracy)
app.command("coord-check")(width.coord_check)
app.command("verify")(verify.verify)
app.command("compare")(runs.compare)
app.command("tag")(runs.tag)
app.command("doctor")(doctor)
app.command("note")(runs.note)


def main() -> None:  # pragma: no cover - the console script
    sys.exit(app())
