from __future__ import annotations

import pytest
import torch

from learnscope.errors import UserError
from learnscope.models import build_model, capture, hook_names
from learnscope.models.gpt import GPT, GPTConfig, KVCache, SigmaReparamLinear, rope

DIMS = {"vocab_size": 13, "block_size": 10}


def tiny(**kw) -> GPT:
    torch.manual_seed(0)
    return build_model("gpt", {"n_layer": 2, "d_model": 32, "n_head": 4, **kw}, DIMS)


def test_hooks_have_the_documented_shapes():
    net = tiny(d_mlp=48)
    x = torch.randint(0, 13, (3, 7))
    with capture(net, "*") as acts:
        logits = net(x)
    shapes = {k: tuple(v.shape) for k, v in acts.items()}
    assert shapes == {
        "hook_embed": (3, 7, 32),
        **{f"blocks.{i}.hook_resid_pre": (3, 7, 32) for i in range(2)},
        **{f"blocks.{i}.attn.hook_{s}": (3, 4, 7, 8) for i in range(2) for s in "qkvz"},
        **{f"blocks.{i}.attn.hook_pattern": (3, 4, 7, 7) for i in range(2)},
        **{f"blocks.{i}.hook_attn_out": (3, 7, 32) for i in range(2)},
        **{f"blocks.{i}.hook_resid_mid": (3, 7, 32) for i in range(2)},
        **{f"blocks.{i}.mlp.hook_post": (3, 7, 48) for i in range(2)},
        **{f"blocks.{i}.hook_mlp_out": (3, 7, 32) for i in range(2)},
        **{f"blocks.{i}.hook_resid_post": (3, 7, 32) for i in range(2)},
        "ln_final.hook_normalized": (3, 7, 32),
        "hook_logits": (3, 7, 13),
    }
    assert hook_names(net)[0] == "hook_embed" and logits.shape == (3, 7, 13)
    pattern = acts["blocks.0.attn.hook_pattern"]
    assert torch.allclose(pattern.sum(-1), torch.ones(3, 4, 7))
    assert (pattern.triu(1) == 0).all()  # causal


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"pos": "rope"},
        {"pos": "sinusoidal", "attn_identity": True},
        {"sigma_reparam": True},
        {"causal": False},
    ],
)
def test_sdpa_path_equals_explicit_softmax_path(kw):
    net = tiny(**kw).eval()
    if kw.get("attn_identity"):  # make the identity terms matter
        for block in net.blocks:
            block.attn.alpha.data.normal_()
            block.attn.beta.data.normal_()
    x = torch.randint(0, 13, (4, 10))
    fast = net(x)
    with capture(net, "blocks.*.attn.hook_pattern"):
        slow = net(x)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_causal_future_tokens_do_not_change_past_logits():
    net = tiny(pos="rope").eval()
    x = torch.randint(0, 13, (2, 8))
    y = x.clone()
    y[:, 5:] = (y[:, 5:] + 1) % 13
    torch.testing.assert_close(net(x)[:, :5], net(y)[:, :5])


def test_bidirectional_every_position_sees_every_token():
    net = tiny(causal=False).eval()
    x = torch.randint(0, 13, (2, 8))
    y = x.clone()
    y[:, 7] = (y[:, 7] + 1) % 13
    assert not torch.allclose(net(x)[:, 0], net(y)[:, 0])  # the last token reaches position 0
    with capture(net, "blocks.0.attn.hook_pattern") as acts:
        net(x)
    above = torch.ones(8, 8, dtype=torch.bool).triu(1)
    assert bool((acts["blocks.0.attn.hook_pattern"][..., above] > 0).all())  # no causal zeros
    with pytest.raises(ValueError, match="causal"):
        net(x, KVCache(8))


def test_attn_identity_adds_alpha_to_scores_and_beta_times_x_to_output():
    """With W_Q = W_K = W_V = 0 the scores are alpha x_i . x_j / sqrt(dh): check by hand."""
    cfg = GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, d_model=4, bias=False)
    cfg.attn_identity = True
    net = GPT(cfg).eval()
    attn = net.blocks[0].attn
    with torch.no_grad():
        attn.qkv.weight.zero_()
        attn.alpha.fill_(2.0)
        attn.beta.fill_(0.5)
    x = torch.randn(1, 4, 4)
    scores = 2.0 * x[0] @ x[0].T / 2.0
    a = scores.masked_fill(torch.ones(4, 4).triu(1).bool(), float("-inf")).softmax(-1)
    torch.testing.assert_close(attn(x)[0], 0.5 * a @ x[0])


def test_sigma_reparam_top_singular_value_is_gamma():
    torch.manual_seed(0)
    layer = SigmaReparamLinear(12, 7)
    with torch.no_grad():
        layer.weight.normal_()
        layer.u.normal_()  # forget the SVD start: power iteration must find it
        layer.gamma.fill_(-0.7)
    for _ in range(200):
        layer.power_step()
    top = torch.linalg.matrix_norm(layer.effective_weight().detach(), ord=2)
    assert top.item() == pytest.approx(0.7, rel=1e-4)


