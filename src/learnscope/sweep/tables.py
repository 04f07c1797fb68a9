"""Reading a sweep back: resolving a reference, one row per member, pivot grids."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from learnscope.dotted import get_path
from learnscope.errors import UserError
from learnscope.store import Store
from learnscope.sweep.spec import SweepSpec


def resolve_sweep(store: Store, ref: str) -> str:
    """A sweep id from an id, a unique prefix, a name (its newest sweep) or ``last``."""
    sweeps = store.sweeps()
    if not len(sweeps):
        raise UserError(
            f"sweep {ref!r}: no sweeps in {store.root} yet; run one with `learnscope sweep "
            "grokking-phase-diagram` (built-in specs: `learnscope recipes`), or point --runs-dir "
            "(or $LEARNSCOPE_RUNS) at the directory that holds them"
        )
    if ref == "last":
        return str(sweeps["id"].iloc[-1])
    if not ref.strip():
        raise UserError("sweep: give a sweep id, a unique prefix, a name or 'last' (got '')")
    named = sweeps[sweeps["name"] == ref]
    if len(named):
        return str(named["id"].iloc[-1])
    hits = [s for s in sweeps["id"] if s.startswith(ref)]
    if len(hits) == 1:
        return hits[0]
    known = ", ".join(f"{i} ({n})" for i, n in zip(sweeps["id"].tail(5), sweeps["name"].tail(5)))
    what = "is ambiguous" if hits else "matches no sweep"
    raise UserError(f"sweep: {ref!r} {what}; recent sweeps: {known} (or a name, or 'last')")


def member_table(store: Store, sweep_id: str) -> pd.DataFrame:
    """One row per member: its run's axis values, status, every scalar of its summary (final
    metrics, event counts such as ``slingshots``), and the values its spec's ``show`` names (a
    summary key, or a metric such as a probe series, its last value); a member has one run
    (should the store hold several for one member config, the newest)."""
    rec = store.sweeps().set_index("id").loc[sweep_id]
    spec = SweepSpec.model_validate(rec["spec"])
    runs = store.runs()
    runs = runs[runs["sweep_id"] == sweep_id]
    member = runs["config"].map(lambda c: json.dumps(c, sort_keys=True))
    runs = runs[~member.duplicated(keep="last")]
    rows = []
    first_seed = min((c["seed"] for c in runs["config"]), default=0)
    for r in runs.itertuples():
        row: dict[str, Any] = {"run": r.id, "status": r.status}
        for axis in spec.axes:
            row[axis] = spec.case_of(r.config) if axis == "case" else get_path(r.config, axis)
        if "seed" in spec.axes:
            row["seed"] = r.config["seed"] - first_seed  # 0 .. seeds - 1
        keys = ("train_acc", "test_acc", "test_loss", "grok_train_step")
        for key in (*keys, "grok_test_step"):
            row[key] = r.summary.get(key)
        for key, value in r.summary.items():  # every scalar of the summary (slingshots, ...)
            if key not in row and isinstance(value, int | float | str | None):
                row[key] = value
        for key in _shown_values(spec):  # other values the spec's show asks for: a summary
            if key not in row:  # value (test_len_8_acc), or a metric's last value (a probe)
                value = r.summary.get(key)
                row[key] = _last(store, r.id, key) if value is None else value
        row["mode"] = r.summary.get("mode")
        rows.append(row)
    frame = pd.DataFrame(rows)
    # which columns are the sweep's axes, and which values its show names (headline first)
    frame.attrs.update(axes=[a for a in spec.axes if a in frame.columns], shown=_shown_values(spec))
    return frame


def final_values(store: Store, runs: list[str], names: list[str]) -> pd.DataFrame:
    """Per run (index), the last recorded value of each metric ``names`` (a run summary's
    key such as ``test_acc``, or a stored series such as ``lidar/hook_logits``)."""
    rows = {}
    for run_id in runs:
        summary = store.run(run_id)["summary"] or {}
        series = store.metric_table(run_id)
        row = {}
        for name in names:
            if name in summary:
                row[name] = summary[name]
            elif name in series.columns and series[name].notna().any():
                row[name] = float(series[name].dropna().iloc[-1])
            else:
                row[name] = None
        rows[run_id] = row
    return pd.DataFrame.from_dict(rows, orient="index", columns=names, dtype=float)


def rank_correlations(values: pd.DataFrame, target: str, metrics: list[str]) -> pd.DataFrame:
    """Spearman rank correlation of each of ``metrics`` with ``target`` over the rows of
    ``values`` (members with both values; ``n`` says how many): which metric predicts the
    target's order (Thilak et al. 2023 compare LiDAR and RankMe this way): the Pearson
    correlation of the average ranks (ties share their mean rank), without scipy.

    >>> v = pd.DataFrame({"acc": [0.1, 0.5, 0.9], "a": [1.0, 2.0, 3.0], "b": [3.0, 1.0, 2.0]})
    >>> rank_correlations(v, "acc", ["a", "b"])["spearman"].round(2).tolist()
    [1.0, -0.5]
    """
    out = []
    for m in metrics:
        both = values[[m, target]].dropna()
        ranks = both.rank()
        rho = ranks[m].corr(ranks[target]) if len(both) > 1 else float("nan")
        out.append({"metric": m, "spearman": rho, "n": len(both)})
    return pd.DataFrame(out).set_index("metric")


def _last(store: Store, run_id: str, name: str) -> float | None:
    """The last recorded value of the metric ``name`` of a run, or None."""
    series = store.metrics(run_id, [name])
    return float(series["value"].iloc[-1]) if len(series) else None


def _shown_values(spec: SweepSpec) -> list[str]:
    """The values ``show`` names: its ``headline`` first, then ``value``/``values``."""
    values = spec.show.get("values", spec.show.get("value", []))
    values = [values] if isinstance(values, str) else list(values)
    head = spec.show.get("headline")
    return [head, *(v for v in values if v != head)] if head else values


def _axis(table: pd.DataFrame, name: str) -> str:
    if name in table.columns:
        return name
    hits = [c for c in table.columns if c.split(".")[-1] == name]
    if len(hits) == 1:
        return hits[0]
    raise UserError(f"--pivot: unknown axis {name!r}; allowed: {list(table.columns)}")


def pivot(table: pd.DataFrame, rows: str, cols: str, value: str) -> pd.DataFrame:
    """Mean of ``value`` over members (seeds) at each (rows, cols) point; an axis may be named
    by its last dotted part (``weight_decay`` for ``train.weight_decay``). Members without a
    value (a seed that never grokked) do not count in the mean: :func:`pivot_counts` says how
    many of a cell's members have one."""
    rows, cols = _axis(table, rows), _axis(table, cols)
    if value not in table.columns:
        raise UserError(f"--value: unknown column {value!r}; allowed: {list(table.columns)}")
    values = pd.to_numeric(table[value], errors="coerce")
    return (
        table.assign(**{value: values})
        .pivot_table(index=rows, columns=cols, values=value, aggfunc="mean", dropna=False)
        .sort_index()
    )


