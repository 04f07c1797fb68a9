"""Claims over seeds (``learnscope.studies.claims``, ``learnscope verify``) on a tiny recipe: a
claim that holds, one that fails, a null, a paired comparison with its control, the Wilson
interval; and, for every shipped recipe that states claims, no ``reproduces`` claim is met by
the untrained model."""

from __future__ import annotations

import pytest
import yaml

from learnscope.config import Claim, load_config, recipe_names, validate_config
from learnscope.errors import UserError
from learnscope.measures import claim_value, holds
from learnscope.store import Store
from learnscope.studies.claims import markdown, results_of, verify
from tests.cli.test_output import invoke


@pytest.fixture
def recipe(tmp_path, tiny_config):
    """The tiny modular MLP (30 steps) with four claims."""
    tiny_config["claims"] = [
        {"name": "fits", "statement": "fits the training set", "key": "train_acc",
         "threshold": ">=0.5"},
        {"name": "impossible", "statement": "a test accuracy above 1", "key": "test_acc",
         "threshold": ">1.5"},
        {"name": "lr-helps", "statement": "lr 0.01 fits better than lr 1e-5",
         "key": "train_acc", "control": {"name": "tiny-lr", "set": {"train.lr": 1.0e-5}},
         "compare": "diff", "threshold": ">=0.2"},
        {"name": "memorises-all", "kind": "null", "statement": "test accuracy 1",
         "key": "test_acc", "threshold": ">=0.999", "search": "none: a test of the machinery"},
    ]  # fmt: skip
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    return path


def test_claims_over_seeds(recipe, tmp_path):
    store = Store(tmp_path / "runs")
    v = verify(str(recipe), store, seeds=2, seed_start=3)
    by = {r.claim.name: r for r in v.results}
    assert v.seeds == [3, 4] and [r.n for r in v.results] == [2, 2, 2, 2]
    assert by["fits"].k == 2 and by["fits"].passed
    assert by["impossible"].k == 0 and not by["impossible"].passed
    assert by["lr-helps"].passed  # a paired comparison: each seed against its own control
    assert by["memorises-all"].passed  # a null never fails the verification
    assert not v.passed
    runs = store.runs()
    mine = runs[runs["sweep_id"] == v.sweep_id]
    assert len(mine) == 4 and set(mine["status"]) == {"finished"}  # 2 seeds x (recipe, control)
    seeds = sorted((c["seed"], c["task"]["seed"], c["train"]["lr"]) for c in mine["config"])
    assert seeds == [(3, 3, 1e-5), (3, 3, 0.01), (4, 4, 1e-5), (4, 4, 0.01)]
    # the paired value at a seed is the recipe's minus its control's at that seed
    control = {c["seed"]: s["train_acc"] for c, s in zip(mine["config"], mine["summary"])
               if c["train"]["lr"] == 1e-5}  # fmt: skip
    own = {c["seed"]: s["train_acc"] for c, s in zip(mine["config"], mine["summary"])
           if c["train"]["lr"] == 0.01}  # fmt: skip
    assert by["lr-helps"].values == pytest.approx([own[3] - control[3], own[4] - control[4]])
    # read back from the store: the same results
    again = results_of(store, v.sweep_id)
    assert [r.values for r in again.results] == [r.values for r in v.results]
    table = markdown([v])
    assert "| `" in table and "2/2" in table and "0/2" in table


def test_the_wilson_interval_of_holds():
    c = Claim(name="x", statement="s", key="a", threshold=">=1")
    from learnscope.studies.claims import ClaimResult

    r = ClaimResult(c, [0, 1, 2, 3, 4], [1, 1, 1, 0, 1], [True] * 4 + [False])
    lo, hi = r.interval
    assert (round(lo, 4), round(hi, 4)) == (0.3755, 0.9638)  # Wilson (1927), k = 4, n = 5
    assert not r.passed  # require: every seed by default


def test_a_claim_that_requires_most_seeds():
    c = Claim(name="x", statement="s", key="a", threshold=">=1", require=0.8)
    from learnscope.studies.claims import ClaimResult

    assert ClaimResult(c, [0, 1, 2, 3, 4], [1, 1, 1, 0, 1], [True] * 4 + [False]).passed
    assert not ClaimResult(c, [0, 1, 2, 3, 4], [1, 1, 0, 0, 1], [True] * 3 + [False] * 2).passed


