from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from learnscope.events import detect, grokking


def series(train, test, every=10):
    steps = np.arange(len(train)) * every
    return pd.DataFrame({"train/acc": train, "test/acc": test}, index=steps)


def test_grokking_found_with_gap():
    n = 100
    train = np.minimum(1.0, np.arange(n) / 10)  # fits at index 10 (step 100)
    test = np.where(np.arange(n) >= 60, 1.0, 0.05)  # generalises at step 600
    e = grokking(series(train, test))
    assert e.data["train_step"] == 100 and e.data["test_step"] == 600
    assert e.data["gap"] == 500 and e.data["ratio"] == 6.0 and e.step == 600


def test_memorisation_only_has_no_test_step():
    e = grokking(series(np.ones(50), np.full(50, 0.3)))
    assert e.data["train_step"] == 0 and e.data["test_step"] is None and e.data["gap"] is None


def test_no_event_when_training_set_never_fitted():
    assert grokking(series(np.full(50, 0.9), np.full(50, 0.9))) is None
    assert detect(series(np.full(50, 0.9), np.full(50, 0.9))) == []


def test_threshold_respected_and_nan_ignored():
    train = np.array([0.2, np.nan, 0.96, 0.97, 1.0])
    test = np.array([0.0, 0.0, 0.5, 0.96, 0.96])
    e = grokking(series(train, test), threshold=0.95)
    assert e.data["train_step"] == 20 and e.data["test_step"] == 30


# -- slingshot ------------------------------------------------------------------------------

from learnscope.config import EventsConfig  # noqa: E402
from learnscope.events import (  # noqa: E402
    attention_collapse,
    describe,
    divergence,
    rank_collapse,
    slingshot,
    structure_onset,
)


def slingshot_series(cycles=((100, 40.0), (250, 20.0)), n=400, norm_jump=0.2):
    """Loss decaying to 1e-3 with a spike of height ``size`` at each cycle step (recovering
    within 10 steps), and a last-layer norm that ramps up by ``norm_jump`` over the 5 steps
    before each spike and is flat otherwise."""
    steps = np.arange(n)
    loss = np.maximum(1e-3, np.exp(-steps / 10.0))
    norm = np.ones(n)
    for start, size in cycles:
        base = loss[:start].min()
        loss[start : start + 10] = base * size * np.linspace(1.0, 0.1, 10) + base
        norm[start - 5 : start + 1] += np.linspace(0, norm_jump, 6)
        norm[start + 1 :] = norm[start]
    return pd.DataFrame({"train/loss": loss, "weight_norm/out.weight": norm}, index=steps * 10)


def test_slingshot_finds_each_cycle_with_step_and_size():
    found = slingshot(slingshot_series())
    assert [e.step for e in found] == [1000, 2500]
    assert [round(e.data["size"]) for e in found] == [41, 21]  # base*(size+1)/base
    assert all(e.data["end_step"] > e.step for e in found)
    assert found[0].data["norm"] == "weight_norm/out.weight"


def test_no_slingshot_without_norm_growth_or_recovery_or_spike():
    assert slingshot(slingshot_series(norm_jump=0.0)) == []  # spike without norm growth
    smooth = slingshot_series(cycles=())
    assert slingshot(smooth) == []
    t = slingshot_series(cycles=((300, 40.0),))
    t.loc[3000:, "train/loss"] = 1.0  # spikes and never comes back
    assert slingshot(t) == []
    # the same cycles near float32's floor (loss 1e-8 -> 4e-7) are noise, not slingshots
    tiny = slingshot_series()
    tiny["train/loss"] *= 1e-5
    assert slingshot(tiny) == [] and len(slingshot(tiny, min_peak=0.0)) == 2
    # a spike of 5x is below the default factor of 10
    assert slingshot(slingshot_series(cycles=((100, 4.0),))) == []


