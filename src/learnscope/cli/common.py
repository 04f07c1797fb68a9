"""What every CLI module shares: the consoles, the ``--runs-dir`` option, the exit-2 failure,
the way a value is printed in a table and the way a run or a sweep is named on the command line.

User text (run and sweep names, config values, error messages, event descriptions) is always
printed as :class:`rich.text.Text`, never as markup: a run named ``[bold]x[/]`` prints as
typed."""

from __future__ import annotations

import difflib
import inspect
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from learnscope.errors import UserError, cut

console = Console()
err_console = Console(stderr=True)


def prose(help_text: str | None) -> str | None:
    """A docstring as help that the terminal wraps: each paragraph on one line (the line breaks
    of the source would otherwise break the help mid-sentence, ``Gromov`` / ``2023``); a
    paragraph that starts with ``\\b`` is kept as written.

    >>> prose("Train (Gromov\\n    2023).\\n\\n    More\\n    text.")
    'Train (Gromov 2023).\\n\\nMore text.'
    """
    if not help_text:
        return help_text
    paragraphs = inspect.cleandoc(help_text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs)


_LIST_TYPE = re.compile(r"^<list\[(?P<item>.+)\]>$")


def readable_params(params: list, ctx: Any) -> list:
    """``params`` as the help shows them: a flag without a type tag (``--quiet``, not
    ``--quiet <bool>``), an option or argument given several times as ``<str>...`` (not
    ``<list[str]>``). Only what the help shows changes; parsing is the same."""
    for param in params:
        kind = getattr(param, "param_type_name", "")
        many = _LIST_TYPE.match(str(param.display_type(ctx) or ""))
        if kind == "option" and param.metavar is None:
            if param.is_flag or param.count:
                param.metavar = ""
            elif many:
                param.metavar = f"<{many['item']}>..."
        elif kind == "argument" and many:  # its name stays the metavar; typer asks the type
            dots = "..." if param.metavar is not None else ""  # else typer dots the name
            param.display_type_rich = lambda ctx, shown=f"<{many['item']}>{dots}": shown
    return params


#: click's usage error (a misused option or argument), from the click that typer uses
_USAGE = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


@contextmanager
def one_line(command_path: str = "learnscope") -> Iterator[None]:
    """The root of every command: whatever a command lets through ends in one line, never a
    traceback. A :class:`UserError` or a misused option (click's usage error) exits 2; a
    storage fault (a full disk, a read-only or failing file system, a damaged store:
    :func:`learnscope.errors.storage_message`) exits 1."""
    import sqlite3

    from learnscope.errors import storage_message

    try:
        yield
    except UserError as err:
        fail(str(err))
    except _USAGE as err:
        if type(err).__name__ == "NoArgsIsHelpError":
            raise  # the help, as asked
        fail(f"{cut(err.format_message(), 300)} (see {command_path} --help)")
    except (OSError, sqlite3.DatabaseError) as err:
        if (line := storage_message(err)) is None:
            raise
        fail(line, code=1)


class _Readable:
    """What a command and a group share: :func:`prose` help, no type tag on a flag
    (:func:`readable_params`), and a one-line failure when the arguments are parsed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = prose(self.help)

    def get_params(self, ctx: Any) -> list:
        return readable_params(super().get_params(ctx), ctx)

    def make_context(self, info_name, args, parent=None, **extra):  # noqa: ANN001, ANN201
        path = " ".join(p for p in (parent.command_path if parent else "", info_name) if p)
        with one_line(path or "learnscope"):
            return super().make_context(info_name, args, parent=parent, **extra)


class Command(_Readable, TyperCommand):
    """A command whose ``--help`` reads well and whose failures are one line
    (:func:`one_line`)."""

    def invoke(self, ctx: Any) -> Any:
        with one_line(ctx.command_path):
            return super().invoke(ctx)


class Group(_Readable, TyperGroup):
    """A command group (``learnscope``, ``learnscope sweep``) whose help reads like its
    commands' (:class:`Command`), and whose unknown commands are one line."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        with one_line(ctx.command_path):
            return super().resolve_command(ctx, args)


