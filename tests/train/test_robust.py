"""SAM (``train.optimizer: sam``) and input noise (``train.input_noise``): one training step
checked against the formulas of learnscope.train.robust, computed by hand."""

from __future__ import annotations

import copy

import pytest
import torch

from learnscope.config import validate_config
from learnscope.errors import UserError
from learnscope.runner import build
from learnscope.train.ensemble import ensemble_key
from learnscope.train.robust import input_noise
from tests.conftest import tiny


def _one_step(**train):
    cfg = validate_config(tiny(train={"steps": 1, "eval_every": 1, **train}, probes=[]))
    trainer = build(cfg)
    before = copy.deepcopy(trainer.model)
    batch = trainer.splits["train"].tensors
    trainer.fit()
    return trainer, before, batch


def test_sam_steps_along_the_gradient_at_the_worst_nearby_weights():
    rho, lr = 0.3, 0.1
    trainer, before, batch = _one_step(optimizer="sam", sam_rho=rho, lr=lr)
    obj = trainer.objective
    params = [p for p in before.parameters()]
    obj.train_loss(before, batch).backward()
    g = [p.grad.clone() for p in params]
    norm = torch.sqrt(sum((x**2).sum() for x in g))
    with torch.no_grad():  # w + rho g / ||g||
        for p, x in zip(params, g, strict=True):
            p.add_(rho * x / norm)
            p.grad = None
    obj.train_loss(before, batch).backward()
    with torch.no_grad():
        for p, x in zip(params, g, strict=True):
            expected = p - rho * x / norm - lr * p.grad  # back to w, then the SGD step
            (name,) = [n for n, q in before.named_parameters() if q is p]
            assert torch.allclose(dict(trainer.model.named_parameters())[name], expected, atol=1e-6)


def test_sam_differs_from_sgd_and_equals_it_as_rho_vanishes():
    sam, _, _ = _one_step(optimizer="sam", sam_rho=1e-9, lr=0.1)
    sgd, _, _ = _one_step(optimizer="sgd", lr=0.1)
    far, _, _ = _one_step(optimizer="sam", sam_rho=1.0, lr=0.1)
    for a, b in zip(sam.model.parameters(), sgd.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert any(not torch.allclose(b, c) for b, c in
               zip(sgd.model.parameters(), far.model.parameters(), strict=True))  # fmt: skip


def test_input_noise_redraws_tokens_and_leaves_evaluation_clean():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(20_000, 4, dtype=torch.long)
    out = input_noise({"x": x, "y": torch.zeros(20_000)}, 0.4, 5, g)
    assert abs((out["x"] != 0).float().mean().item() - 0.4 * 4 / 5) < 0.01
    assert out["x"].max() == 4 and out["y"] is not None
    real = input_noise({"x": torch.zeros(20_000, 2)}, 0.5, None, g)["x"]
    assert abs(real.std().item() - 0.5) < 0.01
    cfg = tiny(task={"name": "prototypes", "n_classes": 3, "length": 6, "vocab": 4,
                     "n_per_class": 20, "n_test_per_class": 10},
               train={"steps": 3, "input_noise": 0.5}, probes=[])  # fmt: skip
    for k in ("op", "p", "train_fraction"):
        cfg["task"].pop(k)
    trainer = build(validate_config(cfg))
    clean = trainer.splits["train"]["x"].clone()
    trainer.fit()
    assert torch.equal(trainer.splits["train"]["x"], clean)  # the split is never changed
    assert not torch.equal(trainer.last_batch["x"], clean)  # the trained batch was noised


def test_loop_only_and_bad_combinations():
    assert ensemble_key(validate_config(tiny(train={"optimizer": "sam"}))) is None
    assert ensemble_key(validate_config(tiny(train={"input_noise": 0.1}))) is None
    assert ensemble_key(validate_config(tiny())) is not None
    with pytest.raises(UserError, match="sam_rho"):
        validate_config(tiny(train={"sam_rho": 0}))


def test_sam_steps_with_its_base_optimiser():
    from learnscope.train.optim import make_optimizer

    model = torch.nn.Linear(2, 2)
    for base, kind in [("sgd", torch.optim.SGD), ("adamw", torch.optim.AdamW)]:
        cfg = validate_config(tiny(train={"optimizer": "sam", "sam_base": base})).train
        assert type(make_optimizer(model, cfg)) is kind
