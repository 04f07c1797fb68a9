"""The recipes of the grokking accelerators, ``stablemax-no-wd`` (Prieto et al. 2025) and
``grokfast-transformer`` (Lee et al. 2024): their settings are the papers', their claims cannot
hold for an untrained model, and stablemax-no-wd's probe records Softmax Collapse. Their
claims over seeds are ``learnscope verify NAME`` (heavy: tests/test_recipes.py)."""

from __future__ import annotations

from learnscope.config import load_config
from learnscope.measures import claim_value, holds
from learnscope.runner import execute
from learnscope.store import Store


def test_the_recipe_is_the_papers_setting():
    cfg = load_config("stablemax-no-wd")
    t = cfg.train
    assert (t.loss, t.orthogonal, t.weight_decay, t.batch_size) == ("stablemax_ce", True, 0, None)
    assert (cfg.task.params["p"], cfg.task.params["train_fraction"]) == (113, 0.4)
    assert [p.probe for p in cfg.probes] == ["softmax_collapse"]


def test_no_claim_holds_before_training(tmp_path):
    """Three steps of the recipe and of its control: nothing generalised, nothing collapsed,
    so no reproducing claim may hold."""
    store = Store(tmp_path)
    short = ["train.steps=3", "train.eval_every=1", "probes=[{probe: softmax_collapse, every: 1}]"]
    cfg = load_config("stablemax-no-wd", short)
    control = load_config("stablemax-no-wd", [*short, "train.loss=ce", "train.orthogonal=false"])
    runs = []
    for c in (cfg, control):
        r = execute(c, store)
        runs.append((r.summary, [e.kind for e in r.events], store.metric_table(r.run_id)))
    for claim in cfg.claims:
        if claim.kind == "reproduces":
            value = claim_value(claim, runs[0], runs[1] if claim.control else None)
            assert value is not None and not holds(claim, value), (claim.name, value)


def test_grokfast_recipe_is_the_papers_setting_scaled():
    """grokfast-transformer: modular multiplication on the 2-layer, 4-head Transformer with
    Adam (coupled weight decay), betas (0.9, 0.98), 10 warm-up steps and Grokfast's EMA filter
    at grokfast.py's defaults; its control is the same recipe without the filter."""
    cfg = load_config("grokfast-transformer")
    t, f = cfg.train, cfg.train.grad_filter
    assert (cfg.task.name, cfg.task.params["op"], cfg.task.params["train_fraction"]) == (
        "modular_seq",
        "mul",
        0.5,
    )
    assert (cfg.model.params["n_layer"], cfg.model.params["n_head"]) == (2, 4)
    assert (t.optimizer, t.betas, t.warmup_steps, t.lr) == ("adam", (0.9, 0.98), 10, 1e-3)
    assert (f.kind, f.alpha, f.weight) == ("ema", 0.98, 2.0)
    controls = {c.name: c.control for c in cfg.claims if c.control is not None}
    assert controls and all(c.set.get("train.grad_filter", 0) is None for c in controls.values())


def test_no_grokfast_claim_holds_before_training(tmp_path):
    """Three steps of grokfast-transformer and of its control (no filter): nothing learned,
    so no reproducing claim may hold."""
    store = Store(tmp_path)
    short = ["train.steps=3", "train.eval_every=1"]
    cfg = load_config("grokfast-transformer", short)
    control = load_config("grokfast-transformer", [*short, "train.grad_filter=null"])
    assert control.train.grad_filter is None
    runs = []
    for c in (cfg, control):
        r = execute(c, store)
        runs.append((r.summary, [e.kind for e in r.events], store.metric_table(r.run_id)))
    reproduces = [c for c in cfg.claims if c.kind == "reproduces"]
    assert reproduces
    for claim in reproduces:
        assert claim.control is None or claim.control.set == {"train.grad_filter": None}
        value = claim_value(claim, runs[0], runs[1] if claim.control else None)
        assert value is not None and not holds(claim, value), (claim.name, value)
