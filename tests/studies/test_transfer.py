"""Linear-probe transfer (Zhu et al. 2023's evaluation): the closed-form probe, and a run's
frozen features probed for a held-out task."""

from __future__ import annotations

import pytest
import torch

from learnscope.runner import execute
from learnscope.store import Store
from learnscope.studies.transfer import ridge_probe, transfer


def test_probe_reads_a_linear_code_and_not_noise():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (400,), generator=g)
    code = torch.randn(5, 16, generator=g)
    f = code[y] + 0.1 * torch.randn(400, 16, generator=g)  # a noisy linear code of y
    assert ridge_probe(f[:300], y[:300], f[300:], y[300:], 5) == 1.0
    noise = torch.randn(400, 16, generator=g)  # features that say nothing about y
    assert ridge_probe(noise[:300], y[:300], noise[300:], y[300:], 5) < 0.4  # chance 0.2


def test_transfer_of_a_trained_run(tmp_path, tiny_config):
    tiny_config["train"]["steps"] = 60
    result = execute(tiny_config, Store(tmp_path))
    same = transfer(tiny_config, result.dir, {}, "layers.0.hook_post")
    assert same.site == "layers.0.hook_post" and same.step == 60
    assert 1 <= same.effective_rank <= 32
    assert same.probe_train_acc >= 0.9  # ridge regression to one-hot labels, 32 features
    held = transfer(tiny_config, result.dir, {"op": "mul"}, "layers.*.hook_post")
    assert 0 <= held.probe_test_acc <= 1 and held.effective_rank == same.effective_rank


@pytest.mark.slow
def test_vcr_pretraining_raises_the_rank_but_lowers_transfer_to_sub(tmp_path):
    """vcr-pretrain, seed 0, without and with VCR (0.1, 0.004) on its last hidden layer.
    Measured (docs/phenomena.md): effective rank 62.7 vs 84.7, probe for (a - b) mod 31 0.938
    vs 0.531, pre-training test accuracy 0.885 vs 0.080."""
    from learnscope.config import load_config

    vcr = "[{kind: vcr, layers: [layers.1.hook_post], lambda_var: 0.1, lambda_cov: 0.004}]"
    got = {}
    for name, sets in (("plain", []), ("vcr", [f"train.regularizers={vcr}"])):
        cfg = load_config("vcr-pretrain", sets)
        result = execute(cfg, Store(tmp_path / name))
        got[name] = (
            result.summary["test_acc"],
            transfer(cfg.to_dict(), result.dir, {"op": "sub"}, "layers.1.hook_post"),
        )
    (plain_acc, plain), (vcr_acc, reg) = got["plain"], got["vcr"]
    assert reg.effective_rank > plain.effective_rank + 10, got
    assert reg.probe_test_acc < plain.probe_test_acc - 0.2 and plain.probe_test_acc > 0.9, got
    assert vcr_acc < 0.3 < 0.8 < plain_acc, got
