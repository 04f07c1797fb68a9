from __future__ import annotations

import pytest
import torch

from learnscope.errors import UserError
from learnscope.models import build_model, capture, eval_mode, hook_names, match_sites
from learnscope.models.mlp import MLP, MLPConfig


def test_hook_names_and_shapes():
    net = MLP(
        MLPConfig(n_inputs=2, vocab=7, n_out=7, width=16, depth=3, batchnorm=True, dropout=0.1)
    )
    assert hook_names(net) == [
        "hook_embed",
        "layers.0.hook_pre",
        "layers.0.hook_post",
        "layers.1.hook_pre",
        "layers.1.hook_post",
        "hook_logits",
    ]
    x = torch.randint(0, 7, (5, 2))
    with capture(net, "*") as acts:
        logits = net(x)
    assert acts["hook_embed"].shape == (5, 14)
    assert acts["layers.1.hook_pre"].shape == (5, 16)
    assert torch.equal(acts["hook_logits"], logits.detach())
    assert logits.shape == (5, 7)
    assert not net.layers[0].hook_post._forward_hooks  # hooks removed afterwards


def test_quadratic_no_bias_is_gromovs_network():
    net = MLP(
        MLPConfig(
            n_inputs=2,
            vocab=5,
            n_out=5,
            width=8,
            depth=2,
            activation="quadratic",
            bias=False,
            init_std=0.3,
        )
    )
    x = torch.tensor([[1, 3], [4, 0]])
    onehot = torch.cat(
        [torch.nn.functional.one_hot(x[:, 0], 5), torch.nn.functional.one_hot(x[:, 1], 5)], 1
    ).float()
    w1, w2 = net.layers[0].linear.weight, net.out.weight
    assert torch.allclose(net(x), (onehot @ w1.T) ** 2 @ w2.T)
    assert abs(w1.std().item() - 0.3) < 0.1


def test_power_activation_is_x_to_the_power():
    cfg = dict(n_inputs=3, vocab=5, n_out=5, width=8, depth=2, bias=False, init_std=0.3)
    torch.manual_seed(0)
    net = MLP(MLPConfig(**cfg, activation="power", power=3))
    x = torch.tensor([[1, 3, 2], [4, 0, 0]])
    onehot = torch.nn.functional.one_hot(x, 5).flatten(1).float()
    w1, w2 = net.layers[0].linear.weight, net.out.weight
    torch.testing.assert_close(net(x), (onehot @ w1.T) ** 3 @ w2.T)
    torch.manual_seed(0)
    quadratic = MLP(MLPConfig(**cfg, activation="quadratic"))
    torch.manual_seed(0)
    squared = MLP(MLPConfig(**cfg, activation="power"))  # power defaults to 2
    torch.testing.assert_close(squared(x), quadratic(x))
    with pytest.raises(ValueError, match="power must be >= 1"):
        MLPConfig(activation="power", power=0)


def test_learned_embedding_and_init_scale():
    torch.manual_seed(0)
    a = MLP(MLPConfig(n_inputs=3, vocab=5, n_out=4, embed="learned", d_embed=6))
    torch.manual_seed(0)
    b = MLP(MLPConfig(n_inputs=3, vocab=5, n_out=4, embed="learned", d_embed=6, init_scale=2.0))
    assert a(torch.zeros(2, 3, dtype=torch.long)).shape == (2, 4)
    assert torch.allclose(b.out.weight, 2 * a.out.weight)


def test_unknown_site_is_a_user_error():
    net = MLP(MLPConfig(width=4))
    with pytest.raises(UserError, match="no activation site matches 'blocks.*'"):
        match_sites(net, "blocks.*")


def test_build_model_fills_task_sizes_and_refuses_conflicts():
    net = build_model("mlp", {"width": 4}, {"n_inputs": 2, "vocab": 3, "n_out": 3})
    assert net.cfg.vocab == 3
    with pytest.raises(UserError, match="model.vocab"):
        build_model("mlp", {"vocab": 5}, {"n_inputs": 2, "vocab": 3, "n_out": 3})
    with pytest.raises(UserError, match="model.kind"):
        build_model("cnn", {}, {})
    with pytest.raises(UserError, match="model.activation"):
        build_model("mlp", {"activation": "swish"}, {})


@pytest.mark.parametrize(
    "params",
    [
        dict(depth=2, activation="quadratic", bias=False),
        dict(depth=2, activation="power", power=3, bias=False),
        dict(depth=3, activation="relu", bias=True),
        dict(depth=1, activation="tanh", bias=True),
        dict(depth=2, activation="gelu", embed="learned", d_embed=5),
    ],
)
def test_stacked_forward_is_each_members_forward(params):
    """K members' stacked weights through the ensemble's stacked forward (vmap of the MLP's
    own forward) give each member's own logits."""
    from torch.func import stack_module_state

    from learnscope.train.ensemble import stacked_forward

    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        members.append(MLP(MLPConfig(n_inputs=2, vocab=7, n_out=7, width=12, **params)))
    stacked, buffers = stack_module_state(members)
    x = torch.randint(0, 7, (3, 10, 2))
    out = stacked_forward(members[0])(stacked, buffers, x)
    assert out.shape == (3, 10, 7)
    for k, net in enumerate(members):
        torch.testing.assert_close(out[k], net(x[k]), rtol=1e-5, atol=1e-6)


def test_eval_mode_restores_the_mode_it_found():
    net = MLP(MLPConfig(n_inputs=2, vocab=5, n_out=5, width=8, dropout=0.5))
    with pytest.raises(RuntimeError), eval_mode(net):
        assert not net.training and not net.layers[0].drop.training
        raise RuntimeError  # restored on the way out of an error too
    assert net.training and net.layers[0].drop.training
    net.eval()
    with eval_mode(net):
        assert not net.training
    assert not net.training  # an eval-mode model stays in eval mode
