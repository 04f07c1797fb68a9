"""The ensemble's fast paths (issue 32 item 3): the written-out step of the MLP on one-hot
tokens (:class:`StackedOneHotMLP`) against ``vmap`` of the model with autograd, PyTorch's fused
AdamW per optimiser group against the element-wise formula, and both paths against separate
runs."""

from __future__ import annotations

import copy

import pytest
import torch

import learnscope.train.ensemble as ens_mod
from learnscope.config import validate_config
from learnscope.runner import execute, execute_ensemble
from learnscope.store import Store
from learnscope.train.ensemble import Ensemble, StackedOneHotMLP, onehot_mlp, per_example_loss
from tests.conftest import tiny
from tests.train.test_ensemble import VARIANTS, _member, assert_same_run

BASE = tiny(name="fast", model={"width": 24}, train={"steps": 12, "eval_every": 4})


def _cfgs(model=None, train=None, k=3):
    base = copy.deepcopy(BASE)
    base["model"].update(model or {})
    base["train"].update(train or {})
    return [validate_config(_member(base, v)) for v in VARIANTS[:k]]


@pytest.mark.parametrize(
    "model,loss",
    [
        ({"activation": "relu"}, "ce"),
        ({"activation": "quadratic", "bias": False}, "mse"),
        ({"activation": "power", "power": 3, "init_scale": 0.5}, "ce"),
        ({"activation": "tanh", "depth": 3}, "mse"),
        ({"activation": "gelu", "depth": 3, "bias": False}, "ce"),
        ({"depth": 1}, "ce"),
    ],
)
@pytest.mark.parametrize("scatter,block", [(True, None), (False, None), (True, 2)])
def test_written_out_step_equals_autograd_of_the_model(model, loss, scatter, block):
    """Logits, per-member losses and every parameter's gradient of the written-out step equal
    ``vmap`` of the model's own forward with autograd, to float tolerance (the first layer's
    gradient as a scatter-add and as a matmul with the one-hot inputs; all members at once
    and in blocks of two)."""
    cfgs = _cfgs(model, {"loss": loss, "batch_size": 8})
    ens = Ensemble(cfgs)
    assert isinstance(ens.fast, StackedOneHotMLP)
    fast = StackedOneHotMLP(ens.fast.mc, ens.params, ens._flat_views(ens.flat_grad), block)
    assert len(fast.blocks) == (0 if block is None else 2)
    for sub in [fast] + [b[2] for b in fast.blocks]:
        sub.scatter = scatter
    vmapped = ens_mod.stacked_forward(ens.members[0]._model)
    x, y, w = ens._batch()
    with torch.no_grad():
        torch.testing.assert_close(fast.forward(ens.params, ens.buffers, x),
                                   vmapped(ens.params, ens.buffers, x))  # fmt: skip
    target = ens._target(y, ens.fast.mc.n_out) if loss == "mse" else None
    ens.flat_grad.fill_(float("nan"))  # every element must be written
    with torch.no_grad():
        fast_losses = fast.loss_and_grad(x, y, w, loss, target)
    fast_grad = ens.flat_grad.clone()
    ens.flat_grad.zero_()
    logits = vmapped(ens.params, ens.buffers, x)
    losses = (per_example_loss(logits, y, loss) * w).sum(1)
    losses.sum().backward()
    torch.testing.assert_close(fast_losses, losses.detach())
    torch.testing.assert_close(fast_grad, ens.flat_grad, rtol=1e-5, atol=1e-6)


def test_only_the_plain_onehot_mlp_is_written_out():
    cfg = _cfgs(k=1)[0]
    task = ens_mod.member_task(cfg)
    assert onehot_mlp(cfg, task) is not None
    for model in ({"embed": "learned"}, {"batchnorm": True}, {"dropout": 0.1}):
        other = validate_config(_member(cfg.to_dict(), {"model": model}))
        assert onehot_mlp(other, task) is None, model


