"""Report panels of the generalisation studies: the double-descent curve (test error against
width, Nakkiran et al. 2019 Fig. 1 / Advani & Saxe 2017) and the intrinsic-dimension curve
(performance against subspace dimension, Li et al. 2018 Fig. 2), drawn from what the studies
measured (:mod:`learnscope.studies.double_descent`, :mod:`learnscope.studies.intrinsic_dim`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from learnscope.report.plots import literal_text, readable_log

_WIDTH = re.compile(r"^test_loss(?P<wd>_wd)?/w(?P<width>\d+)$")


def width_curve(values: dict[str, Any], decayed: bool = False) -> list[tuple[int, float]]:
    """``(width, test loss)`` of one seed's measured values (keys ``test_loss/w{W}``, or
    ``test_loss_wd/w{W}`` with ``decayed``), by width.

    >>> width_curve({"test_loss/w10": 0.3, "test_loss/w2": 1.0, "test_loss_wd/w2": 0.5})
    [(2, 1.0), (10, 0.3)]
    """
    out = []
    for key, value in values.items():
        m = _WIDTH.match(key)
        if m and bool(m.group("wd")) == decayed and value is not None:
            out.append((int(m.group("width")), float(value)))
    return sorted(out)


@literal_text
def double_descent_figure(
    results: Sequence[dict[str, Any]], labels: Sequence[str] | None = None
) -> Figure | None:
    """Test loss against width (log x, log y), one solid line per seed without weight decay and
    a dashed one with it, and the interpolation threshold (``threshold_width``) as a vertical
    line. ``results``: one dict per seed as :func:`~learnscope.studies.double_descent.measure`
    returns it. ``None`` when no result holds a curve."""
    curves = [(width_curve(r), width_curve(r, True)) for r in results]
    if not any(plain for plain, _ in curves):
        return None
    labels = list(labels or [f"seed {i}" for i in range(len(results))])
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, ((plain, decayed), label) in enumerate(zip(curves, labels)):
        colour = f"C{i % 10}"
        if plain:
            ax.plot(*zip(*plain), "-o", color=colour, ms=3, label=f"{label}")
        if decayed:
            ax.plot(*zip(*decayed), "--", color=colour, alpha=0.7, label=f"{label}, weight decay")
    thresholds = {r.get("threshold_width") for r in results if r.get("threshold_width")}
    for t in sorted(thresholds):
        ax.axvline(float(t), color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    readable_log(ax.xaxis)
    readable_log(ax.yaxis)
    ax.set_xlabel("width (log); dotted: parameters = training samples")
    ax.set_ylabel("test loss (log)")
    ax.set_title("model-wise double descent", fontsize=9)
    ax.legend(fontsize=7)
    return fig


@literal_text
def intrinsic_dim_figure(
    curve: Sequence[tuple[int, float]],
    full: float,
    target: float,
    d_int: int | None,
    metric: str = "test_acc",
) -> Figure | None:
    """Performance against subspace dimension ``d`` (log x) from one search's ``(d, value)``
    trials, the full model's value and the target (90 %) as horizontal lines, and ``d_int``
    marked. ``None`` for an empty curve."""
    if not curve:
        return None
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    dims, values = zip(*sorted(curve))
    ax.plot(dims, values, "-o", ms=4, color="C0", label="subspace runs")
    ax.axhline(full, color="black", lw=1, label="full model")
    ax.axhline(target, color="grey", ls="--", lw=1, label="target")
    if d_int is not None:
        ax.axvline(d_int, color="C3", ls=":", label=f"d_int = {d_int}")
    ax.set_xscale("log")
    readable_log(ax.xaxis)
    ax.set_xlabel("subspace dimension d (log)")
    ax.set_ylabel(metric)
    ax.set_title("intrinsic dimension", fontsize=9)
    ax.legend(fontsize=7)
    return fig
