"""Linear-probe transfer (Zhu et al. 2023's evaluation): the closed-form probe, and a run's
frozen features probed for a held-out task."""

from __future__ import annotations

import pytest
import torch

from learnscope.runner import execute
from learnscope.store import Store
from learnscope.transfer import ridge_probe, transfer


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
