"""Study specs (learnscope.studies.study): claims over a study's measured values, verified
over seeds by ``learnscope verify``; the built-in specs load and name real study modules."""

from __future__ import annotations

import sys
import types

import pytest
import yaml
from typer.testing import CliRunner

from learnscope.cli.app import app
from learnscope.errors import UserError
from learnscope.store import Store
from learnscope.studies.study import (
    check_options,
    is_study,
    load_study,
    recipe_at_seed,
    study_names,
    verify_study,
)

calls: list[tuple[dict, int]] = []


def _measure(options, seed, store, progress=None):
    """A study whose values are known: x = seed * scale, y = 2 (ratio x / y)."""
    calls.append((dict(options), seed))
    check_options(options, {"scale": 1.0}, "toy")
    if progress is not None:
        progress(0.5)
    return {"x": seed * options.get("scale", 1.0), "y": 2.0}


@pytest.fixture
def toy(monkeypatch, tmp_path):
    module = types.ModuleType("learnscope.studies.toy_for_tests")
    module.measure = _measure
    monkeypatch.setitem(sys.modules, "learnscope.studies.toy_for_tests", module)
    calls.clear()
    spec = {
        "name": "toy",
        "description": "a study whose values are known",
        "study": "toy_for_tests",
        "options": {"scale": 3.0},
        "claims": [
            {"name": "big", "statement": "x >= 3", "key": "x", "threshold": ">=3"},
            {"name": "half", "statement": "x / y >= 3", "ratio": ["x", "y"], "threshold": ">=3"},
            {
                "name": "never",
                "statement": "x >= 100",
                "kind": "null",
                "search": "seeds 0..2",
                "key": "x",
                "threshold": ">=100",
            },
        ],
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_claims_are_checked_on_the_measured_values_at_each_seed(toy, tmp_path):
    v = verify_study(str(toy), Store(tmp_path / "runs"), seeds=3, seed_start=0)
    assert [c[1] for c in calls] == [0, 1, 2] and calls[0][0] == {"scale": 3.0}
    big, half, never = v.results
    assert big.values == [0.0, 3.0, 6.0] and big.holds == [False, True, True]
    assert (big.k, big.n, big.passed) == (2, 3, False)
    assert half.values == [0.0, 1.5, 3.0] and half.k == 1
    assert never.k == 0 and never.passed  # a null records an absence
    assert big.line().startswith("big: holds 2/3")
    assert v.recipe == "toy" and v.seeds == [0, 1, 2] and v.wall_s is not None


def test_budget_stops_before_the_next_seed(toy, tmp_path):
    v = verify_study(str(toy), Store(tmp_path / "runs"), seeds=3, budget_s=0.0)
    assert v.seeds == [0] and "1 of 3 seeds" in v.note


def test_verify_cli_prints_holds_and_exits_1_when_a_claim_fails(toy, tmp_path):
    out = CliRunner().invoke(
        app, ["verify", str(toy), "--seeds", "2", "--seed-start", "2", "--runs-dir", str(tmp_path)]
    )
    assert out.exit_code == 0, out.output  # seeds 2, 3: x = 6, 9; x / y = 3, 4.5
    assert "big: holds 2/2" in out.output and "half: holds 2/2" in out.output
    out = CliRunner().invoke(app, ["verify", str(toy), "--seeds", "2", "--runs-dir", str(tmp_path)])
    assert out.exit_code == 1 and "not reproduced: toy: big" in out.output
    md = tmp_path / "results.md"
    CliRunner().invoke(
        app, ["verify", str(toy), "--seeds", "1", "--runs-dir", str(tmp_path), "--markdown", md]
    )
    assert "| `toy` | big: x >= 3" in md.read_text()


def test_bad_specs_are_one_line_errors(toy, tmp_path):
    bad = yaml.safe_load(toy.read_text())
    for change, words in [
        ({"study": "no_such_study"}, "no study module learnscope.studies.no_such_study"),
        ({"claims": [{"name": "e", "statement": "s", "event": "grokking", "threshold": ">=1"}]},
         "by key or ratio"),
        ({"claims": []}, "claims"),
        ({"options": {"scale": 1, "typo": 2}}, "toy.options: unknown typo; allowed: scale"),
    ]:  # fmt: skip
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump({**bad, **change}))
        with pytest.raises(UserError, match=words.replace("(", r"\(")):
            verify_study(str(path), Store(tmp_path / "runs"), seeds=1)
    out = CliRunner().invoke(
        app, ["verify", str(toy), "--recheck", "x", "--runs-dir", str(tmp_path)]
    )
    assert out.exit_code == 2 and "a study is measured again" in out.output


def test_builtin_specs_load_and_are_listed():
    names = study_names()
    assert {"model-collapse-chain", "layer-pruning-healed"} <= set(names)
    for name in names:
        spec = load_study(name)
        assert is_study(name) and spec.claims
        assert any(c.kind == "reproduces" for c in spec.claims)
    assert not is_study("grokking-mlp")
    out = CliRunner().invoke(app, ["recipes"])
    assert "model-collapse-chain" in out.output


def test_recipe_at_seed_seeds_model_and_data():
    cfg = recipe_at_seed("grokking-mlp", 7, {"train.steps": 3})
    assert cfg.seed == 7 and cfg.task.params.get("seed") == 7 and cfg.train.steps == 3
