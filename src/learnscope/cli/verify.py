"""``learnscope verify``: a recipe's claims checked over seeds (:mod:`learnscope.studies.claims`).

One line per claim: ``holds k/N`` with its 95 % Wilson interval, the median and range of the
measured value, and the paper's figure. Exit 1 when a ``reproduces`` claim holds at fewer seeds
than it requires; 2 on bad input.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from learnscope.cli.common import RunsDir, console, fail, member_progress, plain, sigterm_as_ctrl_c
from learnscope.errors import UserError
from learnscope.store import Store


def verify(
    recipe: Annotated[
        str | None,
        typer.Argument(metavar="RECIPE", help="a recipe or study spec with claims (or --all)"),
    ] = None,
    seeds: Annotated[int, typer.Option(help="seeds to train at (model and data seed)")] = 3,
    seed_start: Annotated[int, typer.Option(help="the first seed")] = 0,
    all_: Annotated[bool, typer.Option("--all", help="every recipe that states claims")] = False,
    fast: Annotated[
        bool,
        typer.Option(help="--all: seed by seed, a recipe stops once over --budget seconds"),
    ] = False,
    budget: Annotated[float, typer.Option(help="--fast: seconds of training per recipe")] = 300,
    markdown: Annotated[
        list[Path] | None,
        typer.Option(
            help="write the results table (markdown) to this file; in a file with the "
            "generated block (docs/results.md), replace the verified recipes' rows; a file "
            "with the recipes block (README.md) gets its recipe table from the claims table "
            "of the file before it (repeat: --markdown docs/results.md --markdown README.md)"
        ),
    ] = None,
    backend: Annotated[str, typer.Option(help="local or ray")] = "local",
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="runs trained at once (local processes or Ray CPUs)"),
    ] = None,
    resume: Annotated[
        str | None, typer.Option(help="continue this verification sweep (id, prefix, last)")
    ] = None,
    recheck: Annotated[
        list[str] | None,
        typer.Option(
            help="no training: check RECIPE's claims as they read now on the runs of this "
            "stored verification sweep (repeat to merge several)"
        ),
    ] = None,
    runs_dir: RunsDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Train RECIPE (and the matched controls of its claims) at --seeds seeds and print one
    line per claim: holds k/N with a 95% Wilson interval, the median and range of what was
    measured, the paper's figure."""
    from learnscope.config import load_config, recipe_names
    from learnscope.studies.claims import (
        RECIPES_BEGIN,
        update_markdown,
        update_readme,
        verify_seed_by_seed,
    )
    from learnscope.studies.claims import recheck as run_recheck
    from learnscope.studies.claims import verify as run_verify
    from learnscope.studies.study import is_study, study_names, verify_study

    if (recipe is None) == (not all_):
        fail("verify: give a RECIPE or --all (one of them)")
    if fast and not all_:
        fail("--fast: goes with --all")
    if recheck and (recipe is None or resume is not None):
        fail("--recheck: goes with a RECIPE, not with --all or --resume")
    if budget <= 0:
        fail(f"--budget: must be > 0 (got {budget})")
    for path in markdown or []:
        if not path.parent.is_dir():
            fail(f"--markdown: directory {path.parent} does not exist")
    try:
        names = [recipe] if recipe is not None else [
            n for n in recipe_names() if load_config(n).claims
        ] + study_names()  # fmt: skip
        if recipe is not None and is_study(recipe) and (recheck or resume):
            fail("--recheck, --resume: a study is measured again (they read recipes' sweeps)")
        store = Store(runs_dir)
        done = []
        for name in names if not recheck else []:
            with member_progress(f"verify {name}", quiet) as progress, sigterm_as_ctrl_c():
                start = time.perf_counter()
                if is_study(name):
                    v = verify_study(
                        name, store, seeds, seed_start, progress, budget if fast else None
                    )
                elif fast:
                    v = verify_seed_by_seed(name, store, seeds, seed_start, budget, backend)
                else:
                    v = run_verify(
                        name, store, seeds, seed_start, backend, resume, progress, workers
                    )
            _print(v, time.perf_counter() - start)
            done.append(v)
        if recheck:
            start = time.perf_counter()
            v = run_recheck(recipe, store, recheck)
            _print(v, time.perf_counter() - start)
            done.append(v)
    except UserError as err:
        fail(str(err))
    results = ""  # the claims table written last: the source of a README's recipe table
    for path in markdown or []:  # a file with a generated block: only its rows are replaced
        text = path.read_text() if path.exists() else ""
        if RECIPES_BEGIN in text:
            text = update_readme(text, results)
        else:
            text = results = update_markdown(text, done)
        path.write_text(text)
        console.print(plain("wrote ", path), soft_wrap=True)
    failed = [f"{v.recipe}: {r.claim.name}" for v in done for r in v.results if not r.passed]
    if failed:
        console.print(Text(f"not reproduced: {', '.join(failed)}", style="red"), soft_wrap=True)
        raise typer.Exit(1)


def _print(v, wall: float) -> None:
    seeds = f"{v.seeds[0]}..{v.seeds[-1]}" if v.seeds else "none"
    where = f"sweep {v.sweep_id}, " if v.sweep_id else "a study, "
    console.print(
        Text(f"{v.recipe}: {len(v.seeds)} seeds ({seeds}), {where}{wall:.0f} s"),
        soft_wrap=True,
    )
    if v.note:
        console.print(Text(f"  {v.note}", style="yellow"), soft_wrap=True)
    for r in v.results:
        style = "green" if r.passed and r.claim.kind == "reproduces" else None
        style = "red" if not r.passed else style
        console.print(Text("  " + r.line(), style=style or ""), soft_wrap=True)
    if v.failed_runs:
        console.print(Text(f"  runs that did not finish: {', '.join(v.failed_runs)}"))
