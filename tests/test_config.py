from __future__ import annotations

import pytest

from learnscope.config import (
    apply_overrides,
    check_expectation,
    load_config,
    parse_expectation,
    recipe_names,
    validate_config,
)
from learnscope.errors import UserError


def test_every_recipe_validates():
    assert {"grokking-mlp", "grokking-mlp-slow"} <= set(recipe_names())
    for name in recipe_names():
        cfg = load_config(name)
        assert cfg.name == name
        assert cfg.expect or cfg.claims, f"recipe {name} must state its outcome (claims)"


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


def test_expectations():
    assert parse_expectation(">= 0.99") == (">=", 0.99)
    assert check_expectation(150, "<=200") and not check_expectation(250, "<=200")
    with pytest.raises(UserError):
        parse_expectation("about 3")


def test_missing_task_section():
    with pytest.raises(UserError, match="task"):
        validate_config({"name": "x"})
