"""``learnscope double-descent``: the model-wise double-descent curve of the study spec
``double-descent`` at one seed (``learnscope.studies.double_descent``; each width a stored
run), printed as a table, with the peak and, with ``--plot``, the report panel."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from learnscope.cli.common import RunsDir, cell, console, table, user_errors
from learnscope.errors import UserError
from learnscope.store import Store


def double_descent(
    seed: Annotated[int, typer.Option(help="data, features and init seed")] = 0,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="study option: key=value (e.g. widths=[10,100,1000])"),
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="save the curve as an image (.png)")] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Test loss against width at fixed data, with and without weight decay: the peak at the
    interpolation threshold (parameters = training samples) and where weight decay leaves it."""
    from learnscope.config import load_yaml
    from learnscope.report.curves import double_descent_figure, width_curve
    from learnscope.studies.double_descent import measure
    from learnscope.studies.study import load_study

    with user_errors():
        if seed < 0:
            raise UserError(f"--seed: must be >= 0 (got {seed})")
        if plot is not None and plot.suffix.lower() not in (".png", ".pdf", ".svg"):
            raise UserError(f"--plot: {plot} must end in .png, .pdf or .svg")
        options = dict(load_study("double-descent").options)
        for item in option or []:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise UserError(f"--option: expected key=value (got {item!r})")
            options[key.strip()] = load_yaml(raw, f"--option {key.strip()}")
        store = Store(runs_dir)
        out = measure(options, seed, store)
    plain, decayed = dict(width_curve(out)), dict(width_curve(out, True))
    grid = table("width", "test loss", "with weight decay", "train loss", title="double descent")
    for w in sorted(plain):
        grid.add_row(
            cell(w), cell(round(plain[w], 4)), cell(round(decayed.get(w, float("nan")), 4)),
            cell(round(out[f"train_loss/w{w}"], 5)),
        )  # fmt: skip
    console.print(grid)
    offset = out["peak_offset"]
    where = "no peak" if offset == float("inf") else f"|log2(peak / threshold)| = {offset:.2f}"
    console.print(
        Text(
            f"peak at width {out['peak_width']:.0f} (test loss {out['peak_test_loss']:.4g}, "
            f"{out['peak_height']:.2f}x the ends); interpolation threshold "
            f"{out['threshold_width']:.4g}; {where}; with weight decay "
            f"{out['peak_test_loss_wd']:.4g}",
            style="bold",
        ),
        soft_wrap=True,
    )
    if plot is not None:
        fig = double_descent_figure([out], [f"seed {seed}"])
        with user_errors():
            try:
                fig.savefig(plot, dpi=120)
            except OSError as err:
                raise UserError(f"--plot: cannot write {plot}: {err.strerror}") from None
        console.print(f"plot: {plot}")