def test_sigma_reparam_starts_as_the_plain_model_and_has_no_grad_through_u_v():
    torch.manual_seed(0)
    layer = SigmaReparamLinear(6, 5)
    torch.nn.init.normal_(layer.weight)
    layer.init_sigma()
    torch.testing.assert_close(layer.effective_weight(), layer.weight)
    assert not layer.u.requires_grad and not layer.v.requires_grad
    x = torch.randn(3, 6)
    layer(x).sum().backward()
    assert layer.gamma.grad is not None and layer.weight.grad is not None
    net = tiny(sigma_reparam=True)
    assert all(
        isinstance(m, SigmaReparamLinear)
        for n, m in net.named_modules()
        if isinstance(m, torch.nn.Linear)
    )


def test_rope_keeps_norms_and_makes_scores_relative():
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    qs, ks = q.expand(1, 1, 6, 8), k.expand(1, 1, 6, 8)
    rq, rk = rope(qs), rope(ks)
    torch.testing.assert_close(rq.norm(dim=-1), qs.norm(dim=-1))
    s = rq[0, 0] @ rk[0, 0].T  # depends on i - j only
    torch.testing.assert_close(s[3, 1], s[5, 3])


def test_bad_model_config_is_a_user_error():
    with pytest.raises(UserError, match="model: d_model .30. must be divisible by n_head"):
        build_model("gpt", {"d_model": 30, "n_head": 4}, DIMS)
    with pytest.raises(UserError, match="model: n_layer must be >= 1"):
        build_model("gpt", {"n_layer": 0}, DIMS)
    with pytest.raises(UserError, match="model.pos"):
        build_model("gpt", {"pos": "alibi"}, DIMS)
    with pytest.raises(UserError, match="model.block_size"):
        build_model("gpt", {"block_size": 3}, DIMS)


def test_transformerlens_sites_fit_together():
    """The TransformerLens sites of a block agree with each other: resid_mid = resid_pre +
    attn_out, resid_post = resid_mid + mlp_out, z = pattern @ v per head, attn_out = the
    output projection of z, and q, k, v are the heads of the qkv projection of ln_1."""
    from learnscope.models import build_model, capture

    torch.manual_seed(0)
    net = build_model(
        "gpt", {"n_layer": 2, "d_model": 16, "n_head": 2}, {"vocab_size": 11, "block_size": 7}
    )
    net.eval()
    tokens = torch.randint(0, 11, (3, 7))
    with torch.no_grad():
        plain = net(tokens)
        with capture(net, "blocks.*") as acts:
            hooked = net(tokens)
    torch.testing.assert_close(hooked, plain)  # observing changes nothing
    a = {k.removeprefix("blocks.1."): v for k, v in acts.items() if k.startswith("blocks.1.")}
    torch.testing.assert_close(a["hook_resid_mid"], a["hook_resid_pre"] + a["hook_attn_out"])
    torch.testing.assert_close(a["hook_resid_post"], a["hook_resid_mid"] + a["hook_mlp_out"])
    torch.testing.assert_close(a["attn.hook_z"], a["attn.hook_pattern"] @ a["attn.hook_v"])
    block = net.blocks[1]
    z = a["attn.hook_z"].transpose(1, 2).reshape(3, 7, 16)
    torch.testing.assert_close(a["hook_attn_out"], block.attn.out(z))
    q, k, v = block.attn.qkv(block.ln_1(a["hook_resid_pre"])).split(16, dim=2)
    torch.testing.assert_close(a["attn.hook_q"], q.view(3, 7, 2, 8).transpose(1, 2))
    torch.testing.assert_close(a["attn.hook_k"], k.view(3, 7, 2, 8).transpose(1, 2))
    assert a["attn.hook_q"].shape == (3, 2, 7, 8) and a["attn.hook_pattern"].shape == (3, 2, 7, 7)


@pytest.mark.parametrize("kw", [{}, {"pos": "rope", "attn_identity": True}])
def test_double_backward_takes_the_explicit_path_which_agrees_with_sdpa(kw):
    from learnscope.models import double_backward

    net = tiny(**kw).eval()
    x = torch.randint(0, 13, (4, 10))
    fast = net(x)
    with double_backward(net):
        assert all(b.attn.explicit for b in net.blocks)
        slow = net(x)
    assert not any(b.attn.explicit for b in net.blocks)  # restored
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_hessian_vector_products_need_the_explicit_attention_path():
    """Double backward through the fused CPU attention kernel fails (the sharpness probe's
    crash on any GPT); through the explicit softmax path it works."""
    from learnscope.models import double_backward

    net = tiny().eval()
    x = torch.randint(0, 13, (2, 6))
    params = list(net.parameters())

    def hvp_norm() -> float:
        loss = net(x).logsumexp(-1).mean()
        grads = torch.autograd.grad(loss, params, create_graph=True)
        hv = torch.autograd.grad(grads, params, grad_outputs=[torch.ones_like(p) for p in params])
        return float(sum(h.norm() for h in hv))

    if torch.device("cpu") == next(net.parameters()).device:
        with pytest.raises(RuntimeError, match="not implemented"):
            hvp_norm()
    with double_backward(net):
        assert hvp_norm() > 0
