"""One run pipeline: a config trained with ``learnscope run`` and the same config trained as a
sweep member (alone, or inside a stacked ensemble) end the same way, as a user sees them:
status, step of divergence, events, checkpoint files and the metric table."""

from __future__ import annotations

import copy

import yaml
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.store import Store
from tests.conftest import tiny
from tests.train.test_ensemble import assert_same_run

MLP = tiny(
    name="mlp",
    model={"width": 24},
    train={
        "optimizer": "sgd",
        "loss": "mse",
        "lr": 0.05,
        "steps": 12,
        "eval_every": 4,
        "checkpoint_every": 5,
    },
)
# a GPT at a high learning rate: its attention entropy collapses within 60 steps
GPT = {
    "name": "gpt",
    "seed": 0,
    "task": {
        "name": "multiplication",
        "n_digits": 2,
        "m_digits": 2,
        "reverse": True,
        "fresh": True,
        "n_test": 50,
    },
    "model": {"kind": "gpt", "n_layer": 2, "n_head": 4, "d_model": 32},
    "train": {
        "lr": 0.1,
        "batch_size": 32,
        "steps": 60,
        "eval_every": 10,
        "eval_examples": 20,
        "checkpoint_every": 25,
    },
}


def run_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_runs_and_sweep_members_agree(tmp_path):
    runs, sweeps = tmp_path / "runs", tmp_path / "sweeps"
    plain, wild = copy.deepcopy(MLP), copy.deepcopy(MLP)
    wild["train"]["lr"] = 1e4  # diverges within a few steps
    singles = {}
    for name, cfg in (("plain", plain), ("wild", wild), ("gpt", GPT)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        res = run_cli("run", path, "--runs-dir", runs, "-q")
        assert res.exit_code == (1 if name == "wild" else 0), res.output
        singles[name] = Store(runs).runs()["id"].iloc[-1]

    # the two MLPs differ only in lr: one stacked ensemble; the GPT trains alone
    mlp_spec = {"name": "mlps", "config": MLP, "grid": {"train.lr": [0.05, 1e4]}}
    gpt_spec = {"name": "gpts", "config": GPT}
    for spec in (mlp_spec, gpt_spec):
        path = tmp_path / f"{spec['name']}.yaml"
        path.write_text(yaml.safe_dump(spec))
        res = run_cli("sweep", path, "--runs-dir", sweeps, "--chunk", "2", "-q")
        assert res.exit_code == 0, res.output
    members = Store(sweeps).runs().set_index("name")
    assert list(members["status"]) == ["finished", "diverged", "finished"]
    assert [s.get("mode") for s in members["summary"]] == ["ensemble", "ensemble", "loop"]

    store_runs, store_sweeps = Store(runs), Store(sweeps)
    pairs = {"plain": "mlps-0000", "wild": "mlps-0001", "gpt": "gpts-0000"}
    for single, member in pairs.items():
        assert_same_run(store_runs, singles[single], store_sweeps, members.loc[member, "id"])
    events = store_sweeps.events(members.loc["gpts-0000", "id"])
    assert "attention_collapse" in set(events["kind"])
    wild_events = store_sweeps.events(members.loc["mlps-0001", "id"])
    assert list(wild_events["kind"]) == ["divergence"]

    # a member is a run: probe its checkpoint, resume it (nothing stored twice)
    member_id = members.loc["mlps-0000", "id"]
    res = run_cli("probe", member_id, "--runs-dir", sweeps)
    assert res.exit_code == 0 and "effective_rank/layers.0.hook_post" in res.output, res.output
    before = store_sweeps.metric_table(member_id)
    res = run_cli("run", "--resume", member_id, "--runs-dir", sweeps, "-q")
    assert res.exit_code == 0, res.output
    after = Store(sweeps).metric_table(member_id)
    assert after.shape == before.shape and list(after.index) == list(before.index)
