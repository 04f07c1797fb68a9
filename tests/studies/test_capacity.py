"""The EMC search (Shwartz-Ziv et al. 2024): exact on a threshold oracle, and on real runs
through the pipeline where the answer is known (a network that memorises the whole pool)."""

from __future__ import annotations

import pytest

from learnscope.store import Store
from learnscope.studies.capacity import find_emc, pool_size, search_emc, trial_config

CAPACITY = {
    "name": "cap",
    "seed": 0,
    "task": {"name": "modular", "op": "add", "p": 5, "train_fraction": 0.5},
    "model": {"kind": "mlp", "width": 64, "depth": 2, "activation": "relu"},
    "train": {"lr": 0.03, "steps": 400, "eval_every": 10, "loss": "ce"},
    "probes": [],
}


@pytest.mark.parametrize("threshold", [0, 1, 3, 16, 17, 100, 999, 1000])
@pytest.mark.parametrize("start", [1, 16])
def test_search_finds_the_threshold_exactly_with_rtol_zero(threshold, start):
    calls = []

    def fits(n):
        calls.append(n)
        return n <= threshold

    found = search_emc(fits, start, maximum=1000, rtol=0)
    assert found.emc == threshold
    assert found.not_fitted == (None if threshold == 1000 else threshold + 1)
    assert found.capped == (threshold == 1000)
    assert len(calls) == len(set(calls)) == len(found.trials)  # no count tried twice
    assert len(calls) <= 2 * 10 + 2  # doubling and bisection: logarithmic in maximum


@pytest.mark.parametrize("rtol", [0.05, 0.2])
def test_search_bracket_is_within_rtol(rtol):
    found = search_emc(lambda n: n <= 700, 10, 5000, rtol)
    assert found.emc <= 700 < found.not_fitted
    assert found.not_fitted - found.emc <= max(1, rtol * found.emc)


def test_search_refuses_a_start_outside_the_range():
    with pytest.raises(ValueError, match="start"):
        search_emc(lambda n: True, 0, 10)


def test_trial_config_takes_n_samples_random_labels_and_stops_when_fitted():
    cfg = trial_config(CAPACITY, 7, "random", seed=3)
    assert cfg.task.params["n_train"] == 7 and cfg.task.params["random_labels"] is True
    assert cfg.train.stop_when == ["fitted"] and cfg.seed == 3 and cfg.claims == []
    assert pool_size(CAPACITY) == 24  # 25 rows, one left for the test split


def test_a_network_that_memorises_everything_has_emc_equal_to_the_pool(tmp_path):
    store = Store(tmp_path)
    found = find_emc(CAPACITY, store, "random", start=8)
    assert found.capped and found.emc == 24
    assert [t.n for t in found.trials] == [8, 16, 24]
    runs = store.runs()
    assert len(runs) == 3 and set(runs["status"]) == {"stopped"}  # stopped once fitted
    config = store.run(found.trials[-1].runs[0])["config"]
    assert config["task"]["n_train"] == 24 and config["task"]["random_labels"]


def test_a_narrow_network_stops_short_of_the_pool(tmp_path):
    """Width 1 with random labels: the search brackets the threshold, and the runs agree."""
    narrow = {**CAPACITY, "model": {**CAPACITY["model"], "width": 1}}
    found = find_emc(narrow, Store(tmp_path), "random", start=2, rtol=0)
    assert 1 <= found.emc < 24 and found.not_fitted == found.emc + 1
    by_n = {t.n: t for t in found.trials}
    assert by_n[found.emc].train_acc == [1.0] and by_n[found.not_fitted].train_acc[0] < 1.0


@pytest.mark.slow
def test_capacity_mlp_emc_correct_above_random_and_below_the_parameter_count(tmp_path):
    """capacity-mlp at width 4 (303 parameters). Measured (docs/phenomena.md): EMC 104 with
    correct labels, 88 with random labels (8 trials each)."""
    from learnscope.config import load_config
    from learnscope.studies.capacity import n_parameters

    cfg = load_config("capacity-mlp", ["model.width=4"])
    store = Store(tmp_path)
    correct = find_emc(cfg, store, "correct")
    random = find_emc(cfg, store, "random")
    assert 90 <= correct.emc <= 120 and 75 <= random.emc <= 100, (correct.emc, random.emc)
    assert random.emc < correct.emc < n_parameters(cfg) == 303
