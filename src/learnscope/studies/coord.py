"""The coordinate check (Yang et al. 2022, "Tensor Programs V", §D / ``mup.coord_check``).

A recipe is trained at several widths for a few steps; at every step the ``mean_abs`` probe
records ``mean |x|`` of every activation site on the probe batch. Under a parametrisation
with a well-defined infinite-width limit (μP) every curve of ``mean |x|`` against width is
flat; under the standard parametrisation with Adam some grow with width after one step (the
update of a hidden layer is ``O(lr)`` per entry, summed over ``fan_in`` correlated terms).

The check is a sweep (:func:`coord_spec`: the recipe, a grid over its width), run by the sweep
backends like any other: each width is a run (guard, probes, store, events), a failed width is
marked failed, the sweep can be resumed and sent to Ray, and ``learnscope report --sweep``
draws it again.
The flatness of a site is the least-squares slope of ``log2 mean|x|`` against ``log2 width``
at the last step: the factor by which the coordinates grow per doubling of width is
``2^slope`` (0: flat).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from learnscope.config import RunConfig
from learnscope.errors import UserError
from learnscope.store import Store
from learnscope.sweep import SweepSpec, load_spec, run_sweep

#: model kind -> the config field that is its width
WIDTH_FIELDS = {"mlp": "width", "gpt": "d_model"}
MAX_WIDTHS, MAX_STEPS = 16, 1000


def coord_spec(cfg: RunConfig, widths: Sequence[int], steps: int) -> SweepSpec:
    """The sweep of the check: ``cfg`` trained ``steps`` steps at each width with ``mean_abs``
    on every site at every step (and nothing else: no stopping rule, no checkpoint before the
    end, an eval at the start and the end)."""
    field = WIDTH_FIELDS.get(cfg.model.kind)
    if field is None:
        raise UserError(
            f"model.kind: the coordinate check needs a width; allowed: {', '.join(WIDTH_FIELDS)}"
        )
    if not 2 <= len(widths) <= MAX_WIDTHS or len(set(widths)) != len(widths):
        raise UserError(f"--widths: give 2 to {MAX_WIDTHS} distinct widths (got {list(widths)})")
    if any(w < 1 for w in widths):
        raise UserError(f"--widths: every width must be >= 1 (got {list(widths)})")
    if not 1 <= steps <= MAX_STEPS:
        raise UserError(f"--steps: must be in [1, {MAX_STEPS}] (got {steps})")
    base = cfg.to_dict()
    base["train"].update(steps=steps, eval_every=steps, stop_when=[], checkpoint_every=0)
    base["probes"] = [{"probe": "mean_abs", "sites": ["*"], "every": 1}]
    return load_spec(
        {
            "name": f"coord-check:{cfg.name}",
            "config": base,
            "grid": {f"model.{field}": sorted(widths)},
        }
    )


def coord_table(runs: Sequence[tuple[int, pd.DataFrame]]) -> pd.DataFrame:
    """Long table ``width, step, site, value`` from ``(width, metric table)`` pairs.

    >>> t = pd.DataFrame({"mean_abs/h": [1.0, 2.0], "lr": [0.1, 0.1]}, index=[0, 1])
    >>> coord_table([(64, t)]).to_dict("records")[1]
    {'width': 64, 'step': 1, 'site': 'h', 'value': 2.0}
    """
    rows = []
    for width, table in runs:
        for col in table.columns:
            if col.startswith("mean_abs/"):
                for step, value in table[col].dropna().items():
                    rows.append(
                        {"width": width, "step": int(step), "site": col[9:], "value": value}
                    )
    return pd.DataFrame(rows, columns=["width", "step", "site", "value"])


def slopes(table: pd.DataFrame, step: int | None = None) -> pd.Series:
    """Per site, the least-squares slope of ``log2 value`` against ``log2 width`` at ``step``
    (default: the last): 0 is flat, 1 doubles with each doubling of width.

    >>> t = pd.DataFrame({"width": [64, 128, 256], "step": 5, "site": "h",
    ...                   "value": [1.0, 2.0, 4.0]})
    >>> round(float(slopes(t)["h"]), 6)
    1.0
    """
    step = int(table["step"].max()) if step is None else step
    at = table[table["step"] == step]
    out = {}
    for site, rows in at.groupby("site", sort=False):
        x, y = np.log2(rows["width"].to_numpy(float)), rows["value"].to_numpy(float)
        ok = np.isfinite(y) & (y > 0)
        out[site] = float(np.polyfit(x[ok], np.log2(y[ok]), 1)[0]) if ok.sum() >= 2 else np.nan
    return pd.Series(out, name="slope")


def coord_check(
    cfg: RunConfig,
    widths: Sequence[int],
    steps: int,
    store: Store,
    backend: str = "local",
    resume: str | None = None,
) -> tuple[pd.DataFrame, str]:
    """Train ``cfg`` at every width, as the sweep :func:`coord_spec` (resumable with
    ``resume``; on Ray with ``backend="ray"``): the long table of :func:`coord_table` over its
    finished members and the sweep's id."""
    field = WIDTH_FIELDS.get(cfg.model.kind, "width")
    spec = coord_spec(cfg, widths, steps)
    sweep_id = run_sweep(spec, store, backend=backend, resume=resume)
    runs = store.runs()
    runs = runs[(runs["sweep_id"] == sweep_id) & runs["status"].isin(["finished", "stopped"])]
    pairs = [(r.config["model"][field], store.metric_table(r.id)) for r in runs.itertuples()]
    return coord_table(sorted(pairs, key=lambda pair: pair[0])), sweep_id
