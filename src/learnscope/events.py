"""Events read off the stored metric series.

Detectors are small pure functions of a wide metric table (one row per step, one column per
metric, as returned by ``Store.metric_table``; names as the trainer and the probes write
them) and return :class:`Event` records. :func:`detect` runs them all with the thresholds of
the ``events:`` config section (:class:`learnscope.config.EventsConfig`):

- ``grokking`` (Power et al. 2022): when the training set is fitted, when the test set is;
- ``slingshot`` (Thilak et al. 2022): cycles of last-layer norm growth and a loss spike;
- ``attention_collapse`` (Zhai et al. 2023, sigmaReparam): a head's attention entropy falls
  below a fraction of log(context) and stays there;
- ``rank_collapse``: a layer's effective rank falls below a fraction of its width and stays;
- ``divergence``: the first non-finite loss;
- ``structure_onset`` (Chen et al. 2024, "Sudden drops in the loss"): syntactic attention
  structure (the ``sas`` probe) rises abruptly; where the loss drop steepest, and the lag.

Sizes that the metric names do not carry (a site's width, an attention pattern's context
length) come in ``sizes``: site name -> size of the activation's last dimension (keys, for an
attention pattern ``(b, head, query, key)``); :func:`learnscope.models.hooks.site_sizes` measures
them on a model.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, get_args

import numpy as np
import pandas as pd

from learnscope.config import EventsConfig, StopCondition


@dataclass
class Event:
    kind: str
    step: int | None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def key(self) -> tuple:
        """Identity of an event across re-detections (an online watcher prints each once)."""
        return (self.kind, self.step, self.data.get("site"), self.data.get("head"))


def first_step_at_or_above(steps: np.ndarray, values: np.ndarray, threshold: float) -> int | None:
    """First step whose value is ``>= threshold`` (NaN: no value), or None.

    >>> first_step_at_or_above(np.array([0, 10, 20, 30]), np.array([0.1, np.nan, 0.995, 0.9]), 0.99)
    20
    """
    hit = np.flatnonzero(np.asarray(values, dtype=float) >= threshold)
    return int(steps[hit[0]]) if len(hit) else None


def grokking_steps(
    steps: np.ndarray, train: np.ndarray, test: np.ndarray, threshold: float = 0.99
) -> Event | None:
    """The grokking rule on arrays (``train`` and ``test`` accuracy at ``steps``, NaN where a
    step has no value): what :func:`grokking` finds on a table, and the ensemble's and
    ``StopWhen``'s detectors on their columns and rows, from this one function.

    >>> grokking_steps(np.array([0, 100, 200]), np.array([0.0, 1.0, 1.0]), np.array([0, 0.2, 1]))
    Event(kind='grokking', step=200, data={'train_step': 100, 'test_step': 200, 'gap': 100, \
'ratio': 2.0, 'threshold': 0.99})
    """
    train_step = first_step_at_or_above(steps, train, threshold)
    if train_step is None:
        return None
    test_step = first_step_at_or_above(steps, test, threshold)
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


def grokking(
    table: pd.DataFrame, threshold: float = 0.99, train: str = "train/acc", test: str = "test/acc"
) -> Event | None:
    """Grokking (Power et al. 2022): when the training set is fitted and when the test set is.

    ``train_step``: first step with train accuracy >= threshold; ``test_step``: the same for
    test accuracy; ``gap = test_step - train_step`` and ``ratio = test_step / train_step``
    (test lagging by a factor). The event is returned once training accuracy reaches the
    threshold (``test_step`` stays None while the network has only memorised); its step is the
    step of generalisation, or of fitting when there is none yet (:func:`grokking_steps`).

    >>> t = pd.DataFrame({"train/acc": [0.0, 1.0, 1.0, 1.0], "test/acc": [0.0, 0.1, 0.5, 1.0]},
    ...                  index=[0, 100, 200, 300])
    >>> grokking(t).data
    {'train_step': 100, 'test_step': 300, 'gap': 200, 'ratio': 3.0, 'threshold': 0.99}
    """
    if train not in table or test not in table:
        return None
    train_acc, test_acc = table[train].to_numpy(float), table[test].to_numpy(float)
    return grokking_steps(table.index.to_numpy(), train_acc, test_acc, threshold)


# -- slingshot ------------------------------------------------------------------------------


def last_layer_norm(table: pd.DataFrame) -> str | None:
    """The ``weight_norm/...`` column of the model's final projection to logits.

    ``out.weight`` (MLP), ``unembed.weight`` or ``lm_head.weight`` (GPT); otherwise the last
    ``weight_norm/`` column in logging order.
    """
    norms = [c for c in table.columns if str(c).startswith("weight_norm/")]
    for name in ("out.weight", "unembed.weight", "lm_head.weight", "head.weight"):
        if f"weight_norm/{name}" in norms:
            return f"weight_norm/{name}"
    return norms[-1] if norms else None


def slingshot(
    table: pd.DataFrame,
    spike: float = 10.0,
    recover: float = 2.0,
    norm_growth: float = 0.05,
    window: int = 5,
    min_peak: float = 1e-3,
    loss: str | None = None,
    norm: str | None = None,
    test: str = "test/acc",
) -> list[Event]:
    """Slingshot cycles (Thilak et al. 2022): the last layer's weight norm grows quickly, then
    the training loss spikes and recovers.

    The rule, on the evaluated training loss ``L`` (``train/loss``, else ``train_step/loss``)
    and the norm ``N`` of the last layer (:func:`last_layer_norm`):

    1. the baseline ``b_t = min_{s<t} L_s`` is the best loss so far, over losses above 0 (a
       float32 cross-entropy near zero rounds to exactly 0.0, which would make every later
       spike infinitely large and no recovery possible);
    2. a cycle starts at the first step ``t`` with ``L_t > spike * b_t`` and
       ``L_t >= min_peak`` (a jump from 1e-8 to 1e-7 is float32 noise near zero, not a spike);
    3. it counts only if the norm grew just before: ``N_t / N_{t-window} - 1 >= norm_growth``
       (``window`` evaluations back, or the first one);
    4. it ends at the first later step with ``L <= recover * b_t`` (it recovered); a spike
       that never recovers is not a cycle.

    Each cycle is an event at its start step with ``size = max L / b_t`` over the cycle (the
    spike's height as a factor), ``peak_step``, ``end_step``, ``baseline_loss``, ``peak_loss``
    and ``norm_growth``. The search resumes after the cycle's end.

    Where the table has a test accuracy ``A`` (``test``, evaluated at the same steps), each
    cycle also carries ``test_jump`` (Thilak et al.: grokking happens at slingshot onsets):
    with ``t`` the onset's evaluation and ``e`` the cycle's end,
    ``test_jump = max(A_u for t <= u <= e + window) - A_{t-1}``: how far the test accuracy
    rose, over the cycle and the ``window`` evaluations after its end, above its value at the
    evaluation before the onset (``test_before``; ``test_after`` is the max, at
    ``test_after_step``). :func:`slingshot_grokking` reads it off the events.

    >>> L = [1.0, 0.1, 0.01, 0.01, 0.5, 0.02, 0.01]
    >>> N = [1.0, 1.0, 1.1, 1.3, 1.4, 1.4, 1.4]
    >>> t = pd.DataFrame({"train/loss": L, "weight_norm/out.weight": N}, index=range(7))
    >>> [(e.step, e.data["size"], e.data["end_step"]) for e in slingshot(t, window=2)]
    [(4, 50.0, 5)]
    """
    loss = loss or next((c for c in ("train/loss", "train_step/loss") if c in table), None)
    norm = norm or last_layer_norm(table)
    if loss is None or norm is None:
        return []
    both = table[[loss, norm]].dropna()
    L, N, steps = both[loss].to_numpy(float), both[norm].to_numpy(float), both.index.to_numpy()
    acc = table[test].reindex(both.index).to_numpy(float) if test in table else None
    return slingshot_cycles(L, N, steps, acc, spike, recover, norm_growth, window, min_peak,
                            loss, norm)  # fmt: skip


def slingshot_cycles(
    L: np.ndarray,
    N: np.ndarray,
    steps: np.ndarray,
    acc: np.ndarray | None,
    spike: float,
    recover: float,
    norm_growth: float,
    window: int,
    min_peak: float,
    loss: str,
    norm: str,
) -> list[Event]:
    """:func:`slingshot`'s rule on arrays: the loss ``L`` and norm ``N`` at the ``steps``
    where both have a value, the test accuracy ``acc`` at those steps (or None); ``loss`` and
    ``norm`` are the columns' names, recorded in each event."""
    found: list[Event] = []
    t, best = 1, L[0] if len(L) else math.inf
    while t < len(L):
        if not (np.isfinite(L[t]) and L[t] > spike * best and L[t] >= min_peak and best > 0):
            best = min(best, L[t]) if np.isfinite(L[t]) and (L[t] > 0 or best == 0) else best
            t += 1
            continue
        before = N[max(0, t - window)]
        growth = N[t] / before - 1 if before > 0 else 0.0
        end = next((u for u in range(t + 1, len(L)) if L[u] <= recover * best), None)
        if growth < norm_growth or end is None:
            t += 1
            continue
        peak = t + int(np.argmax(L[t:end]))
        data = {
            "step": int(steps[t]),
            "size": round(float(L[peak] / best), 6),
            "peak_step": int(steps[peak]),
            "end_step": int(steps[end]),
            "baseline_loss": float(best),
            "peak_loss": float(L[peak]),
            "norm_growth": round(float(growth), 6),
            "loss": loss,
            "norm": norm,
        }
        if acc is not None:
            data.update(_test_jump(acc, steps, t, end + window))
        found.append(Event("slingshot", int(steps[t]), data))
        best = min(best, L[end]) if L[end] > 0 else best
        t = end + 1
    return found


def _test_jump(acc: np.ndarray, steps: np.ndarray, t: int, last: int) -> dict[str, Any]:
    """``test_jump = max(acc[t..last]) - acc[t-1]`` (NaNs skipped; the value before is the
    last finite one before ``t``), with ``test_before``, ``test_after`` and its step; {} if
    either side has no value."""
    before = acc[:t][np.isfinite(acc[:t])]
    after = acc[t : last + 1]
    if not len(before) or not np.isfinite(after).any():
        return {}
    k = t + int(np.nanargmax(after))
    return {
        "test_before": float(before[-1]),
        "test_after": float(acc[k]),
        "test_after_step": int(steps[k]),
        "test_jump": round(float(acc[k] - before[-1]), 12),
    }


def slingshot_grokking(found: list[Event]) -> dict[str, Any]:
    """Whether grokking follows a slingshot (Thilak et al. 2022: "grokking happens at
    slingshot onsets"), read off a run's events:

    - ``slingshot_test_jump = max_i test_jump_i`` over the slingshot cycles ``i`` (each
      ``test_jump_i = max A over the cycle and the window after it - A just before its
      onset``, :func:`slingshot`): the largest rise of test accuracy at a slingshot;
    - ``slingshot_grok_lag = g - max{s_i : s_i <= g}``: the grok step ``g`` (the grokking
      event's ``test_step``, test accuracy >= its threshold) minus the nearest slingshot
      onset ``s_i`` at or before it, in steps (absent when the run did not grok or grokked
      before any slingshot).

    >>> ev = [Event("slingshot", 100, {"test_jump": 0.1}), Event("slingshot", 400,
    ...       {"test_jump": 0.7}), Event("grokking", 460, {"test_step": 460})]
    >>> slingshot_grokking(ev)
    {'slingshot_test_jump': 0.7, 'slingshot_grok_lag': 60}
    """
    cycles = [e for e in found if e.kind == "slingshot"]
    out: dict[str, Any] = {}
    jumps = [e.data["test_jump"] for e in cycles if e.data.get("test_jump") is not None]
    if jumps:
        out["slingshot_test_jump"] = max(jumps)
    grok = next((e.data.get("test_step") for e in found if e.kind == "grokking"), None)
    before = [e.step for e in cycles if grok is not None and e.step is not None and e.step <= grok]
    if before:
        out["slingshot_grok_lag"] = grok - max(before)
    return out


# -- collapse -------------------------------------------------------------------------------


def stays_below(series: pd.Series, threshold: float, patience: int = 3) -> int | None:
    """First step from which ``series`` stays below ``threshold`` to its last value, provided
    that covers at least ``patience`` values; else None.

    >>> stays_below(pd.Series([5.0, 0.5, 3.0, 0.4, 0.3, 0.2], index=range(0, 60, 10)), 1.0)
    30
    >>> stays_below(pd.Series([5.0, 0.5, 3.0, 0.4, 0.3], index=range(0, 50, 10)), 1.0) is None
    True
    """
    s = series.dropna()
    above = np.flatnonzero(~(s.to_numpy(float) < threshold))
    start = 0 if len(above) == 0 else above[-1] + 1
    if len(s) - start < max(1, patience):
        return None
    return int(s.index[start])


_HEAD = re.compile(r"^attention_entropy/(?P<site>.+)/h(?P<head>\d+)$")


def attention_collapse(
    table: pd.DataFrame, contexts: dict[str, int], fraction: float = 0.1, patience: int = 3
) -> list[Event]:
    """Attention-entropy collapse (Zhai et al. 2023): a head's entropy
    ``Ent(A) = -sum_j A_ij log A_ij`` (averaged over queries, column
    ``attention_entropy/{site}/h{i}``) falls below ``fraction * log(context)`` and stays there
    for the rest of the run (at least ``patience`` evaluations). ``log(context)`` is the
    entropy of uniform attention over ``context`` keys, the most a head can have; ``contexts``
    maps the site to its context length (heads of sites without one are skipped).

    >>> t = pd.DataFrame({"attention_entropy/b.0.attn.hook_pattern/h1": [2.0, 1.0, 0.1, 0.1, 0.05]})
    >>> e = attention_collapse(t, {"b.0.attn.hook_pattern": 8})[0]
    >>> e.step, e.data["head"], round(e.data["threshold"], 4)
    (2, 1, 0.2079)
    """
    found = []
    for col in table.columns:
        m = _HEAD.match(str(col))
        if not m or contexts.get(m["site"], 0) < 2:
            continue
        threshold = fraction * math.log(contexts[m["site"]])
        step = stays_below(table[col], threshold, patience)
        if step is not None:
            data = {
                "site": m["site"],
                "head": int(m["head"]),
                "entropy": float(table[col].dropna().iloc[-1]),
                "threshold": threshold,
                "context": int(contexts[m["site"]]),
                "fraction": fraction,
            }
            found.append(Event("attention_collapse", step, data))
    return found


def rank_collapse(
    table: pd.DataFrame,
    widths: dict[str, int],
    fraction: float = 0.05,
    patience: int = 3,
    probes: tuple[str, ...] = ("effective_rank", "rankme"),
) -> list[Event]:
    """Rank collapse: a layer's effective rank (column ``effective_rank/{site}`` or
    ``rankme/{site}``; Roy & Vetterli 2007, ``exp`` of the entropy of the normalised singular
    values) falls below ``fraction * width`` and stays there (at least ``patience``
    evaluations). ``widths`` maps a site to its width (the activation's last dimension, or the
    smaller side of a weight matrix); sites without one are skipped.

    >>> t = pd.DataFrame({"effective_rank/layers.0.hook_post": [40.0, 30.0, 2.0, 1.5, 1.2]})
    >>> e = rank_collapse(t, {"layers.0.hook_post": 64})[0]
    >>> e.step, e.data["threshold"]
    (2, 3.2)
    """
    found = []
    for col in table.columns:
        probe, _, site = str(col).partition("/")
        if probe not in probes or site not in widths:
            continue
        threshold = fraction * widths[site]
        step = stays_below(table[col], threshold, patience)
        if step is not None:
            data = {
                "site": site,
                "probe": probe,
                "rank": float(table[col].dropna().iloc[-1]),
                "threshold": threshold,
                "width": int(widths[site]),
                "fraction": fraction,
            }
            found.append(Event("rank_collapse", step, data))
    return found


# -- divergence -----------------------------------------------------------------------------


def divergence(table: pd.DataFrame) -> Event | None:
    """The first non-finite loss in a ``*/loss`` column: a value of +-inf, or a NaN that
    ends the series.

    SQLite stores NaN as NULL, so a NaN loss reads back as missing. A missing value counts
    only where an evaluation happened (``lr`` is logged at every eval), after the column's
    last finite value (a diverged run stops, so its losses never come back; a series that
    starts late, like ``train_step/loss`` at step 0, or one logged less often, is not
    diverged).

    >>> t = pd.DataFrame({"train/loss": [1.0, 0.5, np.nan], "lr": [1.0, 1.0, 1.0]})
    >>> divergence(t).to_dict()
    {'kind': 'divergence', 'step': 2, 'data': {'step': 2, 'metric': 'train/loss'}}
    """
    losses = sorted(  # training losses first: on a tie they name the cause
        (c for c in table.columns if str(c).endswith("/loss")),
        key=lambda c: (not str(c).startswith("train"), str(c)),
    )
    evaluated = table["lr"].notna().to_numpy() if "lr" in table else np.zeros(len(table), bool)
    first: tuple[int, str] | None = None
    for col in losses:
        values = table[col].to_numpy(float)
        bad = np.isinf(values)
        finite = np.flatnonzero(np.isfinite(values))
        if len(finite):
            after = np.arange(len(values)) > finite[-1]
            bad |= np.isnan(values) & evaluated & after
        if bad.any():
            step = int(table.index[np.flatnonzero(bad)[0]])
            if first is None or step < first[0]:
                first = (step, str(col))
    if first is None:
        return None
    return Event("divergence", first[0], {"step": first[0], "metric": first[1]})


# -- syntactic attention structure ----------------------------------------------------------


def steepest_rise(series: pd.Series, window: int = 3) -> tuple[int, float] | None:
    """``(step, gain)``: the eval ``k`` where ``series`` gains most over the next ``window``
    evals, ``gain = s[k + window] - s[k]``; None for a series shorter than ``window + 1``.

    >>> steepest_rise(pd.Series([0.2, 0.0, 0.1, 0.6, 0.7, 0.7], index=range(0, 600, 100)), 2)
    (100, 0.6)
    """
    s = series.dropna()
    if len(s) <= window:
        return None
    gain = (s.shift(-window) - s).dropna()
    return int(gain.idxmax()), round(float(gain.max()), 12)


def sharpest_step(series: pd.Series, start: int, window: int) -> int:
    """The eval in ``(start, start + window evals]`` after the largest one-eval change of
    ``series`` (its jump), e.g. where a steepest rise or an accelerating drop happens."""
    s = series.dropna()
    k = s.index.get_loc(start)
    return int(s.diff().iloc[k + 1 : k + window + 1].idxmax())


def onset(series: pd.Series, window: int = 3) -> int | None:
    """The eval ``k`` where ``series`` accelerates most over windows of ``window`` evals: the
    argmax of ``(s[k + w] - s[k]) - (s[k] - s[k - w])``, or None if it never accelerates (a
    loss that only falls ever more slowly has no onset; for a loss pass ``-loss``).

    >>> onset(pd.Series([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0], index=range(0, 800, 100)), 1)
    300
    """
    s = series.dropna()
    accel = ((s.shift(-window) - s) - (s - s.shift(window))).dropna()
    if accel.empty or accel.max() <= 0:
        return None
    return int(accel.idxmax())


def structure_onset(
    table: pd.DataFrame,
    rise: float = 0.1,
    window: int = 3,
    sas: str = "sas/max",
    loss: str = "test/loss",
) -> Event | None:
    """Structure onset (Chen et al. 2024, "Sudden drops in the loss: syntax acquisition, phase
    transitions, and simplicity bias in MLMs"): SAS (``sas/max``, the best head's UAS) rises
    abruptly, with a drop in the loss.

    SAS's steepest rise over ``window`` evals (:func:`steepest_rise`) must gain at least
    ``rise`` (an abrupt rise, not a drift); ``sas_step`` is the eval inside it after SAS's
    largest one-eval jump (:func:`sharpest_step`). ``loss_step``: where the loss's fall
    accelerates most over ``window`` evals (:func:`onset` of ``-loss``, found on the loss
    alone), at the largest one-eval drop that follows; ``lag = loss_step - sas_step``
    (Chen et al. find them together: lag ~ 0). Also ``sas_before``, ``sas_after`` and the
    loss at the ends of the rise.

    >>> steps = range(0, 1100, 100)
    >>> t = pd.DataFrame({"sas/max": [.1, .1, .1, .1, .1, .5, .6, .6, .6, .6, .6],
    ...                   "test/loss": [3, 2.6, 2.4, 2.3, 2.3, 1.6, 1.5, 1.5, 1.5, 1.5, 1.5]},
    ...                  index=steps)
    >>> e = structure_onset(t, window=2)
    >>> e.step, e.data["loss_step"], e.data["lag"], e.data["sas_after"]
    (500, 500, 0, 0.6)
    """
    if sas not in table:
        return None
    series = table[sas].dropna()
    found = steepest_rise(series, window)
    if found is None or found[1] < rise:
        return None
    start = found[0]
    end = series.index[series.index.get_loc(start) + window]
    step = sharpest_step(series, start, window)
    data: dict[str, Any] = {
        "sas_step": step,
        "sas_before": float(series[start]),
        "sas_after": float(series[end]),
        "rise": rise,
        "loss": loss,
        "loss_step": None,
        "lag": None,
    }
    if loss in table:
        losses = table[loss].dropna()
        drop = onset(-losses, window)
        if drop is not None:
            drop = sharpest_step(-losses, drop, window)
            data.update(loss_step=drop, lag=drop - step)
        at = {
            k: losses[losses.index <= v] for k, v in (("loss_before", start), ("loss_after", end))
        }
        data.update({k: float(v.iloc[-1]) if len(v) else None for k, v in at.items()})
    return Event("structure_onset", step, data)


# -- all of them ----------------------------------------------------------------------------


def _fitted_split(table: pd.DataFrame) -> str:
    """The accuracy that says the training set is fitted: ``train_clean/acc`` when some
    training labels are corrupted (the corrupted rows are not to be fitted), else
    ``train/acc``."""
    return "train_clean/acc" if "train_clean/acc" in table else "train/acc"


def softmax_collapse(table: pd.DataFrame, fraction: float = 0.5) -> Event | None:
    """Softmax collapse (Prieto et al. 2025): the first step at which the fraction of probe
    rows whose float softmax sum is exactly 1 (column ``softmax_collapse/logits``, the probe of
    that name: the gradient of their correct class is exactly 0) reaches ``fraction``.

    >>> t = pd.DataFrame({"softmax_collapse/logits": [0.0, 0.2, 0.7, 0.9]}, index=[0, 5, 10, 15])
    >>> e = softmax_collapse(t)
    >>> e.step, e.data["fraction"]
    (10, 0.7)
    """
    col = "softmax_collapse/logits"
    if col not in table.columns:
        return None
    s = table[col].dropna()
    hit = s[s >= fraction]
    if hit.empty:
        return None
    step = int(hit.index[0])
    return Event("softmax_collapse", step, {"fraction": float(hit.iloc[0]), "threshold": fraction})


def _detectors(cfg: Any, sizes: dict[str, int]) -> dict[str, Any]:
    """Event kind -> ``find(table) -> list[Event]``, with the thresholds of ``cfg``."""
    return {
        "grokking": lambda t: [
            grokking(t, cfg.grok_threshold, train=_fitted_split(t))  # clean rows, with noise
        ],
        "slingshot": lambda t: slingshot(
            t,
            spike=cfg.slingshot_spike,
            recover=cfg.slingshot_recover,
            norm_growth=cfg.slingshot_norm_growth,
            window=cfg.slingshot_window,
            min_peak=cfg.slingshot_min_peak,
        ),
        "attention_collapse": lambda t: attention_collapse(
            t, sizes, cfg.attention_fraction, cfg.collapse_patience
        ),
        "rank_collapse": lambda t: rank_collapse(
            t, sizes, cfg.rank_fraction, cfg.collapse_patience
        ),
        "divergence": lambda t: [divergence(t)],
        "structure_onset": lambda t: [structure_onset(t, cfg.sas_rise, cfg.sas_window)],
        "softmax_collapse": lambda t: [softmax_collapse(t, cfg.softmax_collapse)],
    }


def detect(
    table: pd.DataFrame, cfg: Any = None, sizes: dict[str, int] | None = None
) -> list[Event]:
    """Every event found in a run's metric table, ordered by step.

    ``cfg`` is the ``events`` config section (:class:`learnscope.config.EventsConfig`), or a
    float taken as the grokking threshold (older callers), or None for the defaults.
    """

    if cfg is None or isinstance(cfg, (int, float)):
        cfg = EventsConfig() if cfg is None else EventsConfig(grok_threshold=cfg)
    if table is None or table.empty:
        return []
    found = [e for find in _detectors(cfg, sizes or {}).values() for e in find(table)]
    events = [e for e in found if e is not None]
    return sorted(events, key=lambda e: (e.step is None, e.step or 0))


#: Names a run may stop on (``train.stop_when``), listed once in ``config.StopCondition``
STOP_CONDITIONS: tuple[str, ...] = get_args(StopCondition)


def stop_condition(
    table: pd.DataFrame, name: str, cfg: Any, sizes: dict[str, int] | None = None
) -> Event | None:
    """The event behind stop condition ``name`` (:data:`STOP_CONDITIONS`) if it has fired on
    ``table`` and still holds at its last row, else None; only that detector runs.

    >>> t = pd.DataFrame({"train/acc": [0.2, 1.0, 1.0], "test/acc": [0.0, 0.3, 1.0]},
    ...                  index=[0, 10, 20])
    >>> stop_condition(t, "grokked", None).step, stop_condition(t.iloc[:2], "grokked", None)
    (20, None)

    ``fitted``: the training accuracy is exactly 1 at the last evaluation (every training
    example right: the criterion of effective model complexity, Shwartz-Ziv et al. 2024).

    >>> stop_condition(t, "fitted", None).step, stop_condition(t.iloc[:1], "fitted", None)
    (20, None)
    """

    cfg = cfg if cfg is not None else EventsConfig()
    if name == "grokked":
        event = grokking(table, cfg.grok_threshold, train=_fitted_split(table))
        if event is None or event.data["test_step"] is None:
            return None
        last = table["test/acc"].dropna()
        return event if len(last) and last.iloc[-1] >= cfg.grok_threshold else None
    if name == "fitted":
        acc = table["train/acc"].dropna() if "train/acc" in table else table.iloc[:0, 0]
        if len(acc) and acc.iloc[-1] >= 1.0:
            return Event("fitted", int(acc.index[-1]), {"train_acc": float(acc.iloc[-1])})
        return None
    if name not in STOP_CONDITIONS:
        raise ValueError(f"unknown stop condition {name!r}; allowed: {STOP_CONDITIONS}")
    found = _detectors(cfg, sizes or {})[name](table)
    return found[0] if found else None


def stop_condition_rows(
    rows: dict[int, dict[str, float]], name: str, cfg: Any = None
) -> Event | None:
    """:func:`stop_condition` for ``grokked`` and ``fitted`` on the rows seen so far (step ->
    the values published at it, the table :class:`~learnscope.train.callbacks.StopWhen`
    would build) without building the table: the same event, from the steps in order and
    each column's non-missing values (tested against :func:`stop_condition`)."""
    cfg = cfg if cfg is not None else EventsConfig()
    steps = np.array(sorted(rows), dtype=np.int64)

    def column(name: str) -> np.ndarray | None:
        """The column's values at ``steps`` (NaN where absent), None if not a column."""
        if not any(name in row for row in rows.values()):
            return None
        return np.array([rows[s].get(name, np.nan) for s in steps.tolist()], dtype=float)

    if name == "fitted":
        acc = column("train/acc")
        seen = [] if acc is None else np.flatnonzero(~np.isnan(acc))
        if len(seen) and acc[seen[-1]] >= 1.0:
            return Event("fitted", int(steps[seen[-1]]), {"train_acc": float(acc[seen[-1]])})
        return None
    if name != "grokked":
        raise ValueError(f"stop_condition_rows: {name!r}; allowed: grokked, fitted")
    train = column("train_clean/acc")
    train = column("train/acc") if train is None else train
    test = column("test/acc")
    if train is None or test is None:
        return None
    event = grokking_steps(steps, train, test, cfg.grok_threshold)
    last = test[~np.isnan(test)]
    if event is None or event.data["test_step"] is None or last[-1] < cfg.grok_threshold:
        return None
    return event


def label(event: Event) -> str:
    """The event's name for a person: its kind in words, and ``fitted`` for a grokking event
    whose test threshold was never reached (only the training set was fitted).

    >>> label(Event("grokking", 56, {"train_step": 56, "test_step": None}))
    'fitted'
    >>> label(Event("attention_collapse", 10, {}))
    'attention collapse'
    """
    if event.kind == "grokking" and event.data.get("test_step") is None:
        return "fitted"
    return event.kind.replace("_", " ")


def describe(event: Event) -> str:
    """One line for a person: ``grokked at step 4 200 (5.3x after fitting)``.

    >>> describe(Event("divergence", 1200, {"metric": "train/loss"}))
    'diverged at step 1 200 (train/loss not finite)'
    """
    d, step = event.data, _num(event.step)
    if event.kind == "grokking":
        if d.get("test_step") is None:
            return f"fitted the training set at step {_num(d['train_step'])} (test not yet)"
        ratio = f", {d['ratio']:.3g}x after fitting" if d.get("ratio") else ""
        return (
            f"grokked at step {_num(d['test_step'])} "
            f"(train fitted at step {_num(d['train_step'])}{ratio})"
        )
    if event.kind == "slingshot":
        return (
            f"slingshot at step {step}: loss x{d['size']:.3g}, "
            f"recovered by step {_num(d['end_step'])}"
        )
    if event.kind == "attention_collapse":
        return (
            f"attention entropy collapsed at step {step}: {d['site']} head {d['head']} "
            f"({d['entropy']:.3g} < {d['threshold']:.3g} nats)"
        )
    if event.kind == "rank_collapse":
        return (
            f"rank collapsed at step {step}: {d['site']} ({d['rank']:.3g} < {d['threshold']:.3g})"
        )
    if event.kind == "divergence":
        return f"diverged at step {step} ({d.get('metric', 'loss')} not finite)"
    if event.kind == "softmax_collapse":
        return (
            f"softmax collapse at step {step}: {d['fraction']:.0%} of the probe rows' softmax "
            "sums are exactly 1 in float (their gradient is 0)"
        )
    if event.kind == "structure_onset":
        drop = (
            "" if d.get("loss_step") is None else f"; steepest loss drop at {_num(d['loss_step'])}"
        )
        return (
            f"syntactic attention structure rose at step {step} "
            f"(SAS {d['sas_before']:.2f} -> {d['sas_after']:.2f}{drop})"
        )
    return f"{event.kind} at step {step}"


def _num(n: Any) -> str:
    """Thousands separated by a space: ``4 200``."""
    return f"{n:,}".replace(",", " ") if isinstance(n, int) else str(n)
