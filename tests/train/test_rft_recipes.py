"""The RFT recipe chain (Razin et al. 2024), run by hand (``pytest -m heavy``, ~15 minutes a
seed on a loaded 2-core VM): ``learnscope verify`` of rft-pretrain, rft-sft, rft-from-scratch
(with its matched control, the SFT start) and rft-after-sft in one store, at seeds never used
to set the claims' thresholds. Each recipe's ``train.init_from`` names the recipe before; the
verification pins it to that recipe's run at the same seed (trained first when the store has
none: :func:`learnscope.studies.claims.pinned_start`). Figures in docs/phenomena.md."""

from __future__ import annotations

import pandas as pd
import pytest

from learnscope.store import Store
from learnscope.studies.claims import RECIPE, verify
from learnscope.sweep import expand, load_spec
from learnscope.sweep.backends import config_key, member_runs

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


def case_run(store: Store, sweep_id: str, case: str) -> str:
    """The run id of a verification sweep's ``case``."""
    spec = load_spec(store.sweeps().set_index("id").loc[sweep_id, "spec"])
    runs = member_runs(store, sweep_id)
    (member,) = [m for m in expand(spec) if m.axes["case"] == case]
    return runs[config_key(member.config.to_dict())][0]


@pytest.mark.heavy
@pytest.mark.parametrize("seed", [10, 11])
def test_rft_chain(tmp_path, seed):
    store = Store(tmp_path)
    runs, failed = {}, []
    for name in CHAIN:
        v = verify(name, store, seeds=1, seed_start=seed)
        failed += [f"{name}: {r.line()}" for r in v.results if not r.passed]
        runs[name] = case_run(store, v.sweep_id, f"{RECIPE}-s{seed}")
    assert not failed, failed
    # each started from the run of the recipe before at the same seed (trained once)
    pretrain = store.runs()[lambda r: r["name"] == "rft-pretrain"]
    assert len(pretrain) == 1 and pretrain.iloc[0]["config"]["seed"] == seed
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
