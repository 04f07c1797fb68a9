"""``learnscope criticality``: the phase diagram of deep random MLPs read off partial Jacobians
(Doshi, He & Gromov 2023); no training. The computation is
:mod:`learnscope.studies.criticality`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from learnscope.cli.common import cell, console, fail, plain, table

ACTS = ("relu", "tanh", "gelu")
#: standard weights held at once, at most (float64: 800 MB)
MAX_WEIGHTS = 10**8
MAX_CELLS = 20_000


def _check(
    act: str,
    depth: int,
    width: int,
    sigma_w2: tuple[float, float],
    points: int,
    sigma_b: float,
    b_points: int,
    rows: int,
    n_proj: int,
) -> None:
    """Every argument in its range, or one line naming it and exit code 2."""
    if act not in ACTS:
        fail(f"--act: {act!r}; allowed: {', '.join(ACTS)}")
    if not 3 <= depth <= 1000:
        fail(f"--depth: must be in [3, 1000] (got {depth})")
    if not 2 <= width <= 4096:
        fail(f"--width: must be in [2, 4096] (got {width})")
    if depth * width**2 > MAX_WEIGHTS:
        fail(f"--depth, --width: depth x width^2 = {depth * width**2:,} weights; at most 10^8")
    lo, hi = sigma_w2
    if not 0 < lo < hi <= 100:
        fail(f"--sigma-w2: need 0 < MIN < MAX <= 100 (got {lo} {hi})")
    if not 2 <= points <= 400:
        fail(f"--points: must be in [2, 400] (got {points})")
    if not 0 <= sigma_b <= 10:
        fail(f"--sigma-b: must be in [0, 10] (got {sigma_b})")
    if not 1 <= b_points <= 100 or (b_points > 1 and sigma_b == 0):
        fail(f"--b-points: must be in [1, 100], and 1 when --sigma-b is 0 (got {b_points})")
    if points * b_points > MAX_CELLS:
        fail(f"--points, --b-points: {points * b_points} cells; at most {MAX_CELLS}")
    if not 1 <= rows <= 4096:
        fail(f"--rows: must be in [1, 4096] (got {rows})")
    if not 1 <= n_proj <= 256:
        fail(f"--n-proj: must be in [1, 256] (got {n_proj})")


def criticality(
    act: Annotated[str, typer.Option(help="activation: relu, tanh or gelu")] = "relu",
    depth: Annotated[int, typer.Option(help="layers L")] = 50,
    width: Annotated[int, typer.Option(help="neurons per layer N")] = 128,
    layernorm: Annotated[
        bool, typer.Option("--layernorm", help="LayerNorm on the pre-activations")
    ] = False,
    sigma_w2: Annotated[
        tuple[float, float], typer.Option(help="range of sigma_w^2 scanned: MIN MAX")
    ] = (0.5, 4.0),
    points: Annotated[int, typer.Option(help="values of sigma_w^2 in the range")] = 36,
    sigma_b: Annotated[float, typer.Option(help="largest sigma_b scanned (from 0)")] = 0.5,
    b_points: Annotated[int, typer.Option(help="values of sigma_b, 0 included")] = 6,
    rows: Annotated[int, typer.Option(help="inputs x ~ N(0, I) the APJN is averaged over")] = 16,
    n_proj: Annotated[int, typer.Option(help="random vectors per APJN estimate")] = 8,
    seed: Annotated[int, typer.Option(help="seed of the weights and inputs")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="phase diagram PNG (default criticality-ACT[-ln].png)")
    ] = None,
) -> None:
    """Scan (sigma_w^2, sigma_b) of a deep random MLP, measure the APJN between its first and
    last layers and chi_J, draw the phase diagram and print the critical point (Doshi, He &
    Gromov 2023)."""
    _check(act, depth, width, sigma_w2, points, sigma_b, b_points, rows, n_proj)
    if not 0 <= seed < 2**63:
        fail(f"--seed: must be in [0, 2^63) (got {seed})")
    out = out or Path(f"criticality-{act}{'-ln' if layernorm else ''}.png")
    if out.suffix.lower() != ".png" or (out.parent != Path("") and not out.parent.is_dir()):
        fail(f"--out: {out} must be a .png file in an existing directory")

    import numpy as np

    from learnscope.report.plots import criticality as draw
    from learnscope.studies.criticality import scan

    sw2 = np.linspace(sigma_w2[0], sigma_w2[1], points).tolist()
    sb = np.linspace(0.0, sigma_b, b_points).tolist() if b_points > 1 else [0.0]
    result = scan(act, depth, width, sw2, sb, layernorm, rows, n_proj, seed=seed)

    what = f"{act}{' + LayerNorm' if layernorm else ''}"
    console.print(
        plain(
            f"criticality: {what} MLP, depth {depth}, width {width}, {rows} inputs; chi_J = "
            f"(J^{{L-{result.window},L}})^(1/{result.window}), J^{{1,L}} first to last layer"
        ),
        soft_wrap=True,
    )
    out_table, measured, line = _critical_table(result, sigma_w2)
    console.print(out_table)
    fig = draw(
        result.sigma_w2,
        result.sigma_b,
        result.apjn,
        measured,
        line,
        f"{what}, depth {depth}, width {width}",
    )
    fig.savefig(out, dpi=120)
    _print_critical_point(result, sigma_w2)
    console.print(plain("wrote ", out))


Point = tuple[float, float]  # (sigma_w^2, sigma_b)


def _critical_table(
    result, sigma_w2: tuple[float, float]
) -> tuple[Table, list[Point], list[Point]]:
    """Per sigma_b of the scan (a :class:`learnscope.studies.criticality.Scan`): where chi_J
    and J^{1,L} cross 1 and the mean-field prediction, as a table; and the points to draw on
    the phase diagram: the measured crossings of chi_J, the mean-field ones in the range."""
    out_table = table(
        "sigma_b",
        "sigma_w^2 at chi_J = 1",
        "sigma_w^2 at J^{1,L} = 1",
        "mean field",
        "chi_J range",
        title="critical sigma_w^2 per sigma_b (measured; '-': no crossing in the range)",
    )
    measured, line = [], []
    for i, b in enumerate(result.sigma_b):
        found, theory = result.crossing(i), result.theory(i)
        if found is not None:
            measured.append((found, float(b)))
        if theory is not None and sigma_w2[0] <= theory <= sigma_w2[1]:
            line.append((theory, float(b)))
        out_table.add_row(
            cell(float(b)),
            cell(found),
            cell(result.crossing(i, "apjn")),
            cell(theory),
            Text(f"{result.chi[i].min():.3g} .. {result.chi[i].max():.3g}"),
        )
    return out_table, measured, line


def _print_critical_point(result, sigma_w2: tuple[float, float]) -> None:
    """The critical sigma_w^2 at sigma_b = 0, or why there is none in the scanned range."""
    critical = result.crossing(0)
    if critical is not None:
        console.print(f"sigma_w^2 = {critical:.3f}")
        return
    chi = result.chi[0]
    console.print(
        plain(
            f"no critical point at sigma_b = 0 in sigma_w^2 {sigma_w2[0]:g} .. "
            f"{sigma_w2[1]:g}: chi_J from {chi.min():.3g} to {chi.max():.3g}"
        ),
        soft_wrap=True,
    )
