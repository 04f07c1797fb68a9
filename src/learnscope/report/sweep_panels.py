"""Panels of a sweep's report (issue 30, "Must show: report panels"):

- ``curve``: the spec's ``show.curve: {x, y, logx}``: ``y`` (a summary key, or a metric's last
  value) against ``x`` (a config path), the mean over seeds as a line and each seed's points,
  one line per value of the other varying axes. Members without ``x`` (the full model of
  ``learnscope intrinsic-dim``, which records its search as a sweep) are the *reference*: their
  mean ``y`` is a horizontal line, and ``show.curve.target: f`` draws ``f`` times it (Li et al.
  2018's 90 % line). The double-descent sweep draws test loss against width this way (Nakkiran
  et al. 2019 Fig. 1; Advani & Saxe 2017).
- ``taus``: drawn by :func:`learnscope.report.taus.taus_figure` from the taus that
  :func:`learnscope.studies.gen_measures.cached_taus` reads off the members' cached measures.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from learnscope.dotted import flatten
from learnscope.report.plots import literal_text, readable_log

#: config paths that never make a line of their own (the seeds, the names)
SKIP = {"name", "description", "seed", "task.seed"}


def curve_cells(runs: list, x: str, y: str, final_value) -> tuple[pd.DataFrame, str]:
    """One row per run: ``x`` (NaN for a reference member without it), ``y``, ``seed`` and
    ``line`` (the other varying axes' values, ``""`` when none vary); and the config path
    ``x`` resolved (an axis may be named by its last dotted part, ``width``)."""
    flats = [flatten(r.config) for r in runs]
    if not any(x in f for f in flats):
        hits = {k for f in flats for k in f if k.endswith("." + x)}
        x = hits.pop() if len(hits) == 1 else x
    has_x = [f for f in flats if f.get(x) is not None]
    keys = dict.fromkeys(k for f in has_x for k in f)
    lines = [
        k for k in keys if k not in SKIP and k != x and len({repr(f.get(k)) for f in has_x}) > 1
    ]
    rows = []
    for r, f in zip(runs, flats):
        value = final_value(r, y)
        rows.append(
            {
                "x": pd.to_numeric(f.get(x), errors="coerce"),
                "y": pd.to_numeric(value, errors="coerce"),
                "seed": f.get("seed"),
                "line": ", ".join(f"{k.split('.')[-1]}={f.get(k)}" for k in lines),
            }
        )
    return pd.DataFrame(rows, columns=["x", "y", "seed", "line"]), x


@literal_text
def curve_figure(
    cells: pd.DataFrame,
    x: str,
    y: str,
    logx: bool = False,
    logy: bool = False,
    target: float | None = None,
    title: str = "",
) -> Figure | None:
    """``y`` against ``x`` from :func:`curve_cells`: per line, the mean over its seeds at each
    ``x`` (solid, markers) and every seed's point (small, faint); the reference members' mean
    ``y`` (no ``x``) as a black horizontal line and ``target`` times it dashed. ``None`` when
    no member has both values."""
    points = cells.dropna(subset=["x", "y"])
    if points.empty:
        return None
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, (line, part) in enumerate(points.groupby("line", sort=False)):
        colour = f"C{i % 10}"
        mean = part.groupby("x")["y"].mean().sort_index()
        seeds = part["seed"].nunique()
        label = (line or y) + (f" (mean of {seeds} seeds)" if seeds > 1 else "")
        ax.plot(mean.index, mean.values, "-o", ms=4, color=colour, label=label)
        if seeds > 1:
            ax.scatter(part["x"], part["y"], s=10, color=colour, alpha=0.35, zorder=3)
    ref = cells[cells["x"].isna()]["y"].dropna()
    if len(ref):
        full = float(ref.mean())
        ax.axhline(full, color="black", lw=1, label=f"without {x}: {full:.4g}")
        if target is not None:
            ax.axhline(
                target * full,
                color="grey",
                ls="--",
                lw=1,
                label=f"{target:.0%} of it: {target * full:.4g}",
            )
    if logx:
        ax.set_xscale("log")
        readable_log(ax.xaxis)
    if logy and (points["y"] > 0).all():
        ax.set_yscale("log")
        readable_log(ax.yaxis)
    ax.set_xlabel(x + (" (log)" if logx else ""))
    ax.set_ylabel(y + (" (log)" if logy else ""))
    ax.set_title(title or f"{y} against {x}", fontsize=9)
    ax.legend(fontsize=7)
    return fig
