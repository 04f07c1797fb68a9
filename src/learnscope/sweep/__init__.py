"""Sweeps: a spec expanded into member runs, grouped into ensembles, run locally or on Ray.

- :mod:`~learnscope.sweep.spec`: the spec (grid, random axes, seeds) and its expansion into
  validated member configs;
- :mod:`~learnscope.sweep.calibrate`: how to train a group of compatible members (one
  ensemble, chunks, or in turn), chosen by a short calibration;
- :mod:`~learnscope.sweep.backends`: running the groups through the run pipeline, in this
  process, a process pool or Ray, and resuming a sweep;
- :mod:`~learnscope.sweep.tables`: reading a sweep back (member table, pivot grids, rank
  correlations).

The store holds one ``sweeps`` row (id, name, status, the spec, the member count) and the
members as normal runs with ``runs.sweep_id``.
"""

from learnscope.lazy import exports

_B, _C, _S, _T = (f"learnscope.sweep.{m}" for m in ("backends", "calibrate", "spec", "tables"))
# imported on first use: reading a sweep back (spec, tables) needs no torch; training does
__getattr__, __dir__ = exports(
    __name__,
    {
        **dict.fromkeys(["ENDED", "group_members", "run_group", "run_sweep"], _B),
        **dict.fromkeys(["candidate_sizes", "choose_chunk"], _C),
        **dict.fromkeys(["Member", "SweepSpec", "expand", "load_spec", "sweep_names"], _S),
        **dict.fromkeys(
            [
                "cell_count",
                "final_values",
                "member_table",
                "pivot",
                "pivot_counts",
                "rank_correlations",
                "resolve_sweep",
            ],
            _T,
        ),  # fmt: skip
    },
)

__all__ = [
    "ENDED",
    "Member",
    "SweepSpec",
    "candidate_sizes",
    "cell_count",
    "choose_chunk",
    "expand",
    "final_values",
    "group_members",
    "load_spec",
    "member_table",
    "pivot",
    "pivot_counts",
    "rank_correlations",
    "resolve_sweep",
    "run_group",
    "run_sweep",
    "sweep_names",
]
