"""The coordinate check (``learnscope.studies.coord``, TP5 / ``mup.coord_check``): after 5 steps the
mean |x| of every activation site is flat in width (64 to 1024) under μP, for SGD and for Adam,
and is not under the standard parametrisation with Adam."""

from __future__ import annotations

import pytest

from learnscope.config import load_config, validate_config
from learnscope.errors import UserError
from learnscope.store import Store
from learnscope.studies.coord import coord_check, slopes

#: |slope| of log2 mean|x| against log2 width counted as flat (a factor 2^0.2 = 1.15 per
#: doubling of width); measured under μP: at most 0.13 (Adam) and 0.07 (SGD)
FLAT = 0.2
WIDTHS = [64, 128, 256, 512, 1024]


def check(param: str, optimizer: str, lr: float, tmp_path):
    """The shipped recipe ``coord-mlp`` with these settings."""
    sets = [f"model.param={param}", f"train.optimizer={optimizer}", f"train.lr={lr}"]
    table, _ = coord_check(load_config("coord-mlp", sets), WIDTHS, 5, Store(tmp_path / "runs"))
    assert sorted(table["width"].unique()) == WIDTHS
    assert sorted(table["step"].unique()) == [0, 1, 2, 3, 4, 5]
    return slopes(table).drop("hook_embed")  # the one-hot input: the same at every width


@pytest.mark.parametrize(("optimizer", "lr"), [("adam", 0.05), ("sgd", 5.0)])
def test_flat_under_mup(optimizer, lr, tmp_path):
    s = check("mup", optimizer, lr, tmp_path)
    assert s.abs().max() <= FLAT, s.to_dict()


def test_not_flat_under_standard_with_adam(tmp_path):
    """Adam's update is O(lr) per entry whatever the width: summed over fan_in correlated
    terms it grows with width; here the ReLU layers die (their mean |x| vanishes)."""
    s = check("standard", "adam", 0.05, tmp_path)
    assert s.abs().max() > 3 * FLAT, s.to_dict()


def test_refuses_a_model_without_width(tmp_path):
    cfg = validate_config({"task": {"name": "modular", "p": 5}, "model": {"kind": "mlp"}})
    with pytest.raises(UserError, match="--widths"):
        coord_check(cfg, [64], 5, Store(tmp_path / "runs"))
    with pytest.raises(UserError, match="--steps"):
        coord_check(cfg, [8, 16], 0, Store(tmp_path / "runs"))


@pytest.mark.slow
def test_gpt_flat_under_mup_not_under_standard(tmp_path):
    """A 2-layer GPT (4 heads, d_model 32 -> 256, base 32) on (a + b) mod 23 as sequences,
    Adam lr 0.01, 5 steps: every site flat under μP (measured |slope| <= 0.19); under
    standard the residual stream grows like width^1.5-2.3."""

    def gpt(param: str):
        cfg = load_config("coord-gpt", [f"model.param={param}"])
        table, _ = coord_check(cfg, [32, 64, 128, 256], 5, Store(tmp_path / param))
        return slopes(table)

    assert gpt("mup").abs().max() <= FLAT
    assert gpt("standard")["blocks.1.hook_resid_post"] > 1.0