def test_values_and_thresholds():
    ratio = Claim(name="d", statement="s", ratio=("grok_test_step", "grok_train_step"),
                  threshold=">=3")  # fmt: skip
    assert claim_value(ratio, ({"grok_test_step": 90, "grok_train_step": 10}, []), None) == 9
    assert claim_value(ratio, ({"grok_test_step": 90}, []), None) is None  # never grokked
    assert not holds(ratio, None) and holds(ratio, 9.0) and not holds(ratio, float("nan"))
    event = Claim(name="e", statement="s", event="slingshot", threshold=">=2")
    assert claim_value(event, ({}, ["slingshot", "grokking", "slingshot"]), None) == 2
    paired = Claim(name="p", statement="s", key="a", control={"name": "c", "set": {"x": 1}},
                   compare="ratio", threshold=">=2")  # fmt: skip
    assert claim_value(paired, ({"a": 4}, []), ({"a": 2}, [])) == 2
    assert claim_value(paired, ({"a": 4}, []), None) is None  # the control did not finish


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ([{"name": "n", "statement": "s", "kind": "null", "key": "a", "threshold": ">=1",
           "search": "x"}], "one that reproduces"),
        ([{"name": "n", "statement": "s", "key": "a", "threshold": ">=1", "kind": "null"},
          {"name": "m", "statement": "s", "key": "a", "threshold": ">=1"}], "search"),
        ([{"name": "n", "statement": "s", "threshold": ">=1"}], "one of key, ratio, event"),
        ([{"name": "n", "statement": "s", "key": "a", "threshold": ">=1", "case": "x"}],
         "case is for a sweep spec"),
        ([{"name": "n", "statement": "s", "key": "a", "threshold": "big"}], "comparison"),
        ([{"name": "n", "statement": "s", "key": "a", "threshold": ">=1"},
          {"name": "n", "statement": "t", "key": "b", "threshold": ">=1"}], "must differ"),
    ],
)  # fmt: skip
def test_bad_claims_are_refused(claims, message, tiny_config):
    tiny_config["claims"] = claims
    with pytest.raises(UserError, match=message):
        validate_config(tiny_config)


def test_verify_command(recipe, tmp_path):
    runs = tmp_path / "runs"
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- recipes:begin -->\nold\n<!-- recipes:end -->\nafter\n")
    docs = tmp_path / "v.md"
    docs.write_text("head\n<!-- verify:begin -->\n<!-- verify:end -->\ntail\n")
    res = invoke("verify", str(recipe), "--seeds", "2", "--runs-dir", runs, "-q",
                 "--markdown", docs, "--markdown", readme)  # fmt: skip
    assert res.exit_code == 1, res.output  # the impossible claim holds 0/2
    assert "fits: holds 2/2" in res.output and "impossible: holds 0/2" in res.output
    assert "not reproduced: tiny: impossible" in res.output or "impossible" in res.output
    assert "2/2" in docs.read_text() and docs.read_text().startswith("head")
    table = readme.read_text()  # the README's recipe table, from the claims table
    assert "\nold\n" not in table and table.endswith("after\n")
    assert "fits 2/2, impossible 0/2, lr-helps 2/2, memorises-all (null)" in table, table
    res = invoke("verify", "--runs-dir", runs)
    assert res.exit_code == 2 and "RECIPE or --all" in res.output
    res = invoke("verify", "grokking-mlp", "--seeds", "0", "--runs-dir", runs)
    assert res.exit_code == 2


def test_verify_workers_sets_how_many_runs_train_at_once(recipe, tmp_path, monkeypatch):
    from learnscope.sweep import backends

    seen = []
    real = backends._run_local
    monkeypatch.setattr(backends, "_run_local", lambda *a, **k: seen.append(a[3]) or real(*a, **k))
    res = invoke("verify", str(recipe), "--seeds", "1", "--workers", "1", "-q",
                 "--runs-dir", tmp_path / "runs")  # fmt: skip
    assert "fits: holds 1/1" in res.output and seen == [1], res.output
    res = invoke("verify", str(recipe), "--workers", "0", "--runs-dir", tmp_path / "runs")
    assert res.exit_code == 2 and "--workers" in res.output


def test_recheck_reads_revised_claims_without_training(recipe, tmp_path):
    """A threshold revised after the runs: ``--recheck`` checks the YAML as it reads now on the
    stored runs (no new run), merging two verification sweeps' seeds."""
    runs = tmp_path / "runs"
    store = Store(runs)
    first = verify(str(recipe), store, seeds=1, seed_start=0)
    second = verify(str(recipe), store, seeds=1, seed_start=1)
    before = len(store.runs())
    data = yaml.safe_load(recipe.read_text())
    data["claims"][1]["threshold"] = ">=0"  # the impossible claim, revised
    recipe.write_text(yaml.safe_dump(data))
    res = invoke("verify", str(recipe), "--recheck", first.sweep_id, "--recheck",
                 second.sweep_id, "--runs-dir", runs, "-q")  # fmt: skip
    assert "impossible: holds 2/2" in res.output and "fits: holds 2/2" in res.output, res.output
    assert len(store.runs()) == before  # nothing trained
    res = invoke("verify", "--all", "--recheck", first.sweep_id, "--runs-dir", runs)
    assert res.exit_code == 2 and "--recheck" in res.output


