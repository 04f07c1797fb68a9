"""Runs side by side (``learnscope compare RUN RUN... [--metric M] [--html PAGE]``): the config
values that differ, the summaries in one table, the tags and notes, and one metric's curves
overlaid, as terminal tables or one HTML page (:mod:`learnscope.report.html`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from learnscope.dotted import flatten
from learnscope.errors import UserError
from learnscope.files import write_atomic
from learnscope.report import plots
from learnscope.report.build import RunData, differing, label_runs, load_runs, png
from learnscope.report.html import Panel, render, table
from learnscope.store import Store

#: the metric overlaid when none is named: the first of these that a run logged
DEFAULT_METRICS = ("test/acc", "train/acc", "test/loss", "train/loss")


@dataclass
class Comparison:
    """Runs to compare: per run its data, tags and notes; the config paths that differ."""

    runs: list[RunData]
    labels: dict[str, dict[str, list[str]]]  # run id -> {"tag": [...], "note": [...]}
    differing: list[str]

    def config_table(self) -> pd.DataFrame:
        """One row per differing config path, one column per run (its id)."""
        flats = {r.id: flatten(r.config) for r in self.runs}
        return pd.DataFrame(
            {rid: [f.get(k, "-") for k in self.differing] for rid, f in flats.items()},
            index=self.differing,
        )

    def summary_table(self) -> pd.DataFrame:
        """Every scalar summary value of any run (rows) by run (columns); '-' where absent."""
        keys = dict.fromkeys(
            k for r in self.runs for k, v in r.summary.items() if not isinstance(v, dict | list)
        )
        return pd.DataFrame(
            {r.id: [r.summary.get(k, "-") for k in keys] for r in self.runs}, index=list(keys)
        )

    def metric(self, name: str | None) -> str:
        """``name`` if some run logged it (else a UserError listing a few that exist), or the
        first of :data:`DEFAULT_METRICS` that a run logged."""
        logged = dict.fromkeys(c for r in self.runs for c in r.table.columns)
        if name is not None:
            if name not in logged:
                some = ", ".join(list(logged)[:8]) or "none"
                raise UserError(f"--metric: no run logged {name!r}; some that exist: {some}")
            return name
        for m in DEFAULT_METRICS:
            if m in logged:
                return m
        raise UserError("compare: the runs logged no accuracy or loss; name one with --metric")

    def curves(self, name: str, points: int = 10) -> pd.DataFrame:
        """``name`` of each run at up to ``points`` steps spread over the union of their
        evaluation steps (rows: step; columns: run id; NaN where a run has no value)."""
        wide = pd.DataFrame(
            {r.id: r.table[name] for r in self.runs if name in r.table.columns}
        ).dropna(how="all")
        if len(wide) > points:
            pick = sorted({round(i * (len(wide) - 1) / (points - 1)) for i in range(points)})
            wide = wide.iloc[pick]
        return wide


def compare(store: Store, refs: list[str]) -> Comparison:
    """The runs ``refs`` (ids, prefixes or ``last``; at least two, each once)."""
    if len(refs) < 2:
        raise UserError("compare: give at least two runs (ids, unique prefixes or 'last')")
    runs = load_runs(store, refs)
    if len(runs) < 2:
        raise UserError("compare: the runs named are one run; give two different runs")
    label_runs(runs)
    keys = [k for k in differing([r.config for r in runs]) if k != "description"]
    return Comparison(runs, {r.id: store.labels(r.id) for r in runs}, keys)


def write_page(cmp: Comparison, metric: str, out: Path) -> Path:
    """The comparison as one self-contained HTML page at ``out`` (drawn in memory first, so an
    error leaves nothing half-written)."""
    import matplotlib.pyplot as plt

    if not out.parent.is_dir():
        raise UserError(f"--html: directory {out.parent} does not exist")
    ids = [r.id for r in cmp.runs]
    head = ["", *ids]
    labels = [
        [kind + "s", *("; ".join(cmp.labels[i][kind]) or "-" for i in ids)]
        for kind in ("tag", "note")
    ]
    config = cmp.config_table()
    config_rows = [[k, *row] for k, row in zip(config.index, config.values.tolist())]
    summary = cmp.summary_table()
    summary_rows = [[k, *map(_cell, row)] for k, row in zip(summary.index, summary.values.tolist())]
    colours = plt.get_cmap("tab10")
    series = [
        plots.Series(r.id, f"{r.id[-6:]} {r.label}", colours(i % 10), r.table, r.events)
        for i, r in enumerate(cmp.runs)
    ]
    fig = plots.overlay(series, metric, f"{metric}, {len(series)} runs")
    panels = [
        Panel(
            "compare-config",
            "What differs",
            body=table(head, [["name", *(r.name for r in cmp.runs)], *labels, *config_rows]),
            caption="only the config values that differ between the runs"
            if config_rows
            else "the configs are the same (apart from the name)",
        ),
        Panel("compare-summary", "Summaries", body=table(head, summary_rows)),
    ]
    if fig is not None:
        panels.insert(1, Panel("compare-overlay", f"Overlay: {metric}", png(fig), wide=True))
    title = "compare " + " · ".join(ids)
    text = render(title, panels, [] if fig is not None else [f"{metric}: no values"])
    write_atomic(out, text)
    return out


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