def pivot_counts(
    table: pd.DataFrame, rows: str, cols: str, value: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two grids shaped like :func:`pivot`'s: how many members of each cell have a ``value``
    (the seeds that grokked, for ``grok_test_step``) and how many members the cell has.

    >>> t = pd.DataFrame({"a": [1, 1, 2, 2], "b": [0, 0, 0, 0], "v": [5.0, None, 3.0, 4.0]})
    >>> have, members = pivot_counts(t, "a", "b", "v")
    >>> have[0].tolist(), members[0].tolist()
    ([1, 2], [2, 2])
    """
    grid = pivot(table, rows, cols, value)
    rows, cols = _axis(table, rows), _axis(table, cols)
    has = pd.to_numeric(table[value], errors="coerce").notna().astype(int)
    counted = table.assign(_has=has, _one=1)

    def count(column: str) -> pd.DataFrame:
        out = counted.pivot_table(
            index=rows, columns=cols, values=column, aggfunc="sum", dropna=False
        )
        return out.reindex(index=grid.index, columns=grid.columns).fillna(0).astype(int)

    return count("_has"), count("_one")


def cell_count(have: int, members: int, word: str = "") -> str:
    """``""`` when every member of a cell has a value, else ``"1/2 grokked"``.

    >>> cell_count(2, 2), cell_count(1, 2, "grokked"), cell_count(0, 2)
    ('', '1/2 grokked', '0/2')
    """
    if have >= members or members <= 1:
        return ""
    return f"{have}/{members}" + (f" {word}" if word else "")


#: the quantiles ``show: {quantiles: VALUE}`` prints
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def quantiles(frame: pd.DataFrame, value: str) -> dict[str, float]:
    """The spread of ``value`` over a sweep's members (``show: {quantiles: grok_test_step}``):
    ``members``, ``have`` (those with a value: for a grok step, those that grokked), and the
    quantiles :data:`QUANTILES` of the values (``q0`` the least, ``q50`` the median, ``q100``
    the most; numpy's linear interpolation), NaN when no member has one."""
    import numpy as np

    got = pd.Series(frame[value] if value in frame else [], dtype=object)
    got = pd.to_numeric(got, errors="coerce").astype(float)
    got = got[np.isfinite(got)]
    out = {"members": float(len(frame)), "have": float(len(got))}
    qs = np.quantile(got, QUANTILES) if len(got) else [float("nan")] * len(QUANTILES)
    out.update({f"q{round(q * 100)}": float(v) for q, v in zip(QUANTILES, qs)})
    return out
