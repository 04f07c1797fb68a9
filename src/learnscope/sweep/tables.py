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
    """One row per member: its run's axis values, status and final metrics and events, and the
    values its spec's ``show`` names (a summary key, or a metric such as a probe series, its
    last value); a member has one run (should the store hold several for one member config,
    the newest)."""
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
        for key in ("train_acc", "test_acc", "test_loss", "grok_train_step", "grok_test_step"):
            row[key] = r.summary.get(key)
        for key in _shown_values(spec):  # other values the spec's show asks for: a summary
            if key not in row:  # value (test_len_8_acc), or a metric's last value (a probe)
                row[key] = r.summary.get(key, _last(store, r.id, key))
        row["mode"] = r.summary.get("mode")
        rows.append(row)
    return pd.DataFrame(rows)


def _last(store: Store, run_id: str, name: str) -> float | None:
    """The last recorded value of the metric ``name`` of a run, or None."""
    series = store.metrics(run_id, [name])
    return float(series["value"].iloc[-1]) if len(series) else None


def _shown_values(spec: SweepSpec) -> list[str]:
    values = spec.show.get("values", spec.show.get("value", []))
    return [values] if isinstance(values, str) else list(values)


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