def test_slingshot_baseline_ignores_a_loss_rounded_to_zero():
    """A float32 cross-entropy at its floor reads exactly 0.0 between cycles (as in the
    slingshot recipe); the baseline stays the smallest positive loss, so later spikes count."""
    t = slingshot_series(cycles=((100, 40.0), (250, 20.0)))
    t.loc[1200:2400, "train/loss"] = 0.0
    assert [e.step for e in slingshot(t)] == [1000, 2500]
    assert all(e.data["baseline_loss"] > 0 for e in slingshot(t))


def test_slingshot_thresholds_come_from_config():
    table = slingshot_series(cycles=((100, 4.0),))
    assert detect(table, EventsConfig(slingshot_spike=3.0))[0].kind == "slingshot"
    assert [e.kind for e in detect(table)] == []


# -- attention and rank collapse ------------------------------------------------------------

SITE = "blocks.0.attn.hook_pattern"


def test_attention_collapse_found_and_persistent_only():
    ctx = 16  # log 16 = 2.77 nats; threshold 0.277 at fraction 0.1
    falling = np.r_[np.linspace(2.7, 0.5, 10), np.full(10, 0.05)]
    steady = np.full(20, 2.5)
    dip = np.r_[np.full(10, 2.5), np.full(5, 0.05), np.full(5, 2.5)]  # recovers: no collapse
    t = pd.DataFrame(
        {
            f"attention_entropy/{SITE}/h0": falling,
            f"attention_entropy/{SITE}/h1": steady,
            f"attention_entropy/{SITE}/h2": dip,
        },
        index=np.arange(20) * 5,
    )
    found = attention_collapse(t, {SITE: ctx})
    assert [(e.step, e.data["head"]) for e in found] == [(50, 0)]
    assert abs(found[0].data["threshold"] - 0.1 * np.log(16)) < 1e-12
    assert attention_collapse(t, {}) == []  # no context known: nothing claimed
    assert attention_collapse(t, {SITE: ctx}, fraction=0.01) == []  # 0.05 > 0.0277


def test_rank_collapse_found_against_width():
    t = pd.DataFrame(
        {
            "effective_rank/layers.0.hook_post": np.r_[np.linspace(100, 30, 10), np.full(5, 20.0)],
            "effective_rank/layers.1.hook_post": np.full(15, 60.0),
        },
        index=np.arange(15) * 10,
    )
    widths = {"layers.0.hook_post": 500, "layers.1.hook_post": 500}
    found = rank_collapse(t, widths)  # threshold 25
    assert [(e.step, e.data["site"]) for e in found] == [(100, "layers.0.hook_post")]
    assert rank_collapse(t, widths, fraction=0.02) == []  # threshold 10
    e = detect(t, EventsConfig(rank_fraction=0.05), sizes=widths)
    assert [x.kind for x in e] == ["rank_collapse"]


# -- divergence ---------------------------------------------------------------------------


def test_divergence_inf_or_nan_at_an_eval_step():
    t = pd.DataFrame(
        {
            "train/loss": [1.0, 0.5, np.inf, np.nan],
            "test/loss": [1.0, 0.6, 0.7, np.nan],
            "lr": [1.0, 1.0, 1.0, 1.0],
        },
        index=[0, 10, 20, 30],
    )
    assert divergence(t).data == {"step": 20, "metric": "train/loss"}
    t2 = t.copy()
    t2.loc[20, "train/loss"] = 0.4
    assert divergence(t2).data == {"step": 30, "metric": "train/loss"}  # first column wins a tie
    # a loss missing where no eval happened (a probe-only row) is not a divergence
    t3 = pd.DataFrame(
        {"train/loss": [1.0, np.nan, 0.5], "lr": [1.0, np.nan, 1.0], "rankme/x": [1, 2, 3]},
        index=[0, 5, 10],
    )
    assert divergence(t3) is None
    # a series that starts late (the training batch's loss has no value at step 0), or is
    # evaluated less often than the others, has NaNs at eval steps but did not diverge
    t4 = pd.DataFrame(
        {
            "train_step/loss": [np.nan, 0.9, 0.8, 0.7],
            "test_len_12/loss": [2.0, np.nan, 1.5, np.nan],
            "train/loss": [1.0, 0.9, 0.8, 0.7],
            "lr": [1.0, 1.0, 1.0, 1.0],
        },
        index=[0, 10, 20, 30],
    )
    t4.loc[30, "test_len_12/loss"] = 1.4
    assert divergence(t4) is None


