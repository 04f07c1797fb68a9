"""A claim's quantity measured on one run (:class:`learnscope.config.Claim`).

A run's summary, the kinds of its events and its metric table give one number per claim:
the summary ``key``, a ``ratio`` of two keys, the count of an ``event``, or a ``metric``
series reduced over time and over the matching names. With a control (a paired claim) the
number is this run's minus (or over) the control's at the same seed. The runner checks the
claims that need no control at the end of every run (summary ``claims``); ``learnscope verify``
(:mod:`learnscope.studies.claims`) checks all of them over seeds.
"""

from __future__ import annotations

import fnmatch
import math
import statistics
from typing import Any

import pandas as pd

from learnscope.config import Claim, check_threshold


def measure(
    claim: Claim, summary: dict[str, Any], events: list[str], table: pd.DataFrame | None = None
) -> float | None:
    """The claim's quantity in one run: the summary ``key``, the ``ratio`` of two summary
    keys, the number of ``events`` (the kinds of the run's events) of kind ``event``, or the
    ``metric`` series of the metric ``table`` (step x name) reduced over time, then over the
    matching names.

    >>> c = Claim(name="x", statement="s", ratio=("a", "b"), threshold=">=2")
    >>> measure(c, {"a": 6, "b": 2}, [])
    3.0
    >>> e = Claim(name="y", statement="s", event="slingshot", threshold=">=1")
    >>> measure(e, {}, ["slingshot", "grokking", "slingshot"])
    2.0
    """
    if claim.event is not None:
        return float(sum(kind == claim.event for kind in events))
    if claim.metric is not None:
        return _metric(claim, table)
    if claim.ratio is not None:
        a, b = (_number(summary.get(k)) for k in claim.ratio)
        return a / b if a is not None and b not in (None, 0) else None
    return _number(summary.get(claim.key))


def _metric(claim: Claim, table: pd.DataFrame | None) -> float | None:
    """``over_metrics`` of (``over_time`` of each series whose name matches ``metric``).

    >>> t = pd.DataFrame({"h/a": [2.0, 1.0], "h/b": [3.0, 0.5], "x": [9.0, 9.0]})
    >>> c = Claim(name="m", statement="s", metric="h/*", threshold=">=1")
    >>> _metric(c, t), _metric(c.model_copy(update={"over_time": "max"}), t)
    (0.5, 2.0)
    """
    if table is None:
        return None
    cols = [c for c in table.columns if fnmatch.fnmatchcase(str(c), claim.metric)]
    per = []
    for col in cols:
        series = table[col].dropna()
        if len(series):
            per.append(_over_time(series, claim.over_time))
    per = [x for x in per if x is not None]
    if not per:
        return None
    return {"min": min, "max": max, "mean": statistics.fmean}[claim.over_metrics](per)


def _over_time(series: pd.Series, how: str) -> float | None:
    """One number from a series over steps: its ``last``, ``min``, ``max`` or ``first`` value,
    or one of the first three divided by the first (``min/first``: the lowest it fell to, as a
    fraction of where it started; None when it started at 0).

    >>> s = pd.Series([4.0, 1.0, 2.0])
    >>> [_over_time(s, h) for h in ("last", "min", "first", "last/first", "min/first")]
    [2.0, 1.0, 4.0, 0.5, 0.25]
    """
    pick = {
        "last": lambda: series.iloc[-1],
        "first": lambda: series.iloc[0],
        "min": series.min,
        "max": series.max,
    }
    top, _, bottom = how.partition("/")
    value = float(pick[top]())
    if not bottom:
        return value
    first = float(pick[bottom]())
    return value / first if first != 0 else None


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def claim_value(claim: Claim, run: tuple | None, control: tuple | None) -> float | None:
    """The value of ``claim`` at one seed from the recipe's run (summary, event kinds and,
    optionally, metric table) and, for a paired claim, its control's: ``a``, or ``a - b`` /
    ``a / b``."""
    if run is None:
        return None
    a = measure(claim, *run)
    if claim.control is None:
        return a
    b = measure(claim, *control) if control is not None else None
    if a is None or b is None:
        return None
    if claim.compare == "ratio":
        return a / b if b != 0 else None
    return a - b


def holds(claim: Claim, value: float | None) -> bool:
    """Whether ``value`` meets the claim's threshold (a missing value never does)."""
    return value is not None and math.isfinite(value) and check_threshold(value, claim.threshold)


def run_claims(
    claims: list[Claim], summary: dict[str, Any], events: list[str], table: pd.DataFrame | None
) -> dict[str, dict[str, Any]]:
    """The claims that need no control, checked on one run: per claim, its ``value`` (None
    when not measured), whether it ``holds`` and its ``kind`` (a null claim that holds is the
    paper's effect appearing). What ``learnscope run`` shows under the final metrics; a claim
    over seeds is ``learnscope verify``'s.

    >>> c = Claim(name="groks", statement="s", key="test_acc", threshold=">=0.99")
    >>> run_claims([c], {"test_acc": 0.995}, [], None)
    {'groks': {'value': 0.995, 'holds': True, 'kind': 'reproduces'}}
    """
    out = {}
    for claim in claims:
        if claim.control is None:
            value = measure(claim, summary, events, table)
            out[claim.name] = {"value": value, "holds": holds(claim, value), "kind": claim.kind}
    return out
