"""The RFT recipe chain (Razin et al. 2024), run by hand (``pytest -m heavy``, ~15 minutes a
seed on a loaded 2-core VM): rft-pretrain, rft-sft, then rft-from-scratch (with its matched
control, the SFT start) and rft-after-sft in one store, at seeds never used to set the
claims' thresholds. Figures in docs/phenomena.md.

``learnscope verify`` cannot check these recipes: ``train.init_from`` names the recipe before,
found by run name (the newest finished run of that name), and a verification's runs are named
``verify:RECIPE-NNNN``; so the chain is trained here, seed by seed, and every claim of every
recipe is checked on its runs exactly as ``verify`` would check it."""

from __future__ import annotations

import pandas as pd
import pytest

from learnscope.config import load_recipe_dict, validate_config
from learnscope.dotted import set_path
from learnscope.runner import execute
from learnscope.store import Store
from learnscope.studies.claims import claim_value, control_overrides, holds

CHAIN = ("rft-pretrain", "rft-sft", "rft-from-scratch", "rft-after-sft")


def per_input(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (eval step, probe input): reward_mean, reward_std, grad_norm."""
    rows = []
    for step, values in table.iterrows():
        i = 0
        while f"rft/in{i}/reward_std" in values and pd.notna(values[f"rft/in{i}/reward_std"]):
            rows.append({"step": step, "input": i, **{
                k: values[f"rft/in{i}/{k}"] for k in ("reward_mean", "reward_std", "grad_norm")
            }})  # fmt: skip
            i += 1
    return pd.DataFrame(rows)


def train(store: Store, name: str, seed: int, overrides: dict | None = None):
    """Train recipe ``name`` (with ``overrides``) at ``seed`` (model and data); its run id
    and what a claim measures on it (summary, event kinds, metric table)."""
    data = load_recipe_dict(name)
    for path, value in {**(overrides or {}), "seed": seed, "task.seed": seed}.items():
        set_path(data, path, value)
    run_id = execute(validate_config(data), store).run_id
    kinds = store.events(run_id)
    measured = (
        store.run(run_id)["summary"] or {},
        list(kinds["kind"]) if len(kinds) else [],
        store.metric_table(run_id),
    )
    return run_id, measured


@pytest.mark.heavy
@pytest.mark.parametrize("seed", [10, 11])
def test_rft_chain(tmp_path, seed):
    store = Store(tmp_path)
    runs, failed = {}, []
    for name in CHAIN:  # in order: each init_from finds the run of the recipe before
        run_id, measured = train(store, name, seed)
        runs[name] = run_id
        data = load_recipe_dict(name)
        for claim in validate_config(data).claims:
            control = None
            if claim.control is not None:
                _, control = train(store, name, seed, control_overrides(claim.control, data))
            value = claim_value(claim, measured, control)
            if claim.kind == "reproduces" and not holds(claim, value):
                failed.append(f"{name}: {claim.name} {claim.threshold}, measured {value}")
    assert not failed, failed
    scratch = per_input(store.metric_table(runs["rft-from-scratch"]))
    after = per_input(store.metric_table(runs["rft-after-sft"]))
    both = pd.concat([scratch, after])
    # the estimate of an input's gradient is 0 exactly when its sampled rewards are equal
    assert ((both.grad_norm == 0) == (both.reward_std == 0)).all()
    # from scratch: every probe input has reward std 0 at every step, and no reward
    assert (scratch.reward_std == 0).all() and (scratch.reward_mean == 0).all()
    # after 1% SFT: most probe inputs have a reward std above 0 at step 0
    assert (after[after.step == 0].reward_std > 0).mean() >= 0.5
    varied = both[both.reward_std > 0]
    assert varied[["reward_std", "grad_norm"]].corr("spearman").iloc[0, 1] > 0
