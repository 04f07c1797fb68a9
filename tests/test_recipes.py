"""Every built-in recipe reaches the outcome written next to it: its ``claims:`` hold at two
seeds never used to set their thresholds (``learnscope verify``), or, for a recipe not yet
rewritten to claims, its ``expect:`` holds at its own seed.

``grokking-mlp``'s claims at one new seed are fast (seconds) and run by default; the longer
reproductions are marked slow (``pytest -m slow``), and ``.ci/run`` runs them too.
"""

from __future__ import annotations

import pytest

from learnscope.config import load_config, recipe_names
from learnscope.runner import execute
from learnscope.store import Store

FAST = {"grokking-mlp"}
#: recipes whose slow test, with more checks, lives beside their paper's other recipes
ELSEWHERE = {
    "slingshot",  # tests/test_modular_recipes.py
    "icl-modular",
    "sas-mlm",  # tests/test_sas_recipes.py (minutes: heavy, a shortened slow check)
    "sas-suppressed",
}
ELSEWHERE |= {"local-rank", "incremental-rank"}  # tests/test_rank_recipes.py
ELSEWHERE |= {"layer-pruning"}  # tests/studies/test_layer_pruning_recipe.py (heavy: fragile)
ELSEWHERE |= {"autoinit", "autoinit-baseline"}  # tests/interventions/test_autoinit_recipes.py
# a chain in one store (init_from names the recipe before): tests/train/test_rft_recipes.py
ELSEWHERE |= {"rft-pretrain", "rft-sft", "rft-from-scratch", "rft-after-sft"}
ELSEWHERE |= {"entropy-enigma-pvr"}  # tests/studies/test_entropy_recipe.py (heavy)
#: minutes each on a CPU: run by hand (pytest -m heavy)
HEAVY = {"pvr-hops"}  # measured as a member of the sweep pvr-adaptive-depth (docs/results.md)
HEAVY |= {"grokking-transformer-delay"}  # ~20 min: groks at step ~25 000 (docs/results.md)
HEAVY |= {"length-gen-addition-hints-rope"}  # ~30 min: 1-5 digits exact, 0.000 at 6 digits
HEAVY |= {"length-gen-addition-hints-nope"}  # ~1 h: 1-5 digits exact, 0.055 at 6 (docs/results.md)
# over CI's 3 minutes on one core (docs/results.md has their rows)
HEAVY |= {"multiplication-cot"}  # ~4.5 min: CoT reaches exact match 1.000 at step 1 500
HEAVY |= {"length-gen-addition-hints"}  # ~4 min: 0.025 in distribution, 0.000 at 6-8 digits
ELSEWHERE |= {"pvr-hops-rope"}  # tests/test_sequence_recipes.py (heavy: ~5 min)
# claims verified against a matched control that trains one run after the other (no stacking:
# dropout; wd 0 vs 5 chose the loop): 2 seeds x (recipe + control) ~4 min on a shared CPU
HEAVY |= {"corrupted-labels-wd", "corrupted-labels-dropout"}
# fragile over seeds and CPU kernels (docs/phenomena.md, length generalisation): at seeds 0..3 x
# 3 kernels, 1-10 bits 0.73-0.99 (1 run of 12 under 0.9), 20 bits 0.00-0.37 (6 of 12 over 0.1)
HEAVY |= {"length-gen-parity-scratchpad"}  # ~2-3 min
ELSEWHERE |= HEAVY


#: recipes that state claims (verified over seeds) instead of an ``expect``
CLAIMED = {n for n in recipe_names() if load_config(n).claims}
#: the seeds of the slow check: thresholds were set from seeds 0..4, these were never used
NEW_SEEDS = 10
#: recipes whose thresholds were set again after seeds 10-11 failed them (the seeds that set
#: them are named in the recipe): verified at seeds not used since
FRESH = {"sigma-reparam": 30, "sigma-reparam-baseline": 30}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CLAIMED - HEAVY))
def test_claims_hold_at_new_seeds(name, tmp_path):
    from learnscope.studies.claims import verify

    v = verify(name, Store(tmp_path), seeds=2, seed_start=FRESH.get(name, NEW_SEEDS))
    failed = [r.line() for r in v.results if not r.passed]
    assert not failed, f"{name}: {failed}"


def check(name, tmp_path):
    cfg = load_config(name)
    result = execute(cfg, Store(tmp_path))
    failed = {
        k: (cfg.expect[k], result.summary.get(k))
        for k, ok in result.summary.get("expect_met", {}).items()
        if not ok
    }
    assert not failed, f"{name}: expected vs measured {failed}; summary {result.summary}"
    return result


def test_grokking_mlp_groks_with_a_visible_delay(tmp_path):
    """grokking-mlp's claims at one new seed (seconds): it groks, with a delay."""
    from learnscope.studies.claims import verify

    v = verify("grokking-mlp", Store(tmp_path), seeds=1, seed_start=NEW_SEEDS)
    assert v.passed, [r.line() for r in v.results]
    value = {r.claim.name: r.values[0] for r in v.results}
    assert value["groks"] >= 0.99 and value["delay"] >= 4


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(recipe_names()) - FAST - ELSEWHERE - CLAIMED))
def test_recipe_outcome(name, tmp_path):
    check(name, tmp_path)


@pytest.mark.heavy
@pytest.mark.parametrize("name", sorted(HEAVY))
def test_heavy_recipe_outcome(name, tmp_path):
    if name in CLAIMED:  # its claims at the two new seeds, as test_claims_hold_at_new_seeds
        test_claims_hold_at_new_seeds(name, tmp_path)
    else:
        check(name, tmp_path)


@pytest.mark.parametrize("name", recipe_names())
def test_every_recipe_builds(name):
    """Each recipe's task, model and trainer can be built (seconds; no training)."""
    from learnscope.runner import build

    trainer = build(load_config(name))
    assert trainer.step == 0 and len(trainer.splits["train"]) > 0