class App(typer.Typer):
    """A Typer app whose commands are :class:`Command` and whose group is :class:`Group`
    (unless given another ``cls``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("cls", Group)
        super().__init__(*args, **kwargs)

    def command(self, *args: Any, **kwargs: Any):
        if kwargs.get("cls") is None:
            kwargs["cls"] = Command
        return super().command(*args, **kwargs)


RunsDir = Annotated[
    Path | None,
    typer.Option(
        "--runs-dir", help="runs root (default ./runs, or $LEARNSCOPE_RUNS)", show_default=False
    ),
]


_LONG_WORD = re.compile(r"\S{160,}")


def fail(message: str, code: int = 2) -> None:
    """A user's mistake: one red line on stderr, exit code 2 (1 for a storage fault). A value
    that no message should echo whole (a word of over 160 characters) is cut."""
    message = _LONG_WORD.sub(lambda m: m.group()[:100] + "...", message)
    err_console.print(
        Text("error: ", style="bold red") + Text(message), highlight=False, soft_wrap=True
    )
    raise typer.Exit(code)


def writable_dir(path: Path, option: str) -> None:
    """A :class:`UserError` unless ``path`` is (or can become) a directory this process may
    write in (:func:`learnscope.store.check_writable`)."""
    from learnscope.store import check_writable

    check_writable(path, option)


def fmt(value: Any) -> str:
    """A table cell: floats to 4 significant digits, None and NaN as ``-``."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def cell(value: Any, style: str = "") -> Text:
    """A table cell or header as literal text (:func:`fmt`, no markup read)."""
    return Text(fmt(value), style=style)


def plain(*parts: Any) -> Text:
    """A line of literal text (``print(plain("wrote ", path))``)."""
    return Text("".join(str(p) for p in parts))


def table(*headers: str, **kw: Any) -> Table:
    """A rich table whose headers and title are literal text."""
    if isinstance(kw.get("title"), str):
        kw["title"] = Text(kw["title"])
    t = Table(**kw)
    for h in headers:
        t.add_column(Text(h))
    return t


def header_lines(header: str) -> list[str]:
    """The lines a column header may take: broken at spaces and after a ``/``, never inside a
    word.

    >>> header_lines("train_step/loss"), header_lines("grok step")
    (['train_step/', 'loss'], ['grok', 'step'])
    """
    return [part for word in header.split() for part in re.findall(r"[^/]+/*|/+", word)]


def fit_columns(
    headers: list[str], rows: list[list[str]], keep: int, width: int
) -> tuple[list[int], list[str]]:
    """The columns of a table that fit in ``width`` characters: the first ``keep`` always,
    then the others in order while they fit (each as wide as its widest cell, its header
    allowed to wrap at spaces and after a ``/``: :func:`header_lines`). Returns the kept column
    indices and the left-out headers."""

    def need(i: int) -> int:
        words = max((len(w) for w in header_lines(headers[i])), default=0)
        return max([words, *(len(r[i]) for r in rows)]) + 3  # padding and the rule

    used, kept, left = 1 + sum(need(i) for i in range(keep)), list(range(keep)), []
    for i in range(keep, len(headers)):
        if used + need(i) <= width:
            used += need(i)
            kept.append(i)
        else:
            left.append(headers[i])
    return kept, left


def fitted_table(
    headers: list[str],
    rows: list[list[str]],
    keep: int,
    width: int,
    wrap: int | None = None,
    whole: bool = False,
) -> tuple[Table, list[str]]:
    """A table of the columns that fit in ``width`` (:func:`fit_columns`; column ``wrap``, a
    name, measured at 16 characters at most and folded), the others left out and named.
    Every other column is as wide as its widest cell: nothing in it is ever cut, a header
    wraps at its spaces and after a ``/`` (:func:`header_lines`), never inside a word; with
    ``whole``, a header stays on one line unless breaking it is what makes the table fit
    (the longest ones are broken first)."""
    measured = [[c[:16] if i == wrap else c for i, c in enumerate(r)] for r in rows]
    kept, left = fit_columns(headers, measured, keep, width)
    lines = {i: header_lines(headers[i]) for i in kept}
    if whole:
        cells = {i: max((len(r[i]) for r in measured), default=0) for i in kept}
        need = {i: max(len(headers[i]), cells[i]) + 3 for i in kept}
        broken = {i: max([*map(len, lines[i]), cells[i]]) + 3 for i in kept}
        order = sorted(kept, key=lambda i: broken[i] - need[i])  # the biggest saving first
        whole_ones = set(kept)
        for i in order:
            if 1 + sum(need[j] if j in whole_ones else broken[j] for j in kept) <= width:
                break
            whole_ones.discard(i)
        lines.update({i: [headers[i]] for i in whole_ones})
    out = table(*("\n".join(lines[i]) for i in kept))
    for i, column in zip(kept, out.columns):
        column.no_wrap = i != wrap
        column.overflow = "fold"
    for row in rows:
        out.add_row(*(Text(row[i]) for i in kept))
    return out, left


