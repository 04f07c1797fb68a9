"""The generalisation measures' report panel: each measure's Kendall tau with the generalisation
gap over a sweep, overall and granulated (Jiang et al. 2020, "Fantastic generalization measures
and where to find them", their Table 1 drawn as bars), from the table of
:meth:`learnscope.studies.gen_measures.Correlation.table` (index: the measures; columns ``tau``,
``Psi``, one ``psi_i`` column per axis, ``same_sign``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from learnscope.report.plots import literal_text


@literal_text
def taus_figure(table: pd.DataFrame, axes: list[str], target: str = "gap") -> Figure | None:
    """Horizontal bars per measure: the overall tau and the granulated ``Psi``; each axis's
    ``psi_i`` as a dot; a measure whose ``psi_i`` all share one sign is starred. ``None`` for
    an empty table."""
    if not len(table):
        return None
    names = list(table.index)
    y = np.arange(len(names))
    fig = Figure(figsize=(7.5, 0.38 * len(names) + 1.6), layout="constrained")
    ax = fig.add_subplot()
    h = 0.38
    ax.barh(
        y - h / 2,
        table["tau"].astype(float).fillna(0),
        h,
        label="tau (all members)",
        color="tab:blue",
    )
    ax.barh(
        y + h / 2,
        table["Psi"].astype(float).fillna(0),
        h,
        label="Psi (granulated)",
        color="tab:orange",
    )
    markers = "osD^v<>p"
    for i, axis in enumerate(axes):
        vals = table[axis].astype(float)
        ok = vals.notna().to_numpy()
        ax.scatter(
            vals[ok],
            y[ok] + h / 2,
            s=14,
            marker=markers[i % len(markers)],
            color="black",
            alpha=0.7,
            zorder=3,
            label=f"psi: {axis.split('.')[-1]}",
        )
    labels = [f"{n} *" if bool(table.loc[n, "same_sign"]) else n for n in names]
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlim(-1.05, 1.05)  # a tau lies in [-1, 1]
    ax.set_xlabel(f"Kendall tau with {target}")
    ax.set_title(f"generalisation measures vs {target} (* same sign under every axis)", fontsize=9)
    fig.legend(fontsize=7, loc="outside lower center", ncols=4)
    return fig
