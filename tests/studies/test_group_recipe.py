"""The group-s4 recipe: its claims fail for an untrained model and hold once trained."""

from __future__ import annotations

import pytest

from learnscope.config import apply_overrides, load_recipe_dict
from learnscope.runner import execute
from learnscope.store import Store


def _claims(tmp_path, steps: int, seed: int = 0) -> dict:
    data = apply_overrides(
        load_recipe_dict("group-s4"),
        [f"train.steps={steps}", f"seed={seed}", f"task.seed={seed}"],
    )
    return execute(data, Store(tmp_path)).summary["claims"]


def test_no_claim_holds_for_an_untrained_model(tmp_path):
    claims = _claims(tmp_path, steps=1)
    assert set(claims) == {"learns", "one-irrep", "drops-a-faithful-irrep"}
    assert not any(c["holds"] for c in claims.values()), claims
    assert 0.3 < claims["one-irrep"]["value"] < 0.5  # about 9/24 at random


@pytest.mark.slow
def test_trained_the_embedding_concentrates_on_one_irrep(tmp_path):
    claims = _claims(tmp_path, steps=6000, seed=0)  # about 60 s on one core
    assert claims["learns"]["holds"] and claims["one-irrep"]["holds"]
    assert claims["drops-a-faithful-irrep"]["holds"]
