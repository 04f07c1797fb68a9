"""Brief versus long SAS suppression (learnscope.studies.sas_suppression, Chen et al. 2024):
the post-release onset detector on hand-made curves, the options' refusals, and (slow) the
study's measure on short runs."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from learnscope.errors import UserError
from learnscope.store import Store
from learnscope.studies.sas_suppression import measure, release_onset

STEPS = range(0, 1200, 100)


def test_release_onset_finds_the_rise_and_drop_after_the_release():
    # SAS suppressed to 0 until step 300, flat, then an abrupt rise at 700 with the loss drop
    t = pd.DataFrame(
        {
            "sas/max": [0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.5, 0.6, 0.6, 0.6],
            "test/loss": [4, 3, 3, 3, 3, 3, 3, 2.8, 2.0, 1.9, 1.9, 1.9],
        },
        index=STEPS,
    )
    assert release_onset(t, 300) == {"onset": 800.0, "drop": 800.0, "lag": 0.0}
    # a rise only before the release is not an onset after it
    early = pd.DataFrame(
        {"sas/max": [0.1, 0.5, 0.6] + [0.6] * 9, "test/loss": [4, 2, 1.9] + [1.9] * 9},
        index=STEPS,
    )
    assert release_onset(early, 300)["onset"] == pytest.approx(math.nan, nan_ok=True)
    assert math.isnan(release_onset(early, 300)["lag"])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"alpha": 1}, "unknown alpha"),
        ({"brief": {"lambda": 0.1}}, "options.brief"),
        ({"long": {"lambda": -1, "until_step": 10}}, "long.lambda"),
        ({"brief": {"lambda": 0.1, "until_step": 0}}, "brief.until_step"),
        ({"set": [1]}, "options.set"),
        ({"set": {"train.steps": 50}}, "released"),
        ({"set": {"probes": []}}, "probe sas"),
    ],
)
def test_bad_options_are_refused(tmp_path, options, match):
    with pytest.raises(UserError, match=match):
        measure(options, 0, Store(tmp_path))


@pytest.mark.slow
def test_measure_trains_the_three_runs_and_reads_them(tmp_path):
    opts = {
        "brief": {"lambda": 0.3, "until_step": 50},
        "long": {"lambda": 0.3, "until_step": 150},
        "set": {"train.steps": 200, "train.eval_every": 50},
    }
    store = Store(tmp_path)
    out = measure(opts, 0, store)
    assert len(store.runs()) == 3
    assert out["brief_minus_none"] == pytest.approx(out["loss_brief"] - out["loss_none"])
    assert out["long_minus_brief"] == pytest.approx(out["loss_long"] - out["loss_brief"])
    # 150 steps of suppression hold SAS below its value at initialisation (~0.16)
    assert out["held_down_long"] < 0.5 and out["sas_low_long"] <= out["sas_release_long"]
    assert out["loss_none"] < 3.9  # it learned (ln 53 = 3.97 untrained)
