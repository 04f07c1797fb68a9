"""The test-accuracy jump at a slingshot and the grok lag (Thilak et al. 2022), on synthetic
tables whose answer is known in closed form."""

from __future__ import annotations

import pandas as pd
import pytest

from learnscope import events
from learnscope.events import Event, slingshot, slingshot_grokking
from learnscope.runner import summary_of


def _table(acc: list[float]) -> pd.DataFrame:
    """Two cycles: spikes at evals 4 and 10 (steps 40, 100), recovered at 5 and 11; the
    last-layer norm grows before each; ``acc`` is the test accuracy per eval."""
    loss = [1.0, 0.1, 0.01, 0.01, 0.5, 0.01, 0.01, 0.01, 0.01, 0.01, 0.8, 0.01, 0.01]
    norm = [1.0, 1.0, 1.1, 1.3, 1.4, 1.4, 1.4, 1.4, 1.5, 1.7, 1.9, 1.9, 1.9]
    frame = {"train/loss": loss, "weight_norm/out.weight": norm, "test/acc": acc}
    return pd.DataFrame(frame, index=range(0, 130, 10))


def test_jump_is_max_over_cycle_and_window_minus_the_value_before() -> None:
    acc = [0.0, 0.1, 0.1, 0.2, 0.25, 0.3, 0.6, 0.9, 0.9, 0.3, 0.3, 0.35, 0.4]
    found = slingshot(_table(acc), window=2)
    assert [e.step for e in found] == [40, 100]
    first, second = (e.data for e in found)
    # cycle 1: onset eval 4, end eval 5, window 2 -> evals 4..7: max 0.9 (step 70) - 0.2
    assert first["test_before"] == 0.2 and first["test_after_step"] == 70
    assert first["test_jump"] == pytest.approx(0.7)
    # cycle 2: onset eval 10, end eval 11 -> evals 10..12 (the table ends): 0.4 - 0.3
    assert second["test_jump"] == pytest.approx(0.1)
    assert second["test_after_step"] == 120
    assert slingshot_grokking(found) == {"slingshot_test_jump": pytest.approx(0.7)}


def test_a_fall_in_test_accuracy_is_a_negative_jump() -> None:
    acc = [0.5] * 4 + [0.4, 0.3, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05, 0.0]
    jumps = [e.data["test_jump"] for e in slingshot(_table(acc), window=2)]
    assert jumps == pytest.approx([-0.1, -0.05])


def test_no_test_accuracy_no_jump() -> None:
    found = slingshot(_table([0.0] * 13).drop(columns="test/acc"), window=2)
    assert len(found) == 2 and "test_jump" not in found[0].data
    assert slingshot_grokking(found) == {}


def test_grok_lag_is_grok_step_minus_the_nearest_onset_before_it() -> None:
    acc = [0.0, 0.0, 0.0, 0.0, 0.2, 0.5, 0.995, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    table = _table(acc).assign(**{"train/acc": 1.0})
    found = events.detect(table, events.EventsConfig(slingshot_window=2))
    out = slingshot_grokking(found)
    # grok at step 60 (first test acc >= 0.99); onsets at 40 and 100: the one before is 40
    assert out["slingshot_grok_lag"] == 20
    assert out["slingshot_test_jump"] == pytest.approx(1.0)
    # and the runner's summary carries both keys beside the slingshot count
    summary = summary_of({}, set(), 120, 1.0, found)
    assert summary["slingshots"] == 2 and summary["slingshot_grok_lag"] == 20
    assert summary["slingshot_test_jump"] == pytest.approx(1.0)


def test_no_lag_when_grokking_comes_before_every_slingshot_or_never() -> None:
    early = [Event("grokking", 30, {"test_step": 30}), Event("slingshot", 40, {"test_jump": 0})]
    assert slingshot_grokking(early) == {"slingshot_test_jump": 0}
    never = [Event("grokking", 5, {"test_step": None}), Event("slingshot", 40, {})]
    assert slingshot_grokking(never) == {}


@pytest.mark.slow
def test_the_slingshot_recipe_measures_the_jump_at_each_cycle(tmp_path) -> None:
    """The slingshot recipe at seed 0 (real training, 6 000 steps): every cycle carries its
    test-accuracy jump and the summary holds their max; half the table of p = 23 with no weight
    decay does not generalise, so the jump is small (the recipe's null claim); untrained (one
    step) there is no cycle and no jump."""
    from learnscope.runner import execute
    from learnscope.store import Store
    from learnscope.studies.claims import recipe_at_seed

    store = Store(tmp_path)
    result = execute(recipe_at_seed("slingshot", 0), store)
    cycles = [e for e in result.events if e.kind == "slingshot"]
    assert len(cycles) >= 2
    jumps = [e.data["test_jump"] for e in cycles]
    assert result.summary["slingshot_test_jump"] == max(jumps)
    assert -0.1 < max(jumps) < 0.5
    untrained = execute(recipe_at_seed("slingshot", 0, {"train.steps": 1}), store)
    assert "slingshot_test_jump" not in untrained.summary
