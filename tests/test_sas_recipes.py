"""Syntax acquisition in a masked LM (Chen et al. 2024): the sas-mlm, sas-suppressed and
sas-plateau recipes.

The slow test trains the first 600 steps of each (syntactic attention structure has risen
without the regulariser and is held near 0 with it); the recipes' claims over seeds (SAS
rises with a structure-onset event; suppression holds it down and costs test loss against
sas-mlm at the same seed) are verified at new seeds by ``test_claims_hold_at_new_seeds`` in
tests/test_recipes.py."""

from __future__ import annotations

import pytest

from learnscope.config import load_config
from learnscope.runner import execute
from learnscope.store import Store


def sas_at(name: str, steps: int, store: Store) -> float:
    cfg = load_config(name, [f"train.steps={steps}"])
    result = execute(cfg, store)
    return store.metric_table(result.run_id)["sas/max"].dropna().iloc[-1]


@pytest.mark.slow
def test_sas_rises_early_and_the_regulariser_holds_it_down(tmp_path):
    store = Store(tmp_path)
    free, suppressed = sas_at("sas-mlm", 600, store), sas_at("sas-suppressed", 600, store)
    # measured (seed 0): 0.367 and 0.026; at initialisation 0.159
    assert free >= 0.25 and suppressed <= 0.1


@pytest.mark.slow
def test_sas_waits_through_the_plateau_from_a_small_init(tmp_path):
    # sas-plateau (init_std 0.002, lr 3e-4): SAS at step 1 000 is still near its value at
    # initialisation (measured, seed 0: 0.143; 0.147 at step 0), where sas-mlm's has doubled
    assert sas_at("sas-plateau", 1000, Store(tmp_path)) <= 0.2
