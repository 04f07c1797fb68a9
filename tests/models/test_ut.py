from __future__ import annotations

import pytest
import torch

from learnscope.errors import UserError
from learnscope.models import build_model, capture
from learnscope.models.ut import UT

DIMS = {"vocab_size": 11, "block_size": 9}


def tiny(**kw) -> UT:
    torch.manual_seed(0)
    return build_model("ut", {"d_model": 16, "n_head": 2, "max_steps": 4, **kw}, DIMS).eval()


def fixed_depth(net: UT, tokens: torch.Tensor, steps: int) -> torch.Tensor:
    """The shared block applied ``steps`` times by hand, then the read-out."""
    x = net.embed(tokens) + net.pos_embed.weight[: tokens.shape[1]]
    for n in range(steps):
        x = net._step(x, n)
    return net.unembed(net.ln_final(x))


X = torch.randint(0, 11, (3, 7), generator=torch.Generator().manual_seed(1))


def test_act_that_halts_at_once_is_one_step():
    net = tiny()
    torch.nn.init.constant_(net.halt.bias, 20.0)  # p = 1: halt before the first step ends
    out = net(X)
    assert torch.allclose(out, fixed_depth(net, X, 1), atol=1e-5)
    assert (net.ponder_steps == 1).all()
    # N + R = 1 + 1: halting at the first step leaves the whole weight as the remainder
    assert torch.allclose(net.aux_loss, torch.tensor(net.cfg.ponder_cost * 2.0), atol=1e-6)


def test_act_that_never_halts_runs_every_step():
    net = tiny()
    torch.nn.init.constant_(net.halt.bias, -20.0)  # p = 0: the last step gets weight 1
    out = net(X)
    assert torch.allclose(out, fixed_depth(net, X, 4), atol=1e-5)
    assert (net.ponder_steps == 4).all()
    # N + R = 4 + 1 (the remainder is the whole weight)
    assert torch.allclose(net.aux_loss, torch.tensor(net.cfg.ponder_cost * 5.0), atol=1e-5)


def test_act_weights_sum_to_one_and_steps_vary_by_position():
    net = tiny()
    torch.nn.init.normal_(net.halt.weight, std=2.0)
    torch.nn.init.constant_(net.halt.bias, 0.0)
    # the output is linear in the per-step states: with every state equal to 1 the weighted
    # sum is the sum of the weights
    y, steps, remainder = net._adaptive(torch.randn(3, 7, 16), lambda x, n: torch.ones_like(x))
    assert torch.allclose(y, torch.ones_like(y), atol=1e-6)
    assert ((steps >= 1) & (steps <= 4)).all() and ((remainder > 0) & (remainder <= 1)).all()


def test_without_act_the_depth_is_fixed():
    net = tiny(act=False)
    assert torch.allclose(net(X), fixed_depth(net, X, 4), atol=1e-5)
    assert net.aux_loss is None and (net.ponder_steps == 4).all()


def test_hyper_ut_with_equal_experts_is_the_shared_block():
    plain, hyper = tiny(act=False), tiny(act=False, hyper=True, n_experts=3)
    hyper.load_state_dict(plain.state_dict(), strict=False)  # embeddings, read-out, skeleton
    with torch.no_grad():
        for name, p in plain.block.named_parameters():
            hyper.bank[name.replace(".", "__")].copy_(
                p.expand_as(hyper.bank[name.replace(".", "__")])
            )
    assert torch.allclose(hyper(X), plain(X), atol=1e-5)


def test_hyper_ut_steps_use_different_weights_and_train_the_bank():
    net = tiny(hyper=True, n_experts=3).train()
    torch.nn.init.normal_(net.hyper_net.weight, std=3.0)
    c0 = net.hyper_net(net.step_embed.weight[0]).softmax(-1)
    c1 = net.hyper_net(net.step_embed.weight[1]).softmax(-1)
    assert not torch.allclose(c0, c1)
    loss = net(X).pow(2).mean() + net.aux_loss
    loss.backward()
    assert all(p.grad is not None for p in net.bank.values())
    assert net.halt.bias.grad is not None and net.hyper_net.weight.grad is not None
    assert all(p.grad is None for p in net.block.parameters())  # the skeleton is not trained


@pytest.mark.parametrize("kw", [{}, {"hyper": True}, {"act": False, "pos": "rope"}])
def test_causal(kw):
    net = tiny(**kw)
    changed = X.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 11
    assert torch.allclose(net(X)[:, :5], net(changed)[:, :5], atol=1e-5)


def test_sites():
    net = tiny()
    with capture(net, "*") as acts:
        net(X)
    assert acts["hook_steps"].shape == (3, 7)
    assert acts["block.attn.hook_pattern"].shape == (3, 2, 7, 7)
    assert acts["ln_final.hook_normalized"].shape == (3, 7, 16)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"max_steps": 0}, "max_steps"),
        ({"halt_eps": 1.0}, "halt_eps"),
        ({"n_experts": 0}, "n_experts"),
        ({"d_model": 10, "n_head": 4}, "divisible"),
        ({"ponder": 1}, "ponder"),
    ],
)
def test_bad_config_names_the_field(params, field):
    with pytest.raises(UserError, match=field):
        build_model("ut", params, DIMS)


def test_a_ut_run_records_steps_per_split_and_the_ponder_cost(tmp_path):
    from learnscope.config import load_config
    from learnscope.runner import execute
    from learnscope.store import Store

    cfg = load_config(
        "pvr-hops",
        [
            "train.steps=4",
            "train.eval_every=4",
            "train.eval_examples=8",
            "task.n_test=8",
            "model.d_model=16",
            "model.max_steps=3",
        ],
    )
    store = Store(tmp_path / "runs")
    result = execute(cfg, store)
    metrics = store.metrics(result.run_id)
    names = set(metrics["name"])
    assert {"test_hops_4/steps", "test_hops_6/steps", "train_step/aux_loss"} <= names
    steps = metrics[metrics["name"] == "test_hops_4/steps"]["value"]
    assert ((steps >= 1) & (steps <= 3)).all()


def test_the_adaptive_depth_sweep_compares_four_models():
    from learnscope.sweep import expand, load_spec

    members = expand(load_spec("pvr-adaptive-depth"))
    models = [m.config.model for m in members]
    kinds = [(m.kind, m.params.get("act"), m.params.get("hyper")) for m in models]
    assert sorted(set(kinds), key=str) == sorted(
        {("gpt", None, None), ("ut", False, None), ("ut", True, None), ("ut", True, True)}, key=str
    )
