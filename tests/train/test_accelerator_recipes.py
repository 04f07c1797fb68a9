"""The recipe ``stablemax-no-wd`` (Prieto et al. 2025): its claims cannot hold for an untrained
model, and its probe records Softmax Collapse. Its claims over seeds are
``learnscope verify stablemax-no-wd`` (heavy: tests/test_recipes.py)."""

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
