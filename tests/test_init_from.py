"""``train.init_from: RUN[@step]``: a run that starts from another run's model weights."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.errors import UserError
from learnscope.runner import execute
from learnscope.store import Store
from tests.conftest import tiny

CFG = tiny(
    name="source",
    model={"width": 24},
    train={"optimizer": "adam", "checkpoint_every": 10},
    probes=[],
)


def _with(name: str, **train) -> dict:
    return {**CFG, "name": name, "train": {**CFG["train"], **train}}


@pytest.fixture
def source(tmp_path):
    store = Store(tmp_path)
    return store, execute(CFG, store)


def test_a_run_initialised_from_another_starts_at_its_loss(source):
    store, first = source
    second = execute(_with("child", init_from=first.run_id[:-2], steps=5), store)
    start = store.metric_table(second.run_id).loc[0]
    end = store.metric_table(first.run_id).loc[30]
    assert start["train/loss"] == pytest.approx(end["train/loss"], rel=1e-6)
    assert start["test/acc"] == end["test/acc"]
    assert second.summary["init_from"] == f"{first.run_id}@30"
    fresh = store.metric_table(first.run_id).loc[0, "train/loss"]
    assert abs(start["train/loss"] - fresh) > 0.1  # not the initial model


def test_init_from_a_step_and_by_name(source):
    store, first = source
    at10 = execute(_with("child", init_from=f"{first.run_id}@10", steps=1), store)
    loss10 = store.metric_table(first.run_id).loc[10, "train/loss"]
    assert store.metric_table(at10.run_id).loc[0, "train/loss"] == pytest.approx(loss10, rel=1e-6)
    by_name = execute(_with("child2", init_from="source", steps=1), store)
    assert by_name.summary["init_from"] == f"{first.run_id}@30"


@pytest.mark.parametrize(
    "change, match",
    [
        ({"train": {**CFG["train"], "init_from": "nosuchrun"}}, "matches no run"),
        ({"train": {**CFG["train"], "init_from": "source@7"}}, "no checkpoint at step 7"),
        ({"train": {**CFG["train"], "init_from": "source@x"}}, "must be an integer"),
        ({"model": {**CFG["model"], "width": 32}}, "same model section"),
        ({"task": {**CFG["task"], "p": 13}}, "must match"),
    ],
)
def test_a_mismatch_is_a_user_error(source, change, match):
    store, _ = source
    cfg = {**CFG, **change}
    cfg["train"] = {**cfg["train"], "init_from": cfg["train"].get("init_from", "source")}
    before = len(store.runs())
    with pytest.raises(UserError, match=f"train.init_from.*{match}"):
        execute(cfg, store)
    assert len(store.runs()) == before  # nothing half-written


def test_the_cli_exits_2_on_a_bad_init_from(source, tmp_path):
    store, _ = source
    out = CliRunner().invoke(
        app,
        [
            "run",
            "grokking-mlp",
            "--runs-dir",
            str(store.root),
            "-q",
            "--set",
            "train.init_from=source",
        ],  # fmt: skip
    )
    assert out.exit_code == 2, out.output
    assert "train.init_from" in out.output


def test_verify_pins_a_recipe_named_by_init_from_to_its_run_at_each_seed(tmp_path, monkeypatch):
    """``verify`` of a recipe whose ``train.init_from`` names another recipe starts each seed
    from that recipe's run at the same seed (trained once, then found again), not from the
    newest run of the name."""
    import learnscope.config as config
    from learnscope.studies import claims

    pre = tiny(name="pre", train={"optimizer": "adam", "steps": 20}, probes=[])
    post = tiny(
        name="post",
        train={"optimizer": "adam", "steps": 5, "init_from": "pre"},
        probes=[],
        claims=[{"name": "runs", "statement": "s", "key": "train_acc", "threshold": ">=0"}],
    )
    path = tmp_path / "post.yaml"  # the recipe verified; pre stands for a built-in one
    path.write_text(yaml.safe_dump(post))
    real = claims.load_recipe_dict
    monkeypatch.setattr(config, "recipe_names", lambda: ["pre"])
    monkeypatch.setattr(claims, "load_recipe_dict", lambda n: dict(pre) if n == "pre" else real(n))
    store = Store(tmp_path / "runs")
    execute({**pre, "seed": 7}, store)  # the newest run named pre, at another seed
    v = claims.verify(str(path), store, seeds=2, seed_start=0)
    assert v.passed
    runs = store.runs()
    by_id = {r.id: r for r in runs.itertuples()}
    starts = {
        r.config["seed"]: by_id[r.summary["init_from"].split("@")[0]]
        for r in runs.itertuples()
        if r.name.startswith("verify:post")
    }
    assert sorted(starts) == [0, 1]
    assert all(src.name == "pre" and src.config["seed"] == s for s, src in starts.items())
    claims.verify(str(path), store, seeds=2, seed_start=0)  # found again, not trained again
    assert (store.runs()["name"] == "pre").sum() == 3
