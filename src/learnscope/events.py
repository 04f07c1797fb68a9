"""Events read off the stored metric series.

Detectors are pure functions of a wide metric table (one row per step, one column per metric,
as returned by ``Store.metric_table``) and return :class:`Event` records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd


@dataclass
class Event:
    kind: str
    step: int | None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def first_step_at_or_above(series: pd.Series, threshold: float) -> int | None:
    """First index (step) where ``series >= threshold``, or None.

    >>> first_step_at_or_above(pd.Series([0.1, 0.5, 0.995, 0.9], index=[0, 10, 20, 30]), 0.99)
    20
    """
    hit = series[series >= threshold]
    return int(hit.index[0]) if len(hit) else None


def grokking(
    table: pd.DataFrame, threshold: float = 0.99, train: str = "train/acc", test: str = "test/acc"
) -> Event | None:
    """Grokking (Power et al. 2022): when the training set is fitted and when the test set is.

    ``train_step``: first step with train accuracy >= threshold; ``test_step``: the same for
    test accuracy; ``gap = test_step - train_step`` and ``ratio = test_step / train_step``
    (test lagging by a factor). The event is returned once training accuracy reaches the
    threshold (``test_step`` stays None while the network has only memorised); its step is the
    step of generalisation, or of fitting when there is none yet.

    >>> t = pd.DataFrame({"train/acc": [0.0, 1.0, 1.0, 1.0], "test/acc": [0.0, 0.1, 0.5, 1.0]},
    ...                  index=[0, 100, 200, 300])
    >>> grokking(t).data
    {'train_step': 100, 'test_step': 300, 'gap': 200, 'ratio': 3.0, 'threshold': 0.99}
    """
    if train not in table or test not in table:
        return None
    train_step = first_step_at_or_above(table[train].dropna(), threshold)
    if train_step is None:
        return None
    test_step = first_step_at_or_above(table[test].dropna(), threshold)
    gap = None if test_step is None else test_step - train_step
    ratio = None if test_step is None or train_step == 0 else test_step / train_step
    data = {
        "train_step": train_step,
        "test_step": test_step,
        "gap": gap,
        "ratio": ratio,
        "threshold": threshold,
    }
    return Event("grokking", test_step if test_step is not None else train_step, data)


def detect(table: pd.DataFrame, grok_threshold: float = 0.99) -> list[Event]:
    """Every event found in a run's metric table."""
    found = [grokking(table, grok_threshold)]
    return [e for e in found if e is not None]
