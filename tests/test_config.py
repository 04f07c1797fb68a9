from __future__ import annotations

import pytest

from learnscope.config import (
    apply_overrides,
    check_threshold,
    load_config,
    parse_threshold,
    recipe_names,
    validate_config,
)
from learnscope.errors import UserError


def test_every_recipe_validates():
    assert {"grokking-mlp", "grokking-mlp-slow"} <= set(recipe_names())
    for name in recipe_names():
        cfg = load_config(name)
        assert cfg.name == name
        assert cfg.claims, f"recipe {name} must state its outcome (claims)"


def test_overrides_parse_types():
    cfg = load_config(
        "grokking-mlp", ["train.lr=3e-3", "task.p=113", "model.bias=true", "train.batch_size=null"]
    )
    assert cfg.train.lr == 0.003 and cfg.task.params["p"] == 113
    assert cfg.model.params["bias"] is True and cfg.train.batch_size is None


@pytest.mark.parametrize(
    "override, field",
    [
        ("train.nope=1", "train.nope"),
        ("nope.x=1", "nope"),
        ("train.lr=fast", "train.lr"),
        ("train.lr.x=1", "train.lr"),
        ("task.p=1", "task.p"),
        ("train.device=tpu", "train.device"),
        ("train.optimizer=lion", "train.optimizer"),
        ("expect.test_acc=high", "expect"),
        ("noequals", "--set"),
    ],
)
def test_bad_overrides(override, field):
    with pytest.raises(UserError, match=field.replace(".", r"\.")):
        load_config("grokking-mlp", [override])


def test_apply_overrides_copies():
    base = {"train": {"lr": 1}}
    apply_overrides(base, ["train.lr=2"])
    assert base == {"train": {"lr": 1}}


def test_thresholds():
    assert parse_threshold(">= 0.99") == (">=", 0.99)
    assert check_threshold(150, "<=200") and not check_threshold(250, "<=200")
    with pytest.raises(UserError):
        parse_threshold("about 3")


def test_a_retired_expect_is_refused_in_a_config_and_dropped_from_a_stored_one(tiny_config):
    """``expect:`` was replaced by ``claims:``: a config that states it is refused, naming what
    replaced it; the config of a run stored before then is read without it."""
    with pytest.raises(UserError, match="expect: replaced by claims"):
        validate_config({**tiny_config, "expect": {"test_acc": ">=0.99"}})
    stored = validate_config({**tiny_config, "expect": {"test_acc": ">=0.99"}}, stored=True)
    assert "expect" not in stored.to_dict()


def test_missing_task_section():
    with pytest.raises(UserError, match="task"):
        validate_config({"name": "x"})
