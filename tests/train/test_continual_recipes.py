"""The continual-learning recipes: they load, and (slow, heavy) their claims hold at seed 0."""

from __future__ import annotations

import pytest

from learnscope.config import load_config
from learnscope.runner import execute
from learnscope.store import Store

RECIPES = [
    "forgetting-plain",
    "forgetting-ewc",
    "plasticity-plain",
    "plasticity-remedy",
    "plasticity-shrink-perturb",
]


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_loads_with_claims(recipe):
    cfg = load_config(recipe)
    assert cfg.task.name == "sequence" and cfg.claims
    assert cfg.train.steps == cfg.task.params["n_tasks"] * cfg.task.params["steps_per_task"]


def _paired(recipe: str, key: str, store: Store) -> float:
    cfg = load_config(recipe)
    control = load_config(recipe, [f"{path}=null" for path in cfg.claims[0].control.set])
    return execute(cfg, store).summary[key] - execute(control, store).summary[key]


@pytest.mark.slow
def test_ewc_keeps_old_tasks_at_seed_0(tmp_path):
    """~25 s: forgetting-ewc against its control (forgetting-plain) at seed 0."""
    assert _paired("forgetting-ewc", "old_task_acc", Store(tmp_path)) >= 0.15


@pytest.mark.heavy
def test_plasticity_claims_at_seed_0(tmp_path):
    """~4 min: plasticity-plain's claims, and continual backprop against it, at seed 0."""
    store = Store(tmp_path)
    plain = execute(load_config("plasticity-plain"), store).summary
    assert all(c["holds"] for c in plain["claims"].values()), plain["claims"]
    remedy = execute(load_config("plasticity-remedy"), store).summary
    assert remedy["new_task_acc_last"] - plain["new_task_acc_last"] >= 0.07
    assert remedy["new_task_acc_last"] >= 0.92


def _untrained_claims(recipe: str, plain: str, store: Store) -> dict[str, bool]:
    """Whether each claim of ``recipe`` (and of its control ``plain``) holds at lr 1e-9."""
    from learnscope.measures import holds

    tiny = ["train.lr=1e-9"]
    base = execute(load_config(plain, tiny), store).summary
    cfg = load_config(recipe, tiny)
    run = execute(cfg, store).summary
    out = {f"{plain}/{name}": c["holds"] for name, c in base["claims"].items()}
    for claim in cfg.claims:
        if claim.control is None:
            out[claim.name] = run["claims"][claim.name]["holds"]
        else:
            out[claim.name] = holds(claim, run[claim.key] - base[claim.key])
    return out


@pytest.mark.slow
def test_no_forgetting_claim_holds_untrained(tmp_path):
    """~10 s: at lr 1e-9 nothing is learned, so nothing is forgotten or kept."""
    found = _untrained_claims("forgetting-ewc", "forgetting-plain", Store(tmp_path))
    assert not any(found.values()), found


@pytest.mark.heavy
def test_no_plasticity_claim_holds_untrained(tmp_path):
    """~3 min: at lr 1e-9 no task is learned, so no plasticity is lost or kept."""
    for recipe in ("plasticity-remedy", "plasticity-shrink-perturb"):
        found = _untrained_claims(recipe, "plasticity-plain", Store(tmp_path))
        found = {k: v for k, v in found.items() if k != "sp-keeps-all-plasticity"}  # a null
        assert not any(found.values()), (recipe, found)
