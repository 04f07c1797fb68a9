"""The RFT recipe chain (Razin et al. 2024), run by hand (``pytest -m heavy``, ~8 minutes on
a loaded 2-core VM): rft-pretrain, rft-sft, then rft-from-scratch and rft-after-sft in one
store. Figures in docs/phenomena.md."""

from __future__ import annotations

import pandas as pd
import pytest

from learnscope.config import load_config
from learnscope.runner import execute
from learnscope.store import Store


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


@pytest.mark.heavy
def test_rft_chain(tmp_path):
    store = Store(tmp_path)
    results = {}
    for name in ("rft-pretrain", "rft-sft", "rft-from-scratch", "rft-after-sft"):
        results[name] = execute(load_config(name), store)
        met = results[name].summary.get("expect_met", {})
        assert all(met.values()), (name, met, results[name].summary)
    scratch = per_input(store.metric_table(results["rft-from-scratch"].run_id))
    after = per_input(store.metric_table(results["rft-after-sft"].run_id))
    both = pd.concat([scratch, after])
    # the estimate of an input's gradient is 0 exactly when its sampled rewards are equal
    assert ((both.grad_norm == 0) == (both.reward_std == 0)).all()
    # from scratch: every probe input has reward std 0 at every step, and no reward
    assert (scratch.reward_std == 0).all() and (scratch.reward_mean == 0).all()
    # after 1% SFT: most probe inputs have a reward std above 0 at step 0
    assert (after[after.step == 0].reward_std > 0).mean() >= 0.5
    varied = both[both.reward_std > 0]
    assert varied[["reward_std", "grad_norm"]].corr("spearman").iloc[0, 1] > 0
