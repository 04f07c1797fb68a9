"""AutoInit (He, Doshi & Gromov 2022): every adjacent APJN tuned to 1, measured afterwards
with the exact APJN; for ReLU without biases that is sigma_w^2 * (fraction active) = 1."""

from __future__ import annotations

import math

import pytest
import torch

from learnscope.interventions.autoinit import adjacent_apjn, autoinit
from learnscope.models.hooks import capture
from learnscope.models.mlp import MLP, MLPConfig
from learnscope.probes.jacobian import partial_jacobian_norm


def mlp(**kw) -> MLP:
    torch.manual_seed(0)
    cfg = {"n_inputs": 2, "vocab": 7, "n_out": 7, "width": 32, "depth": 8, **kw}
    return MLP(MLPConfig(**cfg))


def exact_adjacent_apjn(net: MLP, x: torch.Tensor) -> list[float]:
    """``J^{l,l+1}`` between the pre-activations, exactly (``partial_jacobian_norm``)."""
    net = net.eval()
    with capture(net, "layers.*.hook_pre") as acts:
        net(x)
    layers = list(net.layers)
    out = []
    for i, layer in enumerate(layers):
        nxt = layers[i + 1].linear if i + 1 < len(layers) else net.out

        def f(h, layer=layer, nxt=nxt):
            return nxt(layer.drop(layer.act(layer.norm(h))))

        out.append(partial_jacobian_norm(f, acts[f"layers.{i}.hook_pre"], 4096))
    return out


@pytest.mark.parametrize(
    "kw",
    [
        {"activation": "relu", "sigma_w": 0.6},  # ordered: J ~ 0.18 per layer
        {"activation": "relu", "sigma_w": 3.0},  # chaotic: J ~ 4.5 per layer
        {"activation": "tanh", "sigma_w": 0.5, "sigma_b": 0.2},
        {"activation": "gelu"},  # PyTorch's default init
    ],
)
def test_autoinit_brings_every_adjacent_apjn_to_one(kw):
    net = mlp(**kw)
    x = torch.randint(0, 7, (32, 2))
    before = exact_adjacent_apjn(net, x)
    result = autoinit(net, x, tol=0.03)
    after = exact_adjacent_apjn(result.model, x)
    assert result.converged and result.steps >= 1
    assert max(abs(math.log(j)) for j in before) > 0.5
    assert max(abs(math.log(j)) for j in after) < 0.1, after
    assert result.apjn == pytest.approx(after, rel=0.1)  # its own estimate agrees
    assert exact_adjacent_apjn(net, x) == before  # the model given is left alone


def test_autoinit_finds_he_init_for_relu():
    """ReLU without biases: J^{l,l+1} = sigma_w^2 * (fraction of active units), so the tuned
    scales take sigma_w^2 = 1 to about 2 in every hidden layer after the first."""
    net = mlp(activation="relu", sigma_w=1.0, width=64)
    result = autoinit(net, torch.randint(0, 7, (64, 2)))
    sigma_w2 = [s * s for s in result.scales[1:-1]]  # sigma_w was 1
    assert all(1.6 <= s <= 2.5 for s in sigma_w2), sigma_w2
    assert sum(sigma_w2) / len(sigma_w2) == pytest.approx(2.0, abs=0.2)


def test_adjacent_apjn_of_a_linear_layer_is_frobenius_over_n_and_differentiable():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(16, 10, dtype=torch.float64, requires_grad=True)
    w = torch.randn(30, 10, generator=g, dtype=torch.float64, requires_grad=True)
    est = adjacent_apjn([h, h @ w.T], n_proj=64, generator=g)
    want = (w**2).sum() / 30
    assert float(est[0].detach()) == pytest.approx(float(want.detach()), rel=0.05)
    (grad,) = torch.autograd.grad(est[0], w)  # through the vector-Jacobian products
    assert torch.allclose(grad, 2 * w / 30 * float((est[0] / want).detach()), rtol=0.3, atol=0.05)


def test_autoinit_refuses_what_it_cannot_tune():
    x = torch.randint(0, 7, (8, 2))
    with pytest.raises(ValueError, match="BatchNorm"):
        autoinit(mlp(batchnorm=True), x)
    with pytest.raises(ValueError, match="MLP"):
        autoinit(torch.nn.Linear(2, 2), x)


def test_autoinit_option_is_validated_and_reported(tmp_path):
    from learnscope.config import validate_config
    from learnscope.errors import UserError
    from learnscope.runner import build, execute
    from learnscope.store import Store

    cfg = {
        "task": {"name": "modular", "op": "add", "p": 7, "train_fraction": 0.8},
        "model": {"kind": "mlp", "width": 32, "depth": 8, "sigma_w": 0.6},
        "train": {"steps": 2, "eval_every": 2, "autoinit": True},
        "probes": [],
    }
    assert validate_config(cfg).train.autoinit.steps == 100  # true: the defaults
    with pytest.raises(UserError, match="train.autoinit.steps"):
        validate_config({**cfg, "train": {"autoinit": {"steps": 0}}})
    with pytest.raises(UserError, match="train.autoinit: needs an MLP"):
        build(
            validate_config(
                {**cfg, "task": {"name": "modular_seq", "p": 7}, "model": {"kind": "gpt"}}
            )
        )
    s = execute(cfg, Store(tmp_path)).summary
    assert s["autoinit_converged"] and s["autoinit_steps"] >= 1
    assert s["autoinit_max_log_apjn"] <= 0.05
