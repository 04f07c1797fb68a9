"""The report's figures: pure functions from metric tables (and weights) to matplotlib figures.

Each function takes a list of :class:`Series` (one run's wide metric table, its events, its
label and colour) and returns a figure, or ``None`` when the runs hold no data for it; the
caller then leaves the panel out with a note. Matplotlib runs on the Agg backend (no display).

Every text a figure draws (run names, config values, site names) is literal: mathtext is off
inside these functions, so a run named ``$\\foo$`` is drawn as typed instead of failing. The
tick labels of log axes are therefore plain numbers (``0.001``, ``10``, ``1e4``:
:class:`PlainLogFormatter`), never matplotlib's mathtext ``10^{n}``, which would print raw.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FuncFormatter,
    Locator,
    LogFormatter,
    NullFormatter,
    NullLocator,
)

from learnscope.probes.names import is_probe_metric  # noqa: E402

SPLIT_STYLES = {"train": "-", "test": "--", "train_clean": ":", "train_corrupted": "-."}
EVENT_COLOURS = {
    "grokking": "tab:green",
    "slingshot": "tab:orange",
    "divergence": "tab:red",
    "attention_collapse": "tab:purple",
    "rank_collapse": "tab:brown",
    "structure_onset": "tab:cyan",
}
_HEAD = re.compile(r"^attention_entropy/(?P<site>.+)/h(?P<head>\d+)$")


def literal_text(fn: Callable[..., Figure | None]) -> Callable[..., Figure | None]:
    """Draw ``fn``'s figure with mathtext off: ``$`` in a label is a dollar sign (each text
    keeps the setting it was created with, so saving later draws it the same way). Log axes
    then need :func:`readable_log` (or :func:`log_steps`): their default labels are mathtext.
    Marks ``fn`` as one of the report's figures (``.literal``; the tests draw each one)."""

    @functools.wraps(fn)
    def drawn(*args, **kwargs):
        with plt.rc_context({"text.parse_math": False}):
            return fn(*args, **kwargs)

    drawn.literal = True  # type: ignore[attr-defined]
    return drawn


@dataclass
class Series:
    """One run as the plots see it."""

    run_id: str
    label: str
    colour: Any
    table: pd.DataFrame
    events: list[dict[str, Any]] = field(default_factory=list)  # {"kind", "step", "data"}
    splits: list[str] = field(default_factory=list)


def figure(rows: int = 1, cols: int = 1, width: float = 7.5, height: float = 3.4, runs=1):
    """A grid of axes; wider for several runs, whose legend goes to the right."""
    width = width + (3.5 if runs > 1 else 0)
    fig, axes = plt.subplots(rows, cols, figsize=(width, height * rows), squeeze=False)
    return fig, axes


def legend(ax, runs: list[Series], **kw) -> None:
    """In the axes for one run; to the right of them for several (long config labels)."""
    if len(runs) > 1:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=7, **kw)


def plain_number(x: float) -> str:
    """A tick value as plain text: from ``0.001`` to ``9999`` as written, beyond that in short
    e-notation.

    >>> [plain_number(v) for v in (0, 1e-5, 0.002, 1, 30, 1000, 1e4, 2.5e6, -0.1)]
    ['0', '1e-5', '0.002', '1', '30', '1000', '1e4', '2.5e6', '-0.1']
    """
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    e = math.floor(math.log10(abs(x)) + 1e-9)
    if -3 <= e <= 3:
        return f"{x:.4g}"
    return f"{x / 10.0**e:.3g}e{e}"


class PlainLogFormatter(LogFormatter):
    """Matplotlib's :class:`~matplotlib.ticker.LogFormatter` (the same choice of which ticks get
    a label: decades, and some ticks between them on a short axis) with :func:`plain_number`
    labels: mathtext such as ``$\\mathdefault{10^{2}}$`` is off in these figures and would
    print as typed."""

    def __call__(self, x, pos=None):
        s = super().__call__(x, pos)
        return self.fix_minus("-" + s) if s and x < 0 else s

    def _num_to_string(self, x, vmin, vmax):
        return plain_number(x)


