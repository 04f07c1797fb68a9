"""``learnscope redshift``: the complexity of the functions random MLPs compute on a 2-D grid
(Teney et al. 2024, "Neural redshift"); no training. The computation is
:mod:`learnscope.studies.redshift`."""

from __future__ import annotations

from typing import Annotated

import typer

from learnscope.cli.common import cell, console, fail, plain, table

MAX_WORK = 5 * 10**10  # multiply-adds of one command, at most (a few minutes on one core)


def _floats(text: str, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        fail(f"{option}: a comma-separated list of numbers (got {text!r})")
    if not values:
        fail(f"{option}: a comma-separated list of numbers (got {text!r})")
    return values


def redshift(
    activation: Annotated[
        str, typer.Option(help="comma-separated: relu, gelu, swish, tanh, sin, gaussian")
    ] = "relu,tanh",
    depth: Annotated[str, typer.Option(help="comma-separated hidden-layer counts")] = "1,4",
    width: Annotated[int, typer.Option(help="units per hidden layer")] = 64,
    scale: Annotated[
        str, typer.Option(help="comma-separated weight scales: std scale / sqrt(fan_in + 1)")
    ] = "1,4",
    nets: Annotated[int, typer.Option(help="random networks per row")] = 20,
    grid: Annotated[int, typer.Option(help="points per side of the input grid")] = 64,
    seed: Annotated[int, typer.Option(help="seed of the weights")] = 0,
) -> None:
    """Sample random MLPs (activation x depth x weight scale), evaluate them on a 2-D grid
    and print the mean frequency of the function's spectrum and the zlib-compressed size
    of its sign pattern (Teney et al. 2024: ReLU stays simple, tanh-like activations grow
    complex with the weight scale and the depth)."""
    from learnscope.errors import UserError
    from learnscope.studies.redshift import (
        ACTIVATIONS,
        check_options,
        random_functions,
        white_noise_frequency,
    )

    acts = [a.strip() for a in activation.split(",") if a.strip()]
    bad = [a for a in acts if a not in ACTIVATIONS]
    if bad or not acts:
        fail(f"--activation: {bad[0] if bad else activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    depths = _floats(depth, "--depth")
    if any(d != int(d) or not 1 <= d <= 64 for d in depths):
        fail(f"--depth: integers in [1, 64] (got {depth!r})")
    scales = _floats(scale, "--scale")
    if not 0 <= seed < 2**63:
        fail(f"--seed: must be in [0, 2^63) (got {seed})")
    options = {
        "activations": acts,
        "depths": [int(d) for d in depths],
        "scales": scales,
        "width": width,
        "nets": nets,
        "grid": grid,
    }
    try:
        opts = check_options(options)
    except UserError as err:  # the option names of the study, as the CLI's
        msg = str(err).replace("options.", "--").replace("--activations", "--activation")
        fail(msg.replace("--depths", "--depth").replace("--scales", "--scale"))
    work = len(acts) * len(depths) * len(scales) * nets * grid**2 * max(depths) * width**2
    if work > MAX_WORK:
        fail(f"--nets, --grid, --width, --depth: about {work:.1e} multiply-adds; at most 5e10")

    console.print(
        plain(
            f"redshift: random MLPs, width {width}, {nets} nets per row, {grid}x{grid} grid of "
            f"(-1, 1)^2; white noise has mean frequency {white_noise_frequency(grid):.2f}"
        ),
        soft_wrap=True,
    )
    out = table(
        "activation",
        "depth",
        "scale",
        "mean freq",
        "(std)",
        "sign zlib",
        "(std)",
        title="complexity of random functions (mean over nets)",
    )
    i = 0
    for a in opts["activations"]:
        for d in opts["depths"]:
            for s in opts["scales"]:
                r = random_functions(a, d, width, s, nets, grid, seed * 1000 + i)
                i += 1
                out.add_row(
                    cell(a),
                    cell(d),
                    cell(f"{s:g}"),
                    cell(f"{r['freq']:.2f}"),
                    cell(f"{r['freq_std']:.2f}"),
                    cell(f"{r['sign_zlib']:.3f}"),
                    cell(f"{r['sign_zlib_std']:.3f}"),
                )
    console.print(out)


app = typer.Typer()  # for tests that call the command alone
app.command()(redshift)
