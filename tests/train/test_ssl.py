"""VICReg and MMCR on the views task, the closed-form linear probe, and train.objective."""

from __future__ import annotations

import pytest
import torch

from learnscope.config import validate_config
from learnscope.errors import UserError
from learnscope.runner import build, execute
from learnscope.store import Store
from learnscope.train.ssl import linear_probe_accuracy, mmcr_loss, vicreg_loss

CONFIG = {
    "task": {"name": "views", "dim": 8, "informative": 2, "n_classes": 2, "n_views": 3,
             "embed_dim": 4, "n_train": 256, "n_test": 128},
    "model": {"kind": "mlp", "embed": "none", "width": 32, "depth": 2},
    "train": {"objective": "vicreg", "optimizer": "adam", "lr": 3e-3, "batch_size": 64,
              "steps": 60, "eval_every": 30},
    "probes": [{"probe": "lidar", "sites": ["hook_logits"]},
               {"probe": "mmcr", "sites": ["hook_logits"]},
               {"probe": "rankme", "sites": ["hook_logits"]}],
}  # fmt: skip


def test_vicreg_terms_in_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 5, generator=g)
    z = torch.stack([a, a + 1.0], dim=1)  # views differ by 1 in every coordinate: s = 1
    only_inv = vicreg_loss(z, inv=1.0, var=0.0, cov=0.0)
    assert only_inv.item() == pytest.approx(1.0)
    w = torch.linalg.qr(torch.randn(5, 5, generator=g))[0]
    white = torch.randn(4096, 5, generator=g) @ w * 3.0  # std 3 > 1: no variance penalty
    assert vicreg_loss(torch.stack([white, white], 1), 0.0, 1.0, 0.0).item() == 0.0


def test_mmcr_loss_is_minus_the_centroid_nuclear_norm():
    from learnscope.probes import mmcr

    z = torch.randn(16, 4, 32, generator=torch.Generator().manual_seed(1))
    assert mmcr_loss(z).item() == pytest.approx(-mmcr(z), rel=1e-5)
    same = torch.randn(8, 1, 32).expand(8, 4, 32)  # views coincide: ||Z_b||_* = 2 (4 unit rows)
    assert (mmcr_loss(same, local=1.0) - mmcr_loss(same)).item() == pytest.approx(2.0, rel=1e-5)


def test_linear_probe_separable_and_chance():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (600,), generator=g)
    z = torch.nn.functional.one_hot(y, 3).double() * 4 + 0.1 * torch.randn(600, 3, generator=g)
    assert linear_probe_accuracy(z[:300], y[:300], z[300:], y[300:]) == 1.0
    noise = torch.randn(600, 3, generator=g)
    assert linear_probe_accuracy(noise[:300], y[:300], noise[300:], y[300:]) < 0.5


def test_ssl_run_records_probe_accuracy_and_view_probes(tmp_path):
    store = Store(tmp_path)
    for objective in ("vicreg", "mmcr"):
        cfg = {**CONFIG, "train": {**CONFIG["train"], "objective": objective}}
        result = execute(cfg, store)
        table = store.metric_table(result.run_id)
        assert 0.5 < result.summary["test_acc"] <= 1.0
        last = table.ffill().iloc[-1]
        assert 1.0 <= last["lidar/hook_logits"] <= 4.0 and 1.0 <= last["rankme/hook_logits"] <= 4
        assert 0 < last["mmcr/hook_logits"] <= (4 * 256) ** 0.5  # sqrt(min(n, d) n)
    assert table["train/loss"].dropna().iloc[-1] < table["train/loss"].dropna().iloc[0]


def test_lidar_classes_are_the_views():
    from learnscope.probes import lidar
    from learnscope.runner import probe_plan

    cfg = validate_config(CONFIG)
    trainer = build(cfg)
    plan = probe_plan(cfg, trainer)
    values = plan.compute(trainer.model, trainer.objective.forward, trainer.objective.loss)
    views = plan.batch["views"]  # (b, 3, 8)
    with torch.no_grad():
        z = trainer.model(views.flatten(0, 1)).view(*views.shape[:2], -1)
    assert values["lidar/hook_logits"] == pytest.approx(lidar(z), rel=1e-6)


def test_ssl_objective_needs_a_views_task():
    cfg = {"task": {"name": "modular", "p": 7}, "train": {"objective": "mmcr"}}
    with pytest.raises(UserError, match="train.objective"):
        build(validate_config(cfg))