def readable_log(axis) -> None:
    """Plain-number labels on a log ``axis`` (call after setting the scale, which resets them):
    every major tick, and the minor ticks matplotlib would label (an axis of few decades)."""
    axis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1e9, 1e9)))
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


class StepTicks(Locator):
    """The major ticks of the step axis (symlog with linear threshold ``linthresh``, the first
    recorded step after 0): 0, ``linthresh`` when the next power of ten is well clear of it,
    and the powers of ten from ``linthresh`` up, at most ``numticks`` of them (every other
    decade, ... on a long run); no tick inside the linear stretch, where it would sit on top
    of the 0. An axis that reaches no power of ten gets 0, ``linthresh`` and a round step near
    the end."""

    def __init__(self, linthresh: float, numticks: int = 7) -> None:
        self.linthresh, self.numticks = linthresh, numticks

    def __call__(self):
        return self.tick_values(*self.axis.get_view_interval())

    def tick_values(self, vmin, vmax):
        """
        >>> StepTicks(1).tick_values(-5, 3500)
        [0.0, 1.0, 10.0, 100.0, 1000.0]
        >>> StepTicks(20).tick_values(-5, 3500), StepTicks(5).tick_values(-5, 3500)
        ([0.0, 20.0, 100.0, 1000.0], [0.0, 10.0, 100.0, 1000.0])
        >>> StepTicks(1).tick_values(0, 2e7)
        [0.0, 1.0, 100.0, 10000.0, 1000000.0]
        >>> StepTicks(20).tick_values(0, 90)
        [0.0, 20.0, 50.0]
        """
        vmin, vmax = sorted((vmin, vmax))
        ticks = [0.0] if vmin <= 0 <= vmax else []
        if vmax <= 0:
            return ticks
        lo = math.ceil(math.log10(max(self.linthresh, vmin)) - 1e-9)
        hi = math.floor(math.log10(vmax) + 1e-9)
        decades = list(range(lo, hi + 1))
        stride = max(1, math.ceil(len(decades) / max(self.numticks - 1, 1)))
        if decades and vmin <= self.linthresh and 10.0 ** decades[0] >= 3 * self.linthresh:
            ticks.append(float(self.linthresh))
        ticks += [10.0**k for k in decades if (k - lo) % stride == 0]
        if len(decades) < 2:  # a short axis: the first step, a round one near the end
            ticks = [t for t in ticks if t == 0]
            if vmin <= self.linthresh <= vmax:
                ticks.append(float(self.linthresh))
            e = 10.0 ** math.floor(math.log10(vmax))
            end = max(m * e for m in (1, 2, 5) if m * e <= vmax)
            if end >= 2 * self.linthresh:
                ticks.append(end)
        return ticks