def test_a_run_checks_the_claims_it_can(recipe, tmp_path):
    """A single run's summary holds the claims that need no control (value and verdict); the
    run screen shows them and points to verify for the paired ones."""
    res = invoke("run", str(recipe), "--runs-dir", tmp_path / "runs")
    assert res.exit_code == 0, res.output
    summary = Store(tmp_path / "runs").runs()["summary"].iloc[0]
    assert set(summary["claims"]) == {"fits", "impossible", "memorises-all"}  # not lr-helps
    assert summary["claims"]["fits"]["holds"] and not summary["claims"]["impossible"]["holds"]
    assert summary["claims"]["fits"]["value"] == summary["train_acc"]
    assert "claim impossible >1.5" in res.output and "fails" in res.output
    assert "learnscope verify" in res.output


def untrained(cfg):
    """The summary, events and metric table (its evals and probes) of ``cfg``'s model before
    any training step."""
    import pandas as pd

    from learnscope.runner import build, probe_plan, summary_of

    trainer = build(cfg)
    metrics = trainer.evaluate()
    plan = probe_plan(cfg, trainer)
    obj = trainer.objective
    values = {**metrics, **plan.compute(trainer.model, obj.forward, obj.loss)}
    table = pd.DataFrame([values], index=[0])
    return summary_of(metrics, set(trainer.splits), 0, 0.0, []), [], table


CLAIMED = [n for n in recipe_names() if load_config(n).claims]


@pytest.mark.parametrize("name", CLAIMED)
def test_no_reproduces_claim_is_met_by_the_untrained_model(name):
    from learnscope.config import load_recipe_dict
    from learnscope.dotted import set_path
    from learnscope.studies.claims import control_overrides

    cfg = load_config(name)
    run = untrained(cfg)
    for claim in cfg.claims:
        control = None
        if claim.control is not None:
            data = load_recipe_dict(name)
            for path, value in control_overrides(claim.control, data).items():
                set_path(data, path, value)
            control = untrained(validate_config(data))
        value = claim_value(claim, run, control)
        if claim.kind == "reproduces":
            assert not holds(claim, value), f"{name}: {claim.name} holds untrained ({value})"


def test_the_sweep_report_of_a_verification_leads_with_its_claims(recipe, tmp_path):
    from learnscope.report import build_report

    store = Store(tmp_path / "runs")
    v = verify(str(recipe), store, seeds=1, seed_start=0)
    report = build_report(store, [], tmp_path / "r.html", v.sweep_id)
    assert report.panels[0] == "claims"
    page = (tmp_path / "r.html").read_text()
    assert "Claims over seeds" in page and "NOT reproduced" in page and "1/1" in page


def test_a_sweep_spec_states_claims_on_its_members(tiny_config, tmp_path):
    """A sweep's claims: a case against its control case member by member (same seed), a
    claim on every member; printed by ``learnscope sweep``, in the sweep's report; a case the
    sweep does not have is refused before anything trains."""
    spec = {
        "name": "tiny-lr",
        "config": tiny_config,
        "cases": {"fast": {"train.lr": 0.01}, "slow": {"train.lr": 1.0e-5}},
        "seeds": 2,
        "claims": [
            {"name": "lr-helps", "statement": "lr 0.01 fits better than 1e-5", "case": "fast",
             "key": "train_acc", "control": {"name": "slow lr", "case": "slow"},
             "threshold": ">=0.2"},
            {"name": "perfect", "statement": "every member reaches test accuracy 1.5",
             "key": "test_acc", "threshold": ">=1.5"},
        ],
    }  # fmt: skip
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    runs = tmp_path / "runs"
    res = invoke("sweep", "run", path, "--runs-dir", runs, "-q")
    assert "claim lr-helps: holds 2/2" in res.output, res.output
    assert "claim perfect: holds 0/4" in res.output
    assert res.exit_code == 1  # a reproduces claim that does not hold
    store = Store(runs)
    v = results_of(store, "last")
    mine = store.runs().set_index("id")
    lr = {(c["seed"], c["train"]["lr"]): s["train_acc"]
          for c, s in zip(mine["config"], mine["summary"])}  # fmt: skip
    assert v.results[0].values == pytest.approx([lr[0, 0.01] - lr[0, 1e-5],
                                                 lr[1, 0.01] - lr[1, 1e-5]])  # fmt: skip
    out = tmp_path / "r.html"
    assert invoke("report", "--sweep", "last", "--runs-dir", runs, "-o", out).exit_code == 0
    assert "lr-helps" in out.read_text() and "control case" in out.read_text()
    spec["claims"][0]["control"]["case"] = "slower"
    path.write_text(yaml.safe_dump(spec))
    res = invoke("sweep", "run", path, "--runs-dir", tmp_path / "other")
    assert res.exit_code == 2 and "'slower' is not a case of the sweep" in res.output
    assert not (tmp_path / "other").exists() or not Store(tmp_path / "other").runs().shape[0]
