from __future__ import annotations

import copy

import numpy as np
import pytest

from learnscope.config import validate_config
from learnscope.runner import execute
from learnscope.store import Store
from learnscope.train.ensemble import Ensemble, ensemble_key, record, train_alone

BASE = {
    "name": "ens",
    "seed": 0,
    "task": {"name": "modular", "op": "add", "p": 11, "train_fraction": 0.5},
    "model": {"kind": "mlp", "width": 24, "depth": 2, "activation": "relu"},
    "train": {"lr": 0.01, "steps": 12, "eval_every": 4, "loss": "ce", "betas": [0.9, 0.98]},
}

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


def _assert_same(ens_rows, table):
    merged: dict[int, dict[str, float]] = {}
    for step, metrics in ens_rows:  # eval and probe rows of one step together
        merged.setdefault(step, {}).update(metrics)
    assert list(merged) == list(table.index)
    for step, metrics in merged.items():
        logged = set(table.columns[table.loc[step].notna()])  # train_step/loss: none at step 0
        assert set(metrics) == logged, step  # the same metrics, probes included
        for name, value in metrics.items():
            ref = table.loc[step, name]
            if name.endswith("/acc"):
                assert abs(value - ref) <= 0.021, (step, name, value, ref)  # one example at most
            elif name.startswith(("effective_rank", "ipr_")):  # SVDs / ratios of small numbers
                assert value == pytest.approx(ref, rel=2e-3, abs=1e-4), (step, name)
            else:
                assert value == pytest.approx(ref, rel=2e-4, abs=2e-5), (step, name)


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
    base["train"].update(train)
    cfgs = [validate_config(_member(base, v)) for v in VARIANTS]
    assert len({ensemble_key(c) for c in cfgs}) == 1
    results = Ensemble(cfgs).fit()
    store = Store(tmp_path / "runs")
    for cfg, res in zip(cfgs, results):
        ref = execute(cfg, store)
        _assert_same(res.rows, store.metric_table(ref.run_id))
        assert res.status == "finished" and res.steps == cfg.train.steps
    # the members really differ from each other
    finals = [r.metrics["weight_norm/out.weight"] for r in results]
    assert len(set(np.round(finals, 6))) == len(finals)


def test_vmap_forward_trains_as_the_stacked_forward():
    """The generic path (vmap of the model's forward) and MLP.forward_stacked: same members."""
    base = copy.deepcopy(BASE)
    base["train"].update(batch_size=8, grad_clip=0.5)
    cfgs = [validate_config(_member(base, v)) for v in VARIANTS]
    fast = Ensemble(cfgs, probes=False).fit()
    generic = Ensemble(cfgs, probes=False, use_vmap=True).fit()
    for a, b in zip(fast, generic):
        assert a.metrics.keys() == b.metrics.keys()
        for name, value in a.metrics.items():
            assert value == pytest.approx(b.metrics[name], rel=1e-4, abs=1e-5), name


def test_recorded_member_is_a_normal_run(tmp_path):
    cfgs = [validate_config(_member(BASE, v)) for v in VARIANTS[:2]]
    store = Store(tmp_path / "runs")
    ids = [record(store, r, sweep_id="sw-test") for r in Ensemble(cfgs).fit()]
    runs = store.runs().set_index("id")
    assert list(runs.loc[ids, "sweep_id"]) == ["sw-test"] * 2
    assert list(runs.loc[ids, "status"]) == ["finished"] * 2
    summary = runs.loc[ids[0], "summary"]
    assert summary["steps"] == 12 and summary["ensemble_size"] == 2
    assert {"train_acc", "test_acc", "test_loss"} <= set(summary)
    assert (tmp_path / "runs" / ids[0] / "config.yaml").exists()
    table = store.metric_table(ids[0])
    assert list(table.index) == [0, 4, 8, 12] and "weight_norm/out.weight" in table


def test_keys_separate_incompatible_members():
    a = validate_config(BASE)
    b = validate_config(_member(BASE, {"model": {"width": 32}}))
    c = validate_config(_member(BASE, {"train": {"steps": 13}}))
    d = validate_config(_member(BASE, {"model": {"dropout": 0.1}}))
    assert len({ensemble_key(a), ensemble_key(b), ensemble_key(c)}) == 3
    assert ensemble_key(d) is None  # dropout: trained alone
    alone = train_alone(d)
    assert alone.mode == "loop" and alone.steps == 12
    assert sorted({s for s, _ in alone.rows}) == [0, 4, 8, 12]
    assert "effective_rank/layers.0.hook_post" in alone.metrics  # default probes, as a run


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