@pytest.mark.parametrize("paths", ["fast", "fast-blocks", "generic"])
def test_both_paths_give_the_separate_runs(paths, tmp_path, monkeypatch):
    """Members (differing in seed, lr, weight decay, splits, init scale: several optimiser
    groups, interleaved so that the slots reorder them) equal their separate runs with the
    written-out step and fused AdamW, and with ``vmap`` + autograd and the element-wise AdamW;
    results come back in the caller's order."""
    if paths == "generic":
        monkeypatch.setattr(ens_mod, "FAST", False)
        monkeypatch.setattr(ens_mod, "FUSED_ADAMW", False)
    if paths == "fast-blocks":  # blocks of 1 member (else 2 blocks of 2)
        monkeypatch.setattr(ens_mod, "BLOCK_ELEMENTS", 8 * 24)
    base = copy.deepcopy(BASE)
    base["train"].update(batch_size=8, checkpoint_every=4, weight_decay=0.5)
    variants = [VARIANTS[1], {}, VARIANTS[2], {"seed": 5, "train": {"lr": 0.003}}]
    cfgs = [validate_config(_member(base, v)) for v in variants]
    ens = Ensemble(cfgs)
    assert (ens.fast is not None, ens._fused) == (paths != "generic", paths != "generic")
    assert len(ens.fast.blocks if ens.fast else []) == {"fast": 2, "fast-blocks": 4}.get(paths, 0)
    assert [m.k for m in ens.members] != list(range(len(cfgs)))  # reordered into slots
    assert [m.cfg for m in ens.members] == [c.train for c in cfgs]
    ens_store, run_store = Store(tmp_path / "ens"), Store(tmp_path / "runs")
    members = execute_ensemble(cfgs, ens_store)
    for cfg, member in zip(cfgs, members):
        assert ens_store.run(member.run_id)["config"] == cfg.to_dict()
        assert_same_run(ens_store, member.run_id, run_store, execute(cfg, run_store).run_id)


def test_fused_adamw_equals_the_elementwise_formula(monkeypatch):
    """Twenty steps of members in three optimiser groups under a warmup-cosine schedule: the
    fused kernel and the element-wise AdamW give the same weights to float rounding."""
    train = {"batch_size": 8, "schedule": "warmup_cosine", "warmup_steps": 3, "steps": 20}
    cfgs = _cfgs(train=train)
    fused = Ensemble(cfgs)
    monkeypatch.setattr(ens_mod, "FUSED_ADAMW", False)
    plain = Ensemble(cfgs)
    assert fused._fused and not plain._fused and len(fused.groups) == 3
    for _ in range(20):
        fused.train_step(), plain.train_step()
    torch.testing.assert_close(fused.flat, plain.flat, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused.exp_avg_sq, plain.exp_avg_sq, rtol=1e-5, atol=1e-9)


def test_blocks_of_members_give_the_whole_ensembles_step(monkeypatch):
    """The written-out step in blocks of members (one instance per block, on views of its
    members' slices) gives the same losses, gradients, weights and evaluations in blocks
    of 3 and 2 members (half the members, the default here) as in blocks of 2, 2 and 1."""
    cfgs = _cfgs(train={"batch_size": 8}, k=5)
    whole = Ensemble(cfgs)
    assert [(a, b) for a, b, _ in whole.fast.blocks] == [(0, 3), (3, 5)]
    monkeypatch.setattr(ens_mod, "BLOCK_ELEMENTS", 2 * 8 * 24)  # blocks of 2, 2 and 1 members
    blocked = Ensemble(cfgs)
    assert [(a, b) for a, b, _ in blocked.fast.blocks] == [(0, 2), (2, 4), (4, 5)]
    for _ in range(6):
        torch.testing.assert_close(blocked.train_step(), whole.train_step())
        torch.testing.assert_close(blocked.flat_grad, whole.flat_grad)
    torch.testing.assert_close(blocked.flat, whole.flat)
    for a, b in zip(blocked.evaluate(), whole.evaluate(), strict=True):
        assert a == pytest.approx(b)