def log_steps(ax, tables: list[pd.DataFrame]) -> None:
    """Steps on a log scale; step 0 stays visible on a short linear stretch (symlog). Ticks at
    0 and the powers of ten, labelled ``0``, ``1``, ``10``, ``1000``, ``1e4``
    (:class:`StepTicks`)."""
    steps = np.concatenate([t.index.to_numpy(float) for t in tables if len(t)] or [[1.0]])
    positive = steps[steps > 0]
    linthresh = float(positive.min()) if len(positive) else 1.0
    ax.set_xscale("symlog", linthresh=linthresh)
    ax.xaxis.set_major_locator(StepTicks(linthresh))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: plain_number(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("step (log)")


def mark_events(ax, runs: list[Series], kinds: tuple[str, ...] = tuple(EVENT_COLOURS)) -> None:
    """Vertical lines at events: grokking (fit dotted, generalisation solid), slingshot starts,
    divergence, collapses; one legend entry per kind."""
    labelled: set[str] = set()
    for run in runs:
        for e in run.events:
            kind, data = e["kind"], e["data"]
            if kind not in kinds or e["step"] is None:
                continue
            colour = EVENT_COLOURS[kind] if len(runs) == 1 else run.colour
            name = "fitted" if kind == "grokking" and data.get("test_step") is None else kind
            label = None if name in labelled else name.replace("_", " ")
            labelled.add(name)
            if kind == "grokking":
                ax.axvline(data["train_step"], color=colour, ls=":", lw=1.2, alpha=0.8)
                if data.get("test_step") is not None:
                    ax.axvline(data["test_step"], color=colour, lw=1.4, alpha=0.8, label=label)
            else:
                ax.axvline(e["step"], color=colour, lw=1.0, alpha=0.7, ls="-.", label=label)


@literal_text
def curves(runs: list[Series], metric: str, title: str, logy: bool = False) -> Figure | None:
    """``{split}/{metric}`` for every split, over log-scaled steps, with events marked."""
    fig, axes = figure(runs=len(runs))
    ax, drawn = axes[0, 0], 0
    for run in runs:
        cols = [c for c in run.table.columns if str(c).endswith(f"/{metric}")]
        cols = [c for c in cols if c.split("/")[0] in run.splits or c.startswith("train_step/")]
        for col in cols:
            s = run.table[col].dropna()
            if s.empty:
                continue
            split = col.split("/")[0]
            name = "train (last batch)" if split == "train_step" else split
            label = name if len(runs) == 1 else f"{name} · {run.label}"
            ax.plot(
                s.index,
                s.to_numpy(),
                SPLIT_STYLES.get(split, "-"),
                color=None if len(runs) == 1 else run.colour,
                label=label,
                lw=1.4,
            )
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    log_steps(ax, [r.table for r in runs])
    if logy:
        ax.set_yscale("log")
        readable_log(ax.yaxis)
    mark_events(ax, runs)
    ax.set_title(title)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    legend(ax, runs, ncol=2)
    fig.tight_layout()
    return fig


@literal_text
def overlay(runs: list[Series], metric: str, title: str) -> Figure | None:
    """One metric (a full name such as ``test/acc``) of several runs on one axes, a colour a
    run, over log-scaled steps, with their events marked (``learnscope compare --html``)."""
    fig, axes = figure(runs=len(runs))
    ax, drawn = axes[0, 0], 0
    for run in runs:
        if metric not in run.table.columns or run.table[metric].dropna().empty:
            continue
        s = run.table[metric].dropna()
        ax.plot(s.index, s.to_numpy(), color=run.colour, label=run.label, lw=1.4)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    log_steps(ax, [r.table for r in runs])
    mark_events(ax, runs, ("grokking", "slingshot", "divergence"))
    ax.set_title(title)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    legend(ax, runs)
    fig.tight_layout()
    return fig


LINE_STYLES = ["-", "--", ":", "-."]


def plot_line(ax, s: pd.Series, name: str, run: Series, n_runs: int, i: int) -> None:
    """One series of one layer: coloured by layer for a single run; for several runs coloured by
    run, with the layer told apart by line style."""
    if n_runs == 1:
        ax.plot(s.index, s.to_numpy(), label=name, lw=1.3)
    else:
        style = LINE_STYLES[i % len(LINE_STYLES)]
        ax.plot(
            s.index, s.to_numpy(), style, color=run.colour, lw=1.3, label=f"{name} · {run.label}"
        )


def probe_columns(runs: list[Series]) -> dict[str, list[str]]:
    """Probe name -> its sites, over all runs (per-head attention columns excluded)."""
    found: dict[str, list[str]] = {}
    for run in runs:
        for col in run.table.columns:
            probe, _, site = str(col).partition("/")
            if not is_probe_metric(str(col)) or probe == "attention_entropy":  # drawn per head
                continue
            sites = found.setdefault(probe, [])
            if site not in sites:
                sites.append(site)
    return found


@literal_text
def probe(runs: list[Series], name: str, sites: list[str]) -> Figure | None:
    """One probe over training: a line per site (layer); for a single run with several sites,
    also a heat map site x step."""
    heat = len(runs) == 1 and len(sites) >= 2
    fig, axes = figure(1, 2 if heat else 1, width=11 if heat else 7.5, runs=len(runs))
    ax, drawn = axes[0, 0], 0
    for run in runs:
        for i, site in enumerate(sites):
            col = f"{name}/{site}"
            if col not in run.table:
                continue
            s = run.table[col].dropna()
            if s.empty:
                continue
            plot_line(ax, s, site, run, len(runs), i)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    log_steps(ax, [r.table for r in runs])
    mark_events(ax, runs, ("grokking", "rank_collapse", "slingshot"))
    ax.set_title(f"{name} per layer")
    ax.grid(alpha=0.3)
    legend(ax, runs)
    if heat:
        cols = [f"{name}/{s}" for s in sites if f"{name}/{s}" in runs[0].table]
        grid = runs[0].table[cols].dropna(how="all")
        hx = axes[0, 1]
        im = hx.imshow(
            grid.T.to_numpy(float), aspect="auto", interpolation="nearest", cmap="viridis"
        )
        hx.set_yticks(range(len(cols)), [c.split("/", 1)[1] for c in cols], fontsize=7)
        ticks = np.linspace(0, len(grid) - 1, min(6, len(grid))).round().astype(int)
        hx.set_xticks(ticks, [str(grid.index[t]) for t in ticks])
        hx.set_xlabel("step")
        hx.set_title(f"{name}: layer x step")
        fig.colorbar(im, ax=hx)
    fig.tight_layout()
    return fig


@literal_text
def attention_heads(runs: list[Series]) -> Figure | None:
    """Attention entropy per head over training, one subplot per attention site; the collapse
    threshold ``fraction * log(context)`` dashed where a collapse event carries it."""
    sites: dict[str, set[int]] = {}
    for run in runs:
        for col in run.table.columns:
            if m := _HEAD.match(str(col)):
                sites.setdefault(m["site"], set()).add(int(m["head"]))
    if not sites:
        return None
    fig, axes = figure(len(sites), 1, height=3.0, runs=len(runs))
    cmap = plt.get_cmap("tab10")
    for ax, (site, heads) in zip(axes[:, 0], sorted(sites.items())):
        for run in runs:
            for h in sorted(heads):
                col = f"attention_entropy/{site}/h{h}"
                if col in run.table:
                    s = run.table[col].dropna()
                    colour = cmap(h % 10) if len(runs) == 1 else run.colour
                    label = f"h{h}" if len(runs) == 1 else f"h{h} · {run.label}"
                    ax.plot(s.index, s.to_numpy(), color=colour, lw=1.2, label=label)
        for run in runs:
            for e in run.events:
                if e["kind"] == "attention_collapse" and e["data"].get("site") == site:
                    ax.axhline(e["data"]["threshold"], color="tab:purple", ls="--", lw=1)
                    ax.axvline(e["step"], color="tab:purple", ls="-.", lw=1)
        log_steps(ax, [r.table for r in runs])
        ax.set_title(f"attention entropy per head: {site}")
        ax.set_ylabel("nats")
        ax.grid(alpha=0.3)
        legend(ax, runs, ncol=4)
    fig.tight_layout()
    return fig


@literal_text
def weight_norms(runs: list[Series]) -> Figure | None:
    """``weight_norm/*`` per parameter (log y), slingshot cycles shaded from start to end."""
    fig, axes = figure(runs=len(runs))
    ax, drawn = axes[0, 0], 0
    for run in runs:
        cols = [c for c in run.table.columns if str(c).startswith("weight_norm/")]
        for i, col in enumerate(cols):
            s = run.table[col].dropna()
            s = s[np.isfinite(s.to_numpy(float))]
            if s.empty:
                continue
            name = col.removeprefix("weight_norm/")
            plot_line(ax, s, name, run, len(runs), i)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    shaded = False
    for run in runs:
        for e in run.events:
            if e["kind"] == "slingshot":
                ax.axvspan(
                    e["step"],
                    e["data"].get("end_step", e["step"]),
                    color="tab:orange",
                    alpha=0.25,
                    label=None if shaded else "slingshot cycle",
                )
                shaded = True
    log_steps(ax, [r.table for r in runs])
    ax.set_yscale("log")
    readable_log(ax.yaxis)
    ax.set_title("weight norms ||W||_F" + (" (slingshot cycles shaded)" if shaded else ""))
    ax.grid(alpha=0.3)
    legend(ax, runs)
    fig.tight_layout()
    return fig


@literal_text
def fourier(spectra: list[tuple[Series, np.ndarray]]) -> Figure | None:
    """Mean Fourier power per frequency of the first-layer weights (``fourier_power``,
    normalised per neuron, averaged over neurons), one line (or bars) per run."""
    if not spectra:
        return None
    single = len(spectra) == 1
    fig, axes = figure(1, 2 if single else 1, width=11 if single else 7.5)
    ax = axes[0, 0]
    if single:  # each neuron's spectrum, neurons sorted by their strongest frequency
        power = spectra[0][1]
        order = np.lexsort((-power.max(0), power.argmax(0)))
        hx = axes[0, 1]
        im = hx.imshow(
            power[:, order], aspect="auto", interpolation="nearest", cmap="magma", origin="lower"
        )
        hx.set_xlabel("neuron (sorted by strongest frequency)")
        hx.set_ylabel("frequency k")
        hx.set_title("power per neuron")
        fig.colorbar(im, ax=hx)
    for run, power in spectra:
        k = np.arange(power.shape[0])
        mean = power.mean(1)
        if len(spectra) == 1:
            ax.bar(k, mean, color="tab:blue", width=0.8)
        else:
            ax.plot(k, mean, "o-", ms=3, color=run.colour, label=run.label, lw=1)
    ax.set_xlabel("frequency k")
    ax.set_ylabel("power (per neuron, normalised)")
    ax.set_title("mean power over neurons")
    ax.grid(alpha=0.3)
    if len(spectra) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@literal_text
def ipr_histogram(iprs: list[tuple[Series, np.ndarray]], p: int | None = None) -> Figure | None:
    """Histogram of the neurons' IPR at the last step (1: one frequency, generalising;
    ~2/p: flat spectrum, memorising; Doshi et al. 2024)."""
    if not iprs:
        return None
    fig, axes = figure()
    ax = axes[0, 0]
    bins = np.linspace(0, 1, 41)
    for run, values in iprs:
        colour = "tab:blue" if len(iprs) == 1 else run.colour
        ax.hist(
            values, bins=bins, color=colour, alpha=0.6 if len(iprs) > 1 else 0.9, label=run.label
        )
    if p:
        ax.axvline(2 / p, color="grey", ls=":", lw=1, label=f"flat spectrum (~2/p = {2 / p:.3f})")
    ax.set_xlabel("IPR of a neuron's spectrum")
    ax.set_ylabel("neurons")
    ax.set_title("IPR of the first-layer neurons at the last step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@literal_text
def phase_diagram(
    cells: pd.DataFrame, x: str, y: str, value: str, title: str, word: str = "reached"
) -> Figure | None:
    """A heat map of ``value`` over the grid (x, y): the mean over the runs in a cell (seeds)
    that have a value, the cells without one grey and marked ``-``. A cell where only some runs
    have a value (a seed that never grokked) says so (``1/2 grokked``, with ``word``) and is
    hatched, so the mean of the others does not pass for the whole cell."""
    if cells.empty or value not in cells or cells[value].notna().sum() == 0:
        return None
    grid = cells.pivot_table(index=y, columns=x, values=value, aggfunc="mean", dropna=False)
    counted = cells.assign(_has=cells[value].notna().astype(int), _one=1)
    have, total = (
        counted.pivot_table(index=y, columns=x, values=c, aggfunc="sum", dropna=False)
        .reindex(index=grid.index, columns=grid.columns)
        .fillna(0)
        .to_numpy(int)
        for c in ("_has", "_one")
    )
    fig, axes = figure(width=6.5, height=4.5)
    ax = axes[0, 0]
    data = np.ma.masked_invalid(grid.to_numpy(float))
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    im = ax.imshow(data, origin="lower", aspect="auto", cmap=cmap, interpolation="nearest")
    ax.set_xticks(range(grid.shape[1]), [_tick(v) for v in grid.columns], rotation=45, fontsize=8)
    ax.set_yticks(range(grid.shape[0]), [_tick(v) for v in grid.index], fontsize=8)
    for (i, j), v in np.ndenumerate(grid.to_numpy(float)):
        text = "-" if math.isnan(v) else f"{v:.4g}"
        if 0 < total[i, j] and have[i, j] < total[i, j] and total[i, j] > 1:
            text += f"\n{have[i, j]}/{total[i, j]} {word}"
            if have[i, j]:
                ax.add_patch(
                    plt.Rectangle(
                        (j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", ec="white", lw=0
                    )
                )
        colour = "black" if math.isnan(v) else "white"
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


@literal_text
def parallel_coordinates(members: pd.DataFrame, colour_by: str, title: str) -> Figure | None:
    """One line a member across vertical axes, one per column of ``members`` (the sweep's
    hyperparameters, then its headline values), coloured by ``colour_by``. A numeric axis
    spanning more than a factor 20 of positive values is log-scaled; a categorical one spaces
    its values evenly; each axis is labelled with its values at the bottom and top."""
    if members.empty or colour_by not in members or members[colour_by].notna().sum() == 0:
        return None
    cols = list(members.columns)
    scaled, ends = {}, {}
    for col in cols:
        raw = members[col]
        num = pd.to_numeric(raw, errors="coerce")
        if num.notna().all() and num.notna().any():
            low, high = float(num.min()), float(num.max())
            logged = low > 0 and high / low > 20
            v = np.log10(num) if logged else num
            lo, hi = float(v.min()), float(v.max())
            scaled[col] = (v - lo) / (hi - lo) if hi > lo else v * 0 + 0.5
            ends[col] = (plain_number(low), plain_number(high) + (" (log)" if logged else ""))
        else:
            text = raw.map(_category)
            names = list(dict.fromkeys(text))
            pos = {n: i / (len(names) - 1) if len(names) > 1 else 0.5 for i, n in enumerate(names)}
            scaled[col] = text.map(pos)
            ends[col] = (names[0], names[-1])
    values = pd.to_numeric(members[colour_by], errors="coerce")
    finite = values.dropna()
    norm = plt.Normalize(float(finite.min()), float(finite.max()) or 1.0)
    cmap = plt.get_cmap("viridis")
    fig, axes = figure(width=max(6.0, 1.6 * len(cols)), height=4.2)
    ax = axes[0, 0]
    xs = np.arange(len(cols))
    for i in range(len(members)):
        ys = [float(scaled[c].iloc[i]) for c in cols]
        v = values.iloc[i]
        colour = "lightgrey" if pd.isna(v) else cmap(norm(float(v)))
        ax.plot(xs, ys, color=colour, lw=1.2, alpha=0.85)
    for x, col in zip(xs, cols):
        ax.axvline(x, color="black", lw=0.8)
        ax.text(x, -0.06, ends[col][0], ha="center", va="top", fontsize=7)
        ax.text(x, 1.06, ends[col][1], ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, [c.split(".")[-1] if "/" not in c else c for c in cols], fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.15, 1.15)
    ax.set_title(title)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=colour_by)
    fig.tight_layout()
    return fig


def _category(v: Any) -> str:
    """A value on a categorical axis: ``none`` for a missing one (e.g. a full batch)."""
    return "none" if v is None or (isinstance(v, float) and math.isnan(v)) else _tick(v)


def _tick(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v)


@literal_text
def criticality(
    sigma_w2: np.ndarray,
    sigma_b: np.ndarray,
    apjn: np.ndarray,
    measured: list[tuple[float, float]],
    theory: list[tuple[float, float]],
    title: str,
) -> Figure:
    """The phase diagram of a criticality scan (Doshi, He & Gromov 2023, Fig. 1): ``log10
    J^{1,L}`` over ``(sigma_w^2, sigma_b)`` (``apjn: (n_b, n_w)``), red where it grows with depth
    (chaotic), blue where it decays (ordered), with the measured ``chi_J = 1`` points
    ``measured`` and the mean-field critical line ``theory``, both ``(sigma_w^2, sigma_b)``."""
    fig, axes = figure(width=6.5, height=4.5)
    ax = axes[0, 0]
    z = np.log10(np.clip(apjn, 1e-300, None))
    lim = max(1.0, min(10.0, float(np.nanmax(np.abs(z)))))
    dx = (sigma_w2[-1] - sigma_w2[0]) / max(len(sigma_w2) - 1, 1) / 2 or 0.5
    dy = (sigma_b[-1] - sigma_b[0]) / max(len(sigma_b) - 1, 1) / 2 or 0.05
    extent = (sigma_w2[0] - dx, sigma_w2[-1] + dx, sigma_b[0] - dy, sigma_b[-1] + dy)
    im = ax.imshow(
        z, origin="lower", aspect="auto", extent=extent, cmap="RdBu_r", vmin=-lim, vmax=lim
    )
    if theory:
        tx, ty = zip(*theory)
        ax.plot(tx, ty, "k-", lw=1.5, label="mean field: chi_J = 1")
    if measured:
        mx, my = zip(*measured)
        ax.plot(mx, my, "o", mfc="white", mec="black", label="measured: chi_J = 1")
    if theory or measured:
        ax.legend(fontsize=8, loc="upper left")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("sigma_w^2")
    ax.set_ylabel("sigma_b")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="log10 J^{1,L}  (APJN, first to last layer)")
    return fig


_CLASS = re.compile(r"^(?P<split>[^/]+)/class_acc/(?P<c>\d+)$")


def class_accuracies(run: Series, split: str = "test") -> pd.Series | None:
    """The last recorded accuracy of each class on ``split`` (index: class), or None."""
    matches = [(m, c) for c in run.table.columns if (m := _CLASS.match(str(c)))]
    cols = {int(m["c"]): c for m, c in matches if m["split"] == split}
    if not cols:
        return None
    last = {c: run.table[col].dropna() for c, col in sorted(cols.items())}
    return pd.Series({c: s.iloc[-1] for c, s in last.items() if len(s)})


@literal_text
def per_class_accuracy(groups: list[tuple[str, Any, list[Series]]]) -> Figure | None:
    """Final test accuracy of each class (class 0 has the most training rows under
    ``task.imbalance``), one line per group of runs (their mean, seeds pooled) with the
    spread between them shaded."""
    fig, axes = figure(runs=len(groups))
    ax, drawn = axes[0, 0], 0
    for label, colour, runs in groups:
        values = [v for r in runs if (v := class_accuracies(r)) is not None]
        if not values:
            continue
        table = pd.concat(values, axis=1)
        mean = table.mean(axis=1)
        ax.plot(mean.index, mean.to_numpy(), "o-", ms=3, lw=1.3, color=colour, label=label)
        if len(values) > 1:
            ax.fill_between(
                mean.index, table.min(axis=1), table.max(axis=1), color=colour, alpha=0.15
            )
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("class (0: most training rows)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("per-class test accuracy (final)")
    ax.grid(alpha=0.3)
    legend(ax, [Series("", label, c, pd.DataFrame()) for label, c, _ in groups])
    return fig


def plain_log(ax, x: bool = True, y: bool = True) -> None:
    """Log axes whose tick labels are plain numbers (``0.01``, ``1e-5``: :func:`readable_log`);
    the default ones are mathtext, which :func:`literal_text` turns off."""
    for on, axis, scale in ((x, ax.xaxis, ax.set_xscale), (y, ax.yaxis, ax.set_yscale)):
        if on:
            scale("log")
            readable_log(axis)


@literal_text
def coord_check(table: pd.DataFrame, title: str = "coordinate check") -> Figure | None:
    """The coordinate check (Yang et al. 2022, TP5): ``mean |x|`` of every activation site
    against width, one panel per training step, one line per site (``table``: the long
    ``width, step, site, value`` table of ``learnscope.studies.coord``). Flat lines: μP-like."""
    if table.empty or table["width"].nunique() < 2:
        return None
    steps = sorted(table["step"].unique())
    if len(steps) > 6:  # the first, the last and four between
        steps = [steps[i] for i in np.linspace(0, len(steps) - 1, 6).round().astype(int)]
    fig, axes = plt.subplots(1, len(steps), figsize=(2.6 * len(steps) + 2.5, 3.2), sharey=True)
    axes = np.atleast_1d(axes)
    sites = list(dict.fromkeys(table["site"]))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.95, len(sites)))
    for ax, step in zip(axes, steps):
        at = table[table["step"] == step]
        for site, colour in zip(sites, colours):
            rows = at[at["site"] == site].sort_values("width")
            ax.plot(rows["width"], rows["value"], "o-", ms=3, color=colour, label=site)
        plain_log(ax)
        ax.set_xticks(sorted(at["width"].unique()))  # the widths, and no ticks between them
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_title(f"t = {step}", fontsize=9)
        ax.set_xlabel("width")
    axes[0].set_ylabel("mean |x|")
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


