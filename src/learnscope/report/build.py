"""From runs in the store to one HTML file (plus a PNG per plot next to it).

Panels, each left out with a note when the runs hold no data for it:

- ``summary``: config, final metrics and events of each run;
- ``loss``, ``accuracy``: curves per split over log-scaled steps, events marked;
- ``probe-{name}``: each probe over training, a line per layer (and a layer x step heat map);
- ``attention``: attention entropy per head; ``weight-norms``: with slingshot cycles shaded;
- ``fourier``, ``ipr``: for modular tasks, the first-layer weights at the latest checkpoint;
- ``phase-grok-step``, ``phase-test-acc``: for a sweep, heat maps over two config axes;
- ``curve``: for a sweep whose spec has ``show.curve: {x, y, logx}``, y against x, mean over
  seeds and each seed's points (the double-descent sweep; an ``intrinsic-dim`` search);
- ``taus``: for a sweep whose members carry the measures cached by ``learnscope sweep
  correlate``, each measure's Kendall tau with the gap (:mod:`learnscope.report.sweep_panels`);
- ``lr-transfer``: for a sweep over the learning rate and the width, the final training loss
  against lr, one curve per width (one panel per parametrisation: μP transfer);
- ``coord-check``: for runs at several widths that recorded ``mean_abs`` (``learnscope
  coord-check``), mean |x| of every site against width, one panel per step;
- ``eval-difficulty``: for ``learnscope eval`` runs, accuracy per difficulty level with its
  Wilson 95 % interval, a line per model (such runs get no curves over steps).

Several runs share the panels, one colour per run, labelled by the config values that differ.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from learnscope import events as events_mod
from learnscope.dotted import flatten
from learnscope.errors import UserError, storage_message
from learnscope.files import write_atomic
from learnscope.report import plots
from learnscope.report.html import Panel, esc, render, table
from learnscope.store import Store

MAX_OVERLAID = 12  # more runs than this: the sweep's phase diagrams, not overlaid curves


@dataclass
class RunData:
    id: str
    name: str
    status: str
    config: dict[str, Any]
    summary: dict[str, Any]
    dir: Path
    table: pd.DataFrame
    events: list[dict[str, Any]]
    label: str = ""
    tags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    path: Path
    files: list[Path]
    panels: list[str]
    notes: list[str]
    seconds: float = 0.0
    runs: list[str] = field(default_factory=list)


# -- loading ------------------------------------------------------------------------------


def load_runs(store: Store, refs: list[str], sweep: str | None = None) -> list[RunData]:
    """The runs named (id, prefix or ``last``) plus the members of ``sweep``; UserError for a
    run or sweep that does not exist."""
    ids = [store.resolve(r) for r in refs]
    if sweep is not None:
        runs = store.runs()
        members = runs[runs["sweep_id"].fillna("").str.startswith(sweep)] if sweep else runs[:0]
        if members.empty:
            known = ", ".join(sorted(set(runs["sweep_id"].dropna()))[-5:]) or "none"
            raise UserError(f"--sweep: no runs in sweep {sweep!r}; sweeps: {known}")
        ids += [i for i in members["id"] if i not in ids]
    if not ids:
        raise UserError("run: give at least one RUN (id, prefix or 'last') or --sweep SWEEP")
    out = []
    for run_id in dict.fromkeys(ids):
        rec = store.run(run_id)
        evs = store.events(run_id)
        labels = store.labels(run_id)
        out.append(
            RunData(
                id=run_id,
                name=rec["name"],
                status=rec["status"],
                config=rec["config"],
                summary=rec["summary"],
                dir=Path(rec["dir"]),
                table=store.metric_table(run_id),
                events=[
                    {
                        "kind": e.kind,
                        "step": None if pd.isna(e.step) else int(e.step),
                        "data": e.data,
                    }
                    for e in evs.itertuples()
                ],
                tags=labels["tag"],
                notes=labels["note"],
            )
        )
    return out


def differing(configs: list[dict[str, Any]]) -> list[str]:
    """Dotted config paths whose values differ between the runs (descriptions ignored).

    >>> differing([{"seed": 0, "train": {"lr": 1}}, {"seed": 0, "train": {"lr": 2}}])
    ['train.lr']
    """
    flats = [flatten(c) for c in configs]
    keys = dict.fromkeys(k for f in flats for k in f)
    return [
        k
        for k in keys
        if k != "description" and len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1
    ]


def label_runs(runs: list[RunData]) -> None:
    """Each run's label: the config values that differ (``train.weight_decay=5``), else its
    name and id."""
    keys = differing([r.config for r in runs]) if len(runs) > 1 else []
    keys = [k for k in keys if k != "name"] or keys
    for r in runs:
        flat = flatten(r.config)
        r.label = ", ".join(f"{k}={flat.get(k)}" for k in keys[:4]) or f"{r.name} {r.id[-6:]}"


def class_groups(runs: list[RunData], series: list) -> list[tuple[str, Any, list]]:
    """Runs with per-class accuracies grouped by their config less the seeds: ``(label, colour,
    series)``, in the order first seen."""
    import matplotlib.pyplot as plt

    keep = [(r, s) for r, s in zip(runs, series) if plots.class_accuracies(s) is not None]
    keys = [k for k in differing([r.config for r, _ in keep]) if k not in SEED_KEYS]
    groups: dict[str, list] = {}
    for r, s in keep:
        flat = flatten(r.config)
        label = ", ".join(f"{k}={flat.get(k)}" for k in keys) or r.name
        groups.setdefault(label, []).append(s)
    n = 10 if len(groups) <= 10 else 20
    colours = plt.get_cmap(f"tab{n}")
    return [(label, colours(i % n), g) for i, (label, g) in enumerate(groups.items())]


SEED_KEYS = ("seed", "name", "task.seed")


def splits_of(table: pd.DataFrame) -> list[str]:
    names = [str(c).split("/")[0] for c in table.columns if str(c).endswith(("/acc", "/loss"))]
    return [n for n in dict.fromkeys(names) if n != "train_step"]


# -- the weights of a modular task ----------------------------------------------------------


def frequency_use(power: np.ndarray, ipr: np.ndarray, p: int, threshold: float = 0.5) -> str:
    """How a network's neurons use the Fourier basis, beside the analytic solution (Gromov
    2023), which uses every frequency ``1..(p-1)/2`` with single-frequency neurons.

    >>> power = np.zeros((4, 3)); power[2, :2] = 1; power[1, 2] = 0.4; power[3, 2] = 0.6
    >>> frequency_use(power, np.array([1.0, 1.0, 0.52]), 7).split("; ")[:2]
    ['3 of 3 neurons single-frequency (IPR > 0.5): 100%', 'frequencies used: 2, 3 (2 of 3']
    """
    single = ipr > threshold
    freqs = sorted({int(k) for k in power.argmax(0)[single] if k > 0})
    shown = ", ".join(map(str, freqs[:12])) + (", ..." if len(freqs) > 12 else "")
    return (
        f"{int(single.sum())} of {len(ipr)} neurons single-frequency (IPR > {threshold}): "
        f"{single.mean():.0%}; frequencies used: {shown or 'none'} ({len(freqs)} of "
        f"{(p - 1) // 2}; the analytic network uses every one)"
    )


# -- the sweep ------------------------------------------------------------------------------

SWEEP_SKIP = {"name", "description", "seed", "task.seed"}


def sweep_cells(
    runs: list[RunData],
    x: str | None,
    y: str | None,
    values: tuple[str, ...] = ("grok_test_step", "test_acc"),
) -> tuple[pd.DataFrame, str, str]:
    """One row per run: the two axes' values (a config path, or its last dotted part) and
    ``values`` (summary keys, or a metric's last value): by default the grok step and the
    final test accuracy."""
    varying = [k for k in differing([r.config for r in runs]) if k not in SWEEP_SKIP]
    flats = [flatten(r.config) for r in runs]
    x, y = (_config_path(flats, a) for a in (x, y))
    for axis, name in ((x, "--x"), (y, "--y")):
        if axis is not None and not any(axis in f for f in flats):
            raise UserError(
                f"{name}: {axis!r} is not a config path of these runs; "
                f"varying: {', '.join(varying) or 'none'}"
            )
    x = x or (varying[0] if varying else None)
    y = y or next((k for k in varying if k != x), None)
    if x is None:
        return pd.DataFrame(), "", ""
    rows = []
    for r, f in zip(runs, flats):
        row = {x: f.get(x), (y or "all"): f.get(y) if y else "all"}
        rows.append(row | {v: final_value(r, v) for v in values})
    cells = pd.DataFrame(rows)
    for col in values:
        cells[col] = pd.to_numeric(cells[col], errors="coerce")
    return cells, x, y or "all"


def _config_path(flats: list[dict[str, Any]], name: str | None) -> str | None:
    """``name`` as a config path of the runs: itself, or the one path ending in ``.name``."""
    if name is None or any(name in f for f in flats):
        return name
    hits = {k for f in flats for k in f if k.endswith("." + name)}
    return hits.pop() if len(hits) == 1 else name


def final_value(run: RunData, name: str) -> Any:
    """A run's summary value ``name``, else the last value of its metric ``name``, else None."""
    if name in run.summary:
        return run.summary[name]
    if name in run.table.columns and run.table[name].notna().any():
        return float(run.table[name].dropna().iloc[-1])
    return None


#: config paths that are a model's width
WIDTH_PATHS = ("model.width", "model.d_model")


def _width_of(flat: dict[str, Any]) -> Any:
    return next((flat[p] for p in WIDTH_PATHS if p in flat), None)


def transfer_cells(runs: list[RunData]) -> pd.DataFrame | None:
    """``lr, width, param, value`` (the final training loss) per run, when the runs differ in
    both the learning rate and the width; else None."""
    flats = [flatten(r.config) for r in runs]
    varying = set(differing([r.config for r in runs]))
    if "train.lr" not in varying or not varying & set(WIDTH_PATHS):
        return None
    cells = pd.DataFrame(
        {
            "lr": [f.get("train.lr") for f in flats],
            "width": [_width_of(f) for f in flats],
            "param": [f.get("model.param", "standard") for f in flats],
            "value": pd.to_numeric([r.summary.get("train_loss") for r in runs], errors="coerce"),
        }
    )
    return cells


def coord_cells(runs: list[RunData]) -> pd.DataFrame | None:
    """The coordinate-check table (``learnscope.studies.coord``) of runs at several widths that
    recorded ``mean_abs``; else None."""

    from learnscope.studies.coord import coord_table  # torch only when drawn

    pairs = [(_width_of(flatten(r.config)), r.table) for r in runs]
    pairs = [
        (w, t) for w, t in pairs if w is not None and any(c.startswith("mean_abs/") for c in t)
    ]
    if len({w for w, _ in pairs}) < 2:
        return None
    return coord_table(pairs)


# -- the page -------------------------------------------------------------------------------


def png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def summary_html(runs: list[RunData]) -> str:
    if len(runs) > MAX_OVERLAID:
        rows = [
            [
                r.id,
                r.label,
                r.status,
                _fmt(r.summary.get("test_acc")),
                _fmt(r.summary.get("grok_test_step")),
                _fmt(r.summary.get("steps")),
            ]
            for r in runs
        ]
        return table(["run", "label", "status", "test acc", "grok step", "steps"], rows)
    parts = []
    for r in runs:
        summary = [[k, _fmt(v)] for k, v in r.summary.items() if not isinstance(v, dict)]
        thresholds = {c["name"]: c["threshold"] for c in r.config.get("claims", [])}
        summary += [
            [f"claim {k} {thresholds.get(k, '')}", f"{_fmt(c['value'])} {_verdict(c)}"]
            for k, c in (r.summary.get("claims") or {}).items()
        ]
        evs = [
            [
                events_mod.label(events_mod.Event(e["kind"], e["step"], e["data"])),
                _fmt(e["step"]),
                events_mod.describe(events_mod.Event(e["kind"], e["step"], e["data"])),
            ]
            for e in r.events
        ]
        parts.append(
            f'<div class="run" data-run="{esc(r.id)}"><h3>{esc(r.name)} · {esc(r.id)} · '
            f'{esc(r.status)}</h3><p class="note">{esc(r.label)}</p>'
            + (f'<p class="tags">tags: {esc(", ".join(r.tags))}</p>' if r.tags else "")
            + "".join(f'<p class="note">note: {esc(n)}</p>' for n in r.notes)
            + table(["final metric", "value"], summary)
            + (table(["event", "step", "what"], evs) if evs else '<p class="note">no events</p>')
            + "<details><summary>config</summary><pre>"
            + esc(yaml.safe_dump(r.config, sort_keys=False))
            + "</pre></details></div>"
        )
    return "".join(parts)


def _verdict(c: dict[str, Any]) -> str:
    """A claim checked on one run: holds or fails; a null claim: null, or the effect appeared."""
    if c.get("kind") == "null":
        return "(effect appeared)" if c["holds"] else "(null)"
    return "holds" if c["holds"] else "FAILS"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


@dataclass
class _Page:
    """The panels drawn so far and a note for each panel left out."""

    panels: list[Panel]
    notes: list[str] = field(default_factory=list)
    overlaid: int = 1  # runs drawn on each plot: several put the legend beside the axes

    def add(self, pid: str, title: str, fig, missing: str, caption: str = "", wide=False) -> None:
        """Panel ``pid`` from ``fig``, or the note ``{title}: {missing}`` when it is None."""
        if fig is None:
            self.notes.append(f"{title}: {missing}")
        else:
            wide_fig = wide or self.overlaid > 1
            self.panels.append(Panel(pid, title, png(fig), caption=caption, wide=wide_fig))


def build_panels(
    runs: list[RunData],
    sweep: str | None,
    x: str | None,
    y: str | None,
    show: dict[str, Any] | None = None,
) -> tuple[list[Panel], list[str]]:
    """The report's panels in page order, and a note for each one left out (see the module
    docstring): the summary, eval runs' accuracy against difficulty, the panels that compare
    runs (a sweep's phase diagrams, ...), then, for at most :data:`MAX_OVERLAID` runs, their
    curves over training and the Fourier spectrum of their first-layer weights."""
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10")
    series = [
        plots.Series(r.id, r.label, colours(i % 10), r.table, r.events, splits_of(r.table))
        for i, r in enumerate(runs)
    ]
    cards = Panel("summary", "Run summary" if len(runs) == 1 else "Runs", body=summary_html(runs))
    page = _Page([cards] if sweep is None else [], overlaid=len(runs))
    if sweep is not None:  # a sweep leads with what it exists for; its run cards fold below
        cards.title, cards.body = f"Runs ({len(runs)})", _folded(cards.body, len(runs))
        _headline_panel(page, runs, sweep, show or {}, x, y)
        _curve_panel(page, runs, sweep, show or {})
    runs, series = _eval_panels(page, runs, series)
    if not runs:
        return page.panels + ([cards] if sweep is not None else []), page.notes
    page.overlaid = len(runs)
    _comparison_panels(page, runs, series, sweep, x, y)
    if sweep is not None:
        _parallel_panel(page, runs, (show or {}).get("headline") or "grok_test_step")
        page.panels.append(cards)
    if len(series) > MAX_OVERLAID:
        page.notes.append(
            f"curves: {len(series)} runs are too many to overlay (at most "
            f"{MAX_OVERLAID}); see the phase diagrams, or name a few runs"
        )
        return page.panels, page.notes
    _curve_panels(page, runs, series)
    _spectrum_panels(page, runs, series)
    return page.panels, page.notes


def _folded(body: str, n: int) -> str:
    return f"<details><summary>the {n} runs, one card each</summary>{body}</details>"


def _headline_panel(
    page: _Page, runs: list[RunData], sweep: str, show: dict[str, Any], x: str | None, y: str | None
) -> None:
    """A sweep's headline (``show.headline`` of its spec, e.g. ``slingshots``): its mean over
    seeds on the spec's pivot axes (``show.pivot``; ``--x/--y`` override) as a table and a
    phase diagram. Without one, the grok step's phase diagram leads."""
    head = show.get("headline")
    if head is None or head in ("grok_test_step", "test_acc"):
        return
    pivot = show.get("pivot") or [None, None]
    # as ``sweep show`` draws it: the pivot's first axis down the rows, its second across
    cells, ax, ay = sweep_cells(runs, x or pivot[1], y or pivot[0], (head,))
    if not cells.empty and cells[head].notna().any():
        grid = cells.pivot_table(index=ay, columns=ax, values=head, aggfunc="mean", dropna=False)
        rows = [[_fmt(i), *(_fmt(v) for v in row)] for i, row in zip(grid.index, grid.values)]
        corner = f"{ay.split('.')[-1]} \\ {ax.split('.')[-1]}"
        page.panels.append(
            Panel(
                "headline",
                f"Headline: {head}",
                plots_png(plots.phase_diagram(cells, ax, ay, head, f"{head} (sweep {sweep})")),
                body=table([corner, *map(_fmt, grid.columns)], rows),
                caption=f"mean of {head} over the seeds of each cell (the sweep spec's "
                "show.headline)",
            )
        )
    else:
        page.notes.append(f"headline {head}: no member has a value")


def _curve_panel(page: _Page, runs: list[RunData], sweep: str, show: dict[str, Any]) -> None:
    """``curve``: the spec's ``show.curve`` (``y`` against ``x``, mean over seeds and each
    seed's points; :mod:`learnscope.report.sweep_panels`), e.g. the double-descent sweep's
    test loss against width, or an intrinsic-dimension search's accuracy against ``d``."""
    curve = show.get("curve")
    if not isinstance(curve, dict):
        return
    from learnscope.report.sweep_panels import curve_cells, curve_figure

    cells, cx = curve_cells(runs, curve["x"], curve["y"], final_value)
    page.add(
        "curve",
        f"Curve: {curve['y']} against {cx}",
        curve_figure(
            cells,
            cx,
            curve["y"],
            bool(curve.get("logx")),
            bool(curve.get("logy")),
            curve.get("target"),
            f"sweep {sweep}: {len(runs)} runs",
        ),
        f"no member has both {cx} and {curve['y']}",
        "the sweep spec's show.curve: mean over seeds (line) and each seed's value (points)"
        + ("; black: the members without it (the full model)" if cells["x"].isna().any() else ""),
        wide=True,
    )


def _taus_panel(store: Store, sweep: str, runs: list[RunData]) -> Panel | None:
    """``taus``: the generalisation measures' Kendall taus with the gap, from the ``gen/*``
    measures that ``learnscope sweep correlate`` cached in the members (none: no panel)."""
    if not any(str(c).startswith("gen/") for r in runs for c in r.table.columns):
        return None
    from learnscope.report.taus import taus_figure
    from learnscope.studies.gen_measures import cached_taus

    got = cached_taus(store, sweep, runs)
    if got is None:
        return None
    frame, axes, members = got
    fig = taus_figure(frame, axes, "gap")
    return Panel(
        "taus",
        "Generalisation measures: Kendall tau with the gap",
        plots_png(fig),
        caption=f"{members} members with cached measures (learnscope sweep correlate); bars: "
        "tau over all members and Psi, the mean of the granulated psi_i (Jiang et al. 2020, "
        "eq. 4); dots: psi_i per axis; *: the same sign under every axis",
        wide=True,
    )


def _parallel_panel(page: _Page, runs: list[RunData], head: str) -> None:
    """Every member on parallel coordinates: the varying config values, then the headline,
    coloured by it."""
    varying = [k for k in differing([r.config for r in runs]) if k not in SWEEP_SKIP]
    if varying:
        flats = [flatten(r.config) for r in runs]
        members = pd.DataFrame([{k: f.get(k) for k in varying} for f in flats])
        members[head] = pd.to_numeric(
            pd.Series([final_value(r, head) for r in runs]), errors="coerce"
        )
        page.add(
            "parallel",
            "Parallel coordinates",
            plots.parallel_coordinates(members, head, f"{len(runs)} members, coloured by {head}"),
            f"no member has a value of {head}",
            "one line a member: its hyperparameters, then the headline; grey: no value",
            wide=True,
        )


def plots_png(fig) -> bytes | None:
    return None if fig is None else png(fig)


def _eval_panels(page: _Page, runs: list[RunData], series: list) -> tuple[list[RunData], list]:
    """``eval-difficulty`` for ``learnscope eval`` runs (accuracy per difficulty level, not
    curves over steps); the other runs and their series, for the panels that follow."""
    evals = [(r, s) for r, s in zip(runs, series) if r.config.get("kind") == "eval"]
    if not evals:
        return runs, series
    from learnscope.report.difficulty import accuracy_vs_difficulty

    page.add(
        "eval-difficulty",
        "Accuracy against difficulty",
        accuracy_vs_difficulty([s for _, s in evals], [r.config.get("axis", "") for r, _ in evals]),
        "no level was scored",
        "exact match on freshly drawn instances; bars: Wilson 95% interval",
        wide=True,
    )
    series = [s for r, s in zip(runs, series) if r.config.get("kind") != "eval"]
    return [r for r in runs if r.config.get("kind") != "eval"], series


def _comparison_panels(
    page: _Page, runs: list[RunData], series: list, sweep: str | None, x: str | None, y: str | None
) -> None:
    """The panels that compare runs: a sweep's phase diagrams over axes ``x``, ``y``, per-class
    accuracy, a sweep's learning rate against width, the coordinate check."""
    if sweep is not None:
        cells, ax, ay = sweep_cells(runs, x, y)
        what = f"sweep {sweep}: {len(runs)} runs"
        page.add(
            "phase-grok-step",
            "Phase diagram: grok step",
            plots.phase_diagram(
                cells, ax, ay, "grok_test_step", f"grok step ({what})", word="grokked"
            ),
            "no run of the sweep reached the test threshold, or no config axis varies",
            "first step with test accuracy >= the grokking threshold; mean over the seeds that "
            "grokked; a hatched cell says how many of its seeds did (n/m grokked)",
        )
        page.add(
            "phase-test-acc",
            "Phase diagram: final test accuracy",
            plots.phase_diagram(cells, ax, ay, "test_acc", f"final test accuracy ({what})"),
            "no test accuracy recorded, or no config axis varies",
            "mean over seeds",
        )
    groups = class_groups(runs, series)
    if groups:
        page.add(
            "per-class",
            "Per-class accuracy",
            plots.per_class_accuracy(groups),
            "",
            "final test accuracy of each class of a long-tailed training split (task.imbalance; "
            "class 0 has the most rows); runs differing only in seed are pooled: mean line, "
            "min-max shaded",
        )
    if sweep is not None:
        cells = transfer_cells(runs)
        if cells is not None:
            page.add(
                "lr-transfer",
                "Learning rate against width",
                plots.loss_vs_lr(cells, "final train loss", f"sweep {sweep}: {len(runs)} runs"),
                "no training loss recorded",
                "final training loss against the learning rate, one curve per width (mean over "
                "seeds); a star marks each width's best lr. Yang et al. 2022 (TP5): under μP the "
                "best lr stays put as the network widens",
            )
    coord = coord_cells(runs)
    if coord is not None:
        page.add(
            "coord-check",
            "Coordinate check",
            plots.coord_check(coord),
            "",
            "mean |x| of every activation site on the probe batch against width, one panel per "
            "step (Yang et al. 2022, TP5): flat under μP",
            wide=True,
        )


def _curve_panels(page: _Page, runs: list[RunData], series: list) -> None:
    """Curves over training: loss, accuracy, each probe, attention entropy, weight norms."""
    page.add(
        "loss",
        "Loss",
        plots.curves(series, "loss", "loss per split", logy=True),
        "no loss was logged",
    )
    page.add(
        "accuracy",
        "Accuracy",
        plots.curves(series, "acc", "exact-match accuracy per split"),
        "no accuracy was logged",
        "dotted: training set fitted; solid: test set reached (grokking threshold)",
    )
    probes = plots.probe_columns(series)
    if not probes:
        page.notes.append("probes: none were logged (add a probes: section to the config)")
    for name, sites in probes.items():
        fig = plots.probe(series, name, sites)
        page.add(
            f"probe-{name}",
            f"Probe: {name}",
            fig,
            "no values",
            wide=fig is not None and len(fig.axes) > 1,
        )
    page.add(
        "attention",
        "Attention entropy per head",
        plots.attention_heads(series),
        "no attention_entropy/<site>/h<i> metrics (no attention layers, or not probed)",
    )
    cycles = sum(e["kind"] == "slingshot" for r in runs for e in r.events)
    page.add(
        "weight-norms",
        "Weight norms",
        plots.weight_norms(series),
        "no weight norms logged",
        f"{cycles} slingshot cycle(s) (Thilak et al. 2022) shaded from start to recovery"
        if cycles
        else "no slingshot cycle found (Thilak et al. 2022; the rule: learnscope.events)",
    )


def _spectrum_panels(page: _Page, runs: list[RunData], series: list) -> None:
    """``fourier`` and ``ipr``: the first-layer weights of modular-task runs at their latest
    checkpoint; one note per reason a run has none."""
    from learnscope.studies.spectrum import first_layer_spectrum  # torch only when drawn

    spectra, iprs, what, p, use = [], [], "", None, ""
    why: dict[str, list[str]] = {}  # reason -> runs, one note per reason
    for r, s in zip(runs, series):
        got = first_layer_spectrum(r.config, r.dir)
        if isinstance(got, str):
            why.setdefault(got, []).append(r.label)
            continue
        power, values, what, p = got
        spectra.append((s, power))
        iprs.append((s, values))
        use = frequency_use(power, values, p) if len(runs) == 1 else ""
    for reason, labels in why.items():
        who = labels[0] if len(labels) == 1 else f"{len(labels)} runs"
        page.notes.append(f"Fourier power and IPR ({who}): {reason}")
    if not spectra:
        return
    page.add(
        "fourier",
        "Fourier power of the first-layer weights",
        plots.fourier(spectra),
        "",
        what,
        wide=len(spectra) == 1,
    )
    page.add(
        "ipr",
        "IPR of the neurons",
        plots.ipr_histogram(iprs, p),
        "",
        "IPR = sum_k nu_k^2 of each neuron's normalised spectrum (Doshi et al. 2024), "
        f"{what.partition('; ')[2]} (the basis of the task's operation: Z_p for add and "
        "sub, the discrete log for mul and div)" + (f". {use}" if use else ""),
    )


def default_output(store: Store, runs: list[RunData], sweep: str | None) -> Path:
    if len(runs) == 1 and sweep is None:
        return runs[0].dir / "report.html"
    return Path("report.html")


def sweep_show(store: Store, sweep: str | None) -> dict[str, Any]:
    """The ``show`` section of the sweep's spec (headline, pivot), or {}."""
    if not sweep:
        return {}
    specs = store.sweeps()
    hits = specs[specs["id"].str.startswith(sweep)]
    return dict(hits["spec"].iloc[-1].get("show") or {}) if len(hits) else {}


def claims_panel(store: Store, sweep: str) -> Panel | None:
    """For a verification sweep (``learnscope verify``) or a sweep whose spec states claims:
    one row per claim, ``holds k/N`` with its interval, the median and range measured, the
    paper's figure; else None."""
    from learnscope.studies.claims import results_of  # torch only for a verification

    spec = store.sweeps().set_index("id")["spec"].get(sweep) or {}
    if spec.get("kind") != "verify" and not spec.get("claims"):
        return None
    v = results_of(store, sweep)
    rows = []
    for r in v.results:
        lo, hi = r.interval
        shown = r.measured
        rows.append(
            [
                r.claim.name,
                r.claim.kind,
                f"{r.claim.statement} ({r.claim.threshold})",
                f"{r.k}/{r.n} [{lo:.2f}, {hi:.2f}]",
                f"{_fmt(r.median)} ({_fmt(min(shown))} .. {_fmt(max(shown))})" if shown else "-",
                r.claim.paper_value or "-",
                "passed" if r.passed else "NOT reproduced",
            ]
        )
    headers = ["claim", "kind", "statement", "holds", "median (range)", "paper", "verdict"]
    caption = (
        f"{v.recipe} at seeds {', '.join(map(str, v.seeds))} (learnscope verify)"
        if spec.get("kind") == "verify"
        else f"the claims of sweep {v.recipe} on its {len(v.seeds)} members (each against its "
        "control case's member at the same grid point and seed)"
    )
    return Panel("claims", "Claims over seeds", body=table(headers, rows), caption=caption)


def build_report(
    store: Store,
    refs: list[str],
    out: str | Path | None = None,
    sweep: str | None = None,
    x: str | None = None,
    y: str | None = None,
) -> Report:
    """Write the report of runs ``refs`` (and sweep ``sweep``) to ``out`` (HTML) and its plots
    to ``<out stem>_files/<panel>.png``; everything is drawn in memory first, so an error
    leaves nothing half-written."""
    t0 = time.perf_counter()
    if (x or y) and sweep is None:
        raise UserError("--x/--y: the axes of a sweep's phase diagrams; give --sweep SWEEP too")
    runs = load_runs(store, refs, sweep)
    label_runs(runs)
    out = Path(out) if out is not None else default_output(store, runs, sweep)
    if not out.parent.is_dir():
        raise UserError(f"-o: directory {out.parent} does not exist")
    panels, notes = build_panels(runs, sweep, x, y, sweep_show(store, sweep))
    if sweep is not None and (taus := _taus_panel(store, sweep, runs)) is not None:
        lead = sum(p.id in ("headline", "curve") for p in panels[:2])
        panels.insert(lead, taus)
    if sweep is not None and (claims := claims_panel(store, sweep)) is not None:
        panels.insert(0, claims)
    title = (
        f"learnscope report: {runs[0].name}"
        if len(runs) == 1
        else f"learnscope report: {len(runs)} runs" + (f", sweep {sweep}" if sweep else "")
    )
    subtitle = ", ".join(r.id for r in runs[:MAX_OVERLAID]) + (" ..." if len(runs) > 12 else "")
    page = render(title, panels, notes, subtitle)
    files_dir = out.with_name(out.stem + "_files")
    written: list[Path] = []
    made = not files_dir.exists()
    try:
        files_dir.mkdir(exist_ok=True)
        for p in panels:
            if p.png is not None:
                written.append(write_atomic(files_dir / f"{p.id}.png", p.png))
        write_atomic(out, page)
    except OSError as err:  # a full disk: no PNG of this report left half-way
        for path in written:
            path.unlink(missing_ok=True)
        if made:
            shutil.rmtree(files_dir, ignore_errors=True)
        if storage_message(err) is not None:
            raise  # one line, exit 1
        raise UserError(f"-o: cannot write {out}: {err.strerror or err}") from None
    return Report(
        out, written, [p.id for p in panels], notes, time.perf_counter() - t0, [r.id for r in runs]
    )
