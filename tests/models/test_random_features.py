"""The random-features model: fixed random features, only the readout trained, from zero."""

from __future__ import annotations

import pytest
import torch

from learnscope.errors import UserError
from learnscope.models import build_model, capture, hook_names, model_config
from learnscope.models.random_features import RandomFeatures, RandomFeaturesConfig


def test_only_the_readout_is_a_parameter_and_starts_at_zero():
    net = RandomFeatures(RandomFeaturesConfig(n_inputs=5, n_out=2, width=7, embed="none"))
    assert [n for n, _ in net.named_parameters()] == ["out.weight"]
    assert net.out.weight.shape == (2, 7)
    assert float(net.out.weight.detach().abs().sum()) == 0.0
    x = torch.randn(4, 5)
    assert torch.equal(net(x), torch.zeros(4, 2))
    assert "layers.0.weight" in net.state_dict()  # the features travel with checkpoints


def test_features_are_relu_of_a_fixed_gaussian_projection():
    torch.manual_seed(0)
    net = RandomFeatures(RandomFeaturesConfig(n_inputs=4, n_out=1, width=3000, embed="none"))
    w = net.layers[0].weight
    assert w.shape == (3000, 4)
    assert abs(float(w.var()) - 1 / 4) < 0.02  # entries N(0, 1 / d_in)
    x = torch.randn(6, 4)
    with capture(net, ["layers.0.hook_post"]) as acts:
        net(x)
    phi = acts["layers.0.hook_post"]
    assert torch.allclose(phi, torch.relu(x @ w.T) / 3000**0.5)
    assert {"hook_embed", "layers.0.hook_pre", "layers.0.hook_post", "hook_logits"} <= set(
        hook_names(net)
    )


def test_sized_from_the_teacher_task_and_bad_fields_are_user_errors():
    from learnscope.tasks import make_task

    dims = make_task("teacher", d=6, n_train=10, n_test=5).model_dims()
    net = build_model("random_features", {"width": 12}, dims)
    assert net(torch.randn(3, 6)).shape == (3, 1)
    assert model_config("random_features", {"width": 12}, dims).n_params() == 12 + 12 * 6
    with pytest.raises(UserError, match="width must be >= 1"):
        model_config("random_features", {"width": 0}, dims)
    with pytest.raises(UserError, match="model.depth"):
        model_config("random_features", {"depth": 2}, dims)


def test_token_inputs_are_one_hot():
    net = RandomFeatures(RandomFeaturesConfig(n_inputs=2, vocab=5, n_out=5, width=8))
    assert net(torch.tensor([[1, 2], [3, 4]])).shape == (2, 5)
    with pytest.raises(ValueError, match="embed"):
        net(torch.randn(2, 2))