def test_healthy_run_has_no_events_but_grokking():
    n = 60
    train = np.minimum(1.0, np.arange(n) / 10)
    test = np.where(np.arange(n) >= 40, 1.0, 0.05)
    t = series(train, test)
    t["train/loss"] = np.exp(-np.arange(n) / 5)
    t["lr"] = 1e-3
    t["weight_norm/out.weight"] = 1 + np.arange(n) / n
    assert [e.kind for e in detect(t)] == ["grokking"]
    assert (
        describe(detect(t)[0]) == "grokked at step 400 (train fitted at step 100, 4x after fitting)"
    )


def test_grokking_with_corrupted_labels_reads_the_clean_training_rows():
    """With label noise train/acc stays below the threshold (the corrupted rows are not
    fitted by a network that generalises): fitting is read off train_clean/acc."""
    t = pd.DataFrame(
        {
            "train/acc": [0.1, 0.8, 0.8, 0.8],
            "train_clean/acc": [0.1, 1.0, 1.0, 1.0],
            "test/acc": [0.0, 0.2, 0.6, 1.0],
        },
        index=[0, 10, 20, 30],
    )
    (event,) = [e for e in detect(t) if e.kind == "grokking"]
    assert event.data["train_step"] == 10 and event.data["test_step"] == 30


# -- structure onset (Chen et al. 2024) --------------------------------------------------------


def sas_table(sas: list[float], loss: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"sas/max": sas, "test/loss": loss}, index=range(0, 100 * len(sas), 100))


def test_structure_onset_finds_an_abrupt_rise_and_the_aligned_loss_drop():
    plateau, jump = [0.1] * 6, [0.7] * 6
    loss = [4.0, 3.0, 2.6, 2.5, 2.5, 2.5, 1.5, 1.4, 1.4, 1.4, 1.4, 1.4]
    e = structure_onset(sas_table(plateau + jump, loss))
    assert e is not None and e.kind == "structure_onset"
    assert e.data["sas_step"] == 600 and e.data["loss_step"] == 600 and e.data["lag"] == 0
    assert e.data["sas_before"] == pytest.approx(0.1) and e.data["sas_after"] == pytest.approx(0.7)


def test_a_late_loss_drop_is_reported_with_its_lag():
    sas = [0.1] * 4 + [0.7] * 8
    loss = [4.0, 3.0, 2.7, 2.6, 2.5, 2.5, 2.5, 2.5, 1.5, 1.5, 1.5, 1.5]
    e = structure_onset(sas_table(sas, loss))
    assert e.data["sas_step"] == 400 and e.data["loss_step"] == 800 and e.data["lag"] == 400


def test_no_onset_for_a_small_drift_or_a_falling_sas():
    drift = [0.1 + 0.005 * i for i in range(12)]
    loss = [3.0 / (1 + i) for i in range(12)]
    assert structure_onset(sas_table(drift, loss)) is None
    assert structure_onset(sas_table(drift[::-1], loss)) is None
    assert structure_onset(pd.DataFrame({"test/loss": loss})) is None


def test_structure_onset_runs_in_detect_and_is_described():
    sas = [0.1] * 6 + [0.7] * 6
    loss = [4.0, 3.0, 2.6, 2.5, 2.5, 2.5, 1.5, 1.4, 1.4, 1.4, 1.4, 1.4]
    found = [e for e in detect(sas_table(sas, loss)) if e.kind == "structure_onset"]
    assert len(found) == 1 and "syntactic attention structure rose at step 600" in describe(
        found[0]
    )
