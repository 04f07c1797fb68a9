"""``learnscope coord-check``: the coordinate check of a recipe across widths (TP5, ``mup``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from learnscope.cli.common import RunsDir, cell, check_recipe, console, fail, plain, table
from learnscope.errors import UserError
from learnscope.store import Store

#: a site whose |slope| of log2 mean|x| against log2 width is above this is "not flat"
FLAT = 0.2


def _widths(text: str) -> list[int]:
    try:
        return [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        fail(f"--widths: comma-separated integers like 64,128,256 (got {text!r})")
        raise  # unreachable: fail exits


def coord_check(
    recipe: Annotated[str, typer.Argument(help="a built-in recipe name or a YAML file")],
    widths: Annotated[str, typer.Option(help="comma-separated widths")] = "64,128,256,512,1024",
    steps: Annotated[int, typer.Option(help="training steps at each width")] = 5,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override: key.path=value")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="the plot (PNG)")] = Path(
        "coord-check.png"
    ),
    backend: Annotated[str, typer.Option(help="local or ray (the check is a sweep)")] = "local",
    resume: Annotated[
        str | None, typer.Option(help="continue this coordinate-check sweep (id, prefix, last)")
    ] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Train RECIPE for a few steps at each width and print mean |x| of every activation
    site against width (one line per site), with its slope per doubling of width; flat
    (|slope| <= 0.2) under μP, growing under the standard parametrisation with Adam."""
    from learnscope.config import load_config
    from learnscope.report.build import png
    from learnscope.report.plots import coord_check as plot
    from learnscope.studies.coord import coord_check as run_check
    from learnscope.studies.coord import slopes

    if not out.parent.is_dir():
        fail(f"--out: directory {out.parent} does not exist")
    try:
        check_recipe(recipe)
        cfg = load_config(recipe, list(set_ or []))
        data, sweep_id = run_check(
            cfg, _widths(widths), steps, Store(runs_dir), backend=backend, resume=resume
        )
    except UserError as err:
        fail(str(err))
    last = int(data["step"].max())
    slope = slopes(data, last)
    at = data[data["step"] == last].pivot_table(index="site", columns="width", values="value")
    at = at.reindex(list(dict.fromkeys(data["site"])))
    param = cfg.model.params.get("param", "standard")
    title = f"{cfg.name}: mean |x| after {last} steps ({param}, {cfg.train.optimizer})"
    view = table("site", *[f"w {w}" for w in at.columns], "slope", "flat", title=title)
    view.columns[0].no_wrap = True
    for site, row in at.iterrows():
        s = slope.get(site)
        flat = s == s and abs(s) <= FLAT
        view.add_row(
            Text(str(site)),
            *[cell(v) for v in row.tolist()],
            cell(round(s, 3) + 0.0 if s == s else None),
            Text("yes", style="green") if flat else Text("no", style="red"),
        )
    console.print(view)
    fig = plot(data, f"coordinate check: {cfg.name} ({param}, {cfg.train.optimizer})")
    if fig is not None:
        out.write_bytes(png(fig))
        console.print(plain("plot: ", out))
    console.print(
        Text("runs: ") + Text(f"learnscope report --sweep {sweep_id}", style="bold"),
        soft_wrap=True,
    )