def print_left_out(left: list[str]) -> None:
    if left:
        console.print(
            Text(f"left out at this width ({console.width} columns): {', '.join(left)}"),
            style="dim",
            soft_wrap=True,
        )


def check_recipe(recipe: str) -> None:
    """A :class:`UserError` for a misspelt recipe name (not a built-in recipe, not a YAML file)
    that names the closest recipe (``did you mean 'grokking-mlp'?``) rather than listing all
    of them; any other name is left to :func:`learnscope.config.load_config` to judge."""
    from learnscope.config import recipe_names

    if recipe.endswith((".yaml", ".yml")) or Path(recipe).exists():
        return
    names = recipe_names()
    if recipe in names:
        return
    close = difflib.get_close_matches(recipe, names, n=1)
    if close:
        raise UserError(
            f"recipe: unknown recipe {recipe!r}; did you mean {close[0]!r}? "
            f"(learnscope recipes lists all {len(names)}, or give a YAML file)"
        )


def no_runs_hint(store: Any) -> str:
    return (
        f"no runs in {store.root} yet; make one with `learnscope run grokking-mlp`, or point "
        "--runs-dir (or $LEARNSCOPE_RUNS) at the directory that holds them"
    )


def resolve_run(store: Any, ref: str) -> str:
    """A run id from ``ref`` (id, unique prefix or ``last``); on an empty store a
    :class:`UserError` that says so and how to make a run."""
    if not len(store.runs()):
        raise UserError(f"run {ref!r}: {no_runs_hint(store)}")
    return store.resolve(ref)


@dataclass
class OpenRun:
    """A trained run opened for a command: its store, id, record, the trainer rebuilt from
    its config with the checkpoint's weights (on the CPU), and that checkpoint's step."""

    store: Any
    id: str
    record: dict[str, Any]
    trainer: Any
    step: int


def open_run(runs_dir: Any, ref: str, step: int | None = None) -> OpenRun:
    """The preamble of every command that works on a trained run: open the store, resolve
    ``ref`` (id, unique prefix or ``last``), rebuild the run at its checkpoint ``step``
    (default: the latest readable one)."""
    from learnscope.runner import restore
    from learnscope.store import Store

    store = Store(runs_dir)
    run_id = resolve_run(store, ref)
    rec = store.run(run_id)
    trainer, at = restore(rec["config"], rec["dir"], step)
    return OpenRun(store, run_id, rec, trainer, at)


def resolve_sweep(store: Any, ref: str) -> str:
    """A sweep id from ``ref`` (id, unique prefix, name or ``last``): the one resolution every
    command uses (:func:`learnscope.sweep.tables.resolve_sweep`)."""
    from learnscope.sweep.tables import resolve_sweep as resolve

    return resolve(store, ref)


@contextmanager
def member_progress(name: str, quiet: bool = False) -> Iterator[Callable[[float, int], None]]:
    """A progress bar of a sweep's members while the block runs; yields the
    ``progress(done, total)`` function the sweep backends call (``done`` is fractional while an
    ensemble is half-way)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("members"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
    )
    with bar:
        task = bar.add_task(name, total=None)

        def progress(done: float, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield progress


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


@contextmanager
def user_errors() -> Iterator[None]:
    """A :class:`UserError` inside the block ends the command with its one-line message (exit
    code 2), a storage fault with its line (exit code 1: :func:`storage_error`); any other
    error propagates."""
    with one_line():
        yield


def storage_error(err: BaseException) -> str | None:
    """One line for a full disk, a file system that cannot be written or a damaged store,
    else None (:func:`learnscope.errors.storage_message`)."""
    from learnscope.errors import storage_message

    return storage_message(err)


def idle_cores(cores: int, load: float | None) -> int:
    """The cores not busy: ``cores`` less the runnable processes (the 1-minute load), at
    least 1. Measured on 2 cores (benchmarks/threads.py): idle, 2 threads train the recipes
    1.15-1.8x faster than 1; under a load of 5, 2 threads are 4-6x slower than 1.

    >>> idle_cores(2, 0.1), idle_cores(2, 5.0), idle_cores(8, 2.6), idle_cores(4, None)
    (2, 1, 5, 4)
    """
    return cores if load is None else max(1, min(cores, round(cores - load)))


def set_threads(threads: int | None) -> None:
    """torch's thread count for a command that trains: ``threads`` if given, else
    ``$OMP_NUM_THREADS`` if set (torch reads it), else :func:`idle_cores`."""
    import os

    import torch

    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        return
    if threads is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # not on every platform
            load = None
        threads = idle_cores(os.cpu_count() or 1, load)
    torch.set_num_threads(threads)