@literal_text
def loss_vs_lr(cells: pd.DataFrame, value: str, title: str) -> Figure | None:
    """``value`` (a final loss) against the learning rate, one curve per width and one panel
    per parametrisation (``cells``: columns ``lr``, ``width``, ``param``, ``value``, one row
    per run; seeds averaged); each curve's minimum is marked. The μP transfer figure of Yang
    et al. 2022 (TP5, Figure 1)."""
    cells = cells.dropna(subset=["lr", "width"])
    if cells.empty or cells["lr"].nunique() < 2:
        return None
    params = list(dict.fromkeys(cells["param"]))
    fig, axes = plt.subplots(1, len(params), figsize=(4.2 * len(params) + 1.5, 3.4), sharey=True)
    axes = np.atleast_1d(axes)
    widths = sorted(cells["width"].unique())
    colours = plt.get_cmap("plasma")(np.linspace(0, 0.85, len(widths)))
    for ax, param in zip(axes, params):
        for w, colour in zip(widths, colours):
            rows = cells[(cells["param"] == param) & (cells["width"] == w)]
            mean = rows.groupby("lr")["value"].mean().sort_index()
            if mean.empty:
                continue
            ax.plot(mean.index, mean.to_numpy(), "o-", ms=3, color=colour, label=f"width {w}")
            finite = mean[np.isfinite(mean)]
            if len(finite):
                ax.plot(finite.idxmin(), finite.min(), "*", ms=11, color=colour)
        plain_log(ax)
        ax.set_title(f"param {param}", fontsize=9)
        ax.set_xlabel("learning rate")
    axes[0].set_ylabel(value)
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
