from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from learnscope import checkpoint
from learnscope.cli import app
from learnscope.config import validate_config
from learnscope.runner import execute, execute_ensemble
from learnscope.store import Store
from learnscope.train.ensemble import Ensemble, ensemble_key
from tests.conftest import tiny

BASE = tiny(
    name="ens", model={"width": 24}, train={"steps": 12, "eval_every": 4, "betas": [0.9, 0.98]}
)

# members differing in seed, lr, weight decay, train fraction, task seed, init scale
VARIANTS = [
    {},
    {"seed": 1, "train": {"lr": 0.003}},
    {"seed": 2, "train": {"weight_decay": 1.0}},
    {"seed": 3, "task": {"train_fraction": 0.3}, "train": {"weight_decay": 0.1}},
    {"seed": 4, "task": {"seed": 7, "train_fraction": 0.7}, "model": {"init_scale": 2.0}},
]


def _member(base: dict, variant: dict) -> dict:
    cfg = copy.deepcopy(base)
    for key, value in variant.items():
        if isinstance(value, dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg


def assert_same_run(store_a, run_a, store_b, run_b, acc_tol=0.021):
    """Two runs of one config agree as a user sees them: status, events, checkpoint files and
    their weights, and the whole metric table (same rows and columns, values to float
    tolerance)."""
    rec_a, rec_b = store_a.run(run_a), store_b.run(run_b)
    assert rec_a["status"] == rec_b["status"]
    for key in ("steps", "diverged_step", "diverged_metric", "grok_train_step", "grok_test_step"):
        assert rec_a["summary"].get(key) == rec_b["summary"].get(key), key
    ev_a, ev_b = store_a.events(run_a), store_b.events(run_b)
    assert sorted(zip(ev_a["kind"], ev_a["step"].fillna(-1))) == sorted(
        zip(ev_b["kind"], ev_b["step"].fillna(-1))
    )
    ckpt_a, ckpt_b = rec_a["dir"] / "checkpoints", rec_b["dir"] / "checkpoints"
    assert checkpoint.steps(ckpt_a) == checkpoint.steps(ckpt_b) != []
    for step in checkpoint.steps(ckpt_a):
        wa = checkpoint.load(checkpoint.path_for(ckpt_a, step))["model"]
        wb = checkpoint.load(checkpoint.path_for(ckpt_b, step))["model"]
        assert wa.keys() == wb.keys()
        for name in wa:
            torch.testing.assert_close(wa[name], wb[name], rtol=2e-4, atol=2e-5, equal_nan=True)
    ta, tb = store_a.metric_table(run_a), store_b.metric_table(run_b)
    assert list(ta.index) == list(tb.index)
    assert sorted(ta.columns) == sorted(tb.columns)
    for name in ta.columns:
        for step in ta.index:
            va, vb = ta.loc[step, name], tb.loc[step, name]
            if va != va or vb != vb or not np.isfinite(va):  # missing or non-finite: alike
                assert (va != va) == (vb != vb) and np.isinf(va) == np.isinf(vb), (step, name)
            elif name.endswith("/acc"):
                assert abs(va - vb) <= acc_tol, (step, name, va, vb)  # one example at most
            elif name.startswith(("effective_rank", "ipr_")):  # SVDs / ratios of small numbers
                assert va == pytest.approx(vb, rel=2e-3, abs=1e-4), (step, name)
            else:
                assert va == pytest.approx(vb, rel=2e-4, abs=2e-5), (step, name)


@pytest.mark.parametrize(
    "train",
    [
        {},  # full batch, AdamW
        {"batch_size": 8, "optimizer": "adamw", "grad_clip": 0.5},
        {
            "batch_size": 8,
            "optimizer": "sgd",
            "momentum": 0.9,
            "schedule": "warmup_cosine",
            "warmup_steps": 3,
        },
        {"optimizer": "adam", "loss": "mse"},
    ],
)
def test_members_equal_separate_runs(train, tmp_path):
    base = copy.deepcopy(BASE)
    base["train"].update(train, checkpoint_every=4)
    cfgs = [validate_config(_member(base, v)) for v in VARIANTS]
    assert len({ensemble_key(c) for c in cfgs}) == 1
    ens_store, run_store = Store(tmp_path / "ens"), Store(tmp_path / "runs")
    members = execute_ensemble(cfgs, ens_store, sweep_id="sw-test")
    for cfg, member in zip(cfgs, members):
        ref = execute(cfg, run_store)
        assert member.status == "finished" and member.summary["ensemble_size"] == len(cfgs)
        assert_same_run(ens_store, member.run_id, run_store, ref.run_id)
    # the members really differ from each other
    finals = [m.summary["train_loss"] for m in members]
    assert len(set(np.round(finals, 6))) == len(finals)


def test_a_member_diverges_alone(tmp_path):
    """SGD at lr 1e4 (MSE) beside a plain member: it stops at its first non-finite loss, status
    diverged, as its own run would; the other member trains to the end."""
    sgd = {"optimizer": "sgd", "lr": 0.05, "loss": "mse", "checkpoint_every": 5}
    base = _member(BASE, {"train": sgd})
    wild = _member(base, {"seed": 1, "train": {"lr": 1e4}})
    cfgs = [validate_config(base), validate_config(wild)]
    ens_store, run_store = Store(tmp_path / "ens"), Store(tmp_path / "runs")
    plain, diverged = execute_ensemble(cfgs, ens_store)
    assert plain.status == "finished" and plain.summary["steps"] == 12
    assert diverged.status == "diverged" and diverged.summary["diverged_step"] < 12
    for cfg, member in zip(cfgs, (plain, diverged)):
        assert_same_run(ens_store, member.run_id, run_store, execute(cfg, run_store).run_id)


def test_member_is_a_normal_run_resumable_and_probeable(tmp_path):
    """A member's row, config file and checkpoints; ``--resume`` continues it with the plain
    trainer from a checkpoint to the same end as its straight run; ``learnscope probe``
    reads its checkpoint."""
    base = _member(BASE, {"train": {"batch_size": 8, "checkpoint_every": 4}})
    cfgs = [validate_config(_member(base, v)) for v in VARIANTS[:2]]
    store = Store(tmp_path / "runs")
    members = execute_ensemble(cfgs, store, sweep_id="sw-test")
    ids = [m.run_id for m in members]
    runs = store.runs().set_index("id")
    assert list(runs.loc[ids, "sweep_id"]) == ["sw-test"] * 2
    assert list(runs.loc[ids, "status"]) == ["finished"] * 2
    summary = runs.loc[ids[0], "summary"]
    assert summary["steps"] == 12 and summary["ensemble_size"] == 2
    assert summary["mode"] == "ensemble"
    assert (tmp_path / "runs" / ids[0] / "config.yaml").exists()
    assert list(store.metric_table(ids[0]).index) == [0, 4, 8, 12]

    # cut the member back to its step-8 checkpoint and resume it with the plain trainer
    straight = store.metric_table(ids[1])
    ckpts = tmp_path / "runs" / ids[1] / "checkpoints"
    checkpoint.path_for(ckpts, 12).unlink()
    resumed = execute(cfgs[1], store, resume=ids[1])
    assert resumed.status == "finished" and resumed.summary["steps"] == 12
    after = store.metric_table(ids[1])
    assert list(after.index) == list(straight.index)
    assert sorted(after.columns) == sorted(straight.columns)
    for name in straight.columns:
        a, b = after[name].dropna(), straight[name].dropna()
        assert list(a.index) == list(b.index), name
        assert list(a) == pytest.approx(list(b), rel=1e-4, abs=1e-6), name

    res = CliRunner().invoke(app, ["probe", ids[0], "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code == 0, res.output
    assert "effective_rank/layers.0.hook_post" in res.output and "step 12" in res.output


def test_keys_separate_incompatible_members():
    a = validate_config(BASE)
    b = validate_config(_member(BASE, {"model": {"width": 32}}))
    c = validate_config(_member(BASE, {"train": {"steps": 13}}))
    d = validate_config(_member(BASE, {"model": {"dropout": 0.1}}))
    assert len({ensemble_key(a), ensemble_key(b), ensemble_key(c)}) == 3
    assert ensemble_key(d) is None  # dropout: trained alone
    e = validate_config(_member(BASE, {"train": {"regularizers": [{"kind": "vcr"}]}}))
    assert ensemble_key(e) is None  # regularisers read hooks, which a stacked pass runs not


def test_chunked_evaluation_equals_one_pass(monkeypatch):
    import learnscope.train.ensemble as ens_mod

    cfgs = [validate_config(_member(BASE, v)) for v in VARIANTS]
    ens = Ensemble(cfgs)
    whole = ens.evaluate()
    monkeypatch.setattr(ens_mod, "EVAL_ELEMENTS", 1)  # 64 rows per chunk: several chunks
    chunked = ens.evaluate()
    for a, b in zip(whole, chunked):
        assert a.keys() == b.keys()
        assert all(a[k] == pytest.approx(b[k], rel=1e-5) for k in a)


def test_stop_when_grokked_alone_and_in_an_ensemble(tmp_path):
    """``train.stop_when: [grokked]``: a run ends once its test set is learned and stays so
    for ``stop_patience`` evaluations; in an ensemble each member stops on its own, at the
    step its own run stops, and a member that never groks trains to the end."""
    base = {  # grokking-mlp at p = 23: groks at step ~110
        "name": "grok",
        "task": {"name": "modular", "p": 23, "train_fraction": 0.5},
        "model": {
            "kind": "mlp",
            "width": 128,
            "activation": "quadratic",
            "bias": False,
            "init_std": 0.1,
        },
        "train": {
            "lr": 0.01,
            "weight_decay": 5.0,
            "loss": "mse",
            "steps": 200,
            "eval_every": 5,
            "stop_when": ["grokked"],
            "stop_patience": 2,
        },
    }
    slow = _member(base, {"seed": 1, "train": {"lr": 1e-5}})  # never groks in 200 steps
    cfgs = [validate_config(base), validate_config(slow)]
    ens_store, run_store = Store(tmp_path / "ens"), Store(tmp_path / "runs")
    fast_member, slow_member = execute_ensemble(cfgs, ens_store)
    alone = execute(cfgs[0], run_store)
    assert alone.status == "stopped" and alone.summary["steps"] < 200
    grok = alone.summary["grok_test_step"]
    assert alone.summary["steps"] == grok + 2 * 5  # held for 2 more evaluations
    assert alone.summary["stopped_by"] == f"grokked at step {grok}"
    assert list(run_store.metric_table(alone.run_id).index)[-1] == alone.summary["steps"]
    assert fast_member.status == "stopped" and fast_member.summary["steps"] == grok + 10
    assert_same_run(ens_store, fast_member.run_id, run_store, alone.run_id)
    assert slow_member.status == "finished" and slow_member.summary["steps"] == 200


def test_corrupted_rows_are_scored_against_their_true_labels_too(tmp_path):
    """``train_corrupted/acc`` (memorised the corrupted labels) and
    ``train_corrupted/true_acc`` (computes the true function on them), the same in a run and
    in an ensemble member; the two never both count a row (the labels always differ)."""
    noisy = _member(BASE, {"task": {"noise": 0.3}, "train": {"steps": 40, "eval_every": 20}})
    cfgs = [validate_config(noisy), validate_config(_member(noisy, {"seed": 5}))]
    ens_store, run_store = Store(tmp_path / "ens"), Store(tmp_path / "runs")
    members = execute_ensemble(cfgs, ens_store)
    for cfg, member in zip(cfgs, members):
        alone = execute(cfg, run_store)
        table = run_store.metric_table(alone.run_id)
        assert {"train_corrupted/acc", "train_corrupted/true_acc"} <= set(table.columns)
        both = table["train_corrupted/acc"] + table["train_corrupted/true_acc"]
        assert (both <= 1 + 1e-9).all()
        assert_same_run(ens_store, member.run_id, run_store, alone.run_id, acc_tol=0.05)
