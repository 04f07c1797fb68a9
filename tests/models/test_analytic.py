from __future__ import annotations

import math

import pytest
import torch

from learnscope.models import capture
from learnscope.models.analytic import (
    analytic_mlp,
    analytic_summary,
    default_width,
    discrete_log_table,
    primitive_root,
    table_accuracy,
)
from learnscope.models.mlp import MLP, MLPConfig
from learnscope.probes.spectral import frequency_profile


@pytest.mark.parametrize("p", [3, 5, 7, 11, 13, 23, 97])
def test_primitive_root_and_discrete_log(p):
    g = primitive_root(p)
    assert sorted(pow(g, t, p) for t in range(p - 1)) == list(range(1, p))  # g has order p-1
    log = discrete_log_table(p)
    assert log.shape == (p,) and log[0] == -1
    assert sorted(log[1:].tolist()) == list(range(p - 1))
    assert all(pow(g, int(log[n]), p) == n for n in range(1, p))


def test_invalid_arguments():
    for bad in (1, 9, 91):
        with pytest.raises(ValueError, match="prime"):
            primitive_root(bad)
    with pytest.raises(ValueError, match="odd prime"):
        analytic_mlp("add", 15)
    with pytest.raises(ValueError, match="odd prime"):
        analytic_mlp("add", 2)
    with pytest.raises(ValueError, match="op must be"):
        analytic_mlp("sub", 7)
    with pytest.raises(ValueError, match="terms must be"):
        analytic_mlp("add", 7, terms=1)
    with pytest.raises(ValueError, match="width must be >= 2"):
        analytic_mlp("mul", 7, width=1)


def test_same_parameters_and_hooks_as_the_grokking_mlp():
    net = analytic_mlp("add", 11, width=20)
    trained_shape = MLP(
        MLPConfig(
            n_inputs=2, vocab=11, n_out=11, width=20, depth=2, activation="quadratic", bias=False
        )
    )
    assert {k: v.shape for k, v in net.state_dict().items()} == {
        k: v.shape for k, v in trained_shape.state_dict().items()
    }
    assert net.layers[0].linear.weight.shape == (20, 22) and net.out.weight.shape == (11, 20)
    with capture(net, "layers.0.hook_pre") as acts:
        net(torch.tensor([[1, 2], [3, 4]]))
    assert acts["layers.0.hook_pre"].shape == (2, 20)


TOL = dict(rtol=1e-5, atol=1e-5)  # the network holds float32 weights


def _phases(u: torch.Tensor, sigma: torch.Tensor, m: int, pos: torch.Tensor) -> torch.Tensor:
    """phi with u[k, n] = cos(2 pi sigma_k pos_n / m + phi_k), read off the Fourier coefficient."""
    angle = 2 * math.pi * sigma[:, None] * pos[None, :] / m
    coef = (u * torch.exp(-1j * angle)).sum(1)
    return torch.angle(coef)


@pytest.mark.parametrize("terms", [2, 3])
def test_add_forward_is_the_closed_form(terms):
    """U_j[k, n] = cos(theta_k n + phi_kj), W[q, k] = cos(-theta_k q - sum_j phi_kj) and
    logits_q = sum_k W[q, k] (sum_j U_j[k, n_j])^S, with sigma(k) = 1 + k mod (p-1)/2."""
    p, width = 7, 10
    net = analytic_mlp("add", p, width, terms=terms, seed=3).double()
    u = net.layers[0].linear.weight.detach().view(width, terms, p)
    sigma = 1 + torch.arange(width) % ((p - 1) // 2)
    theta = 2 * math.pi * sigma.double() / p
    n = torch.arange(p).double()
    phi = torch.stack([_phases(u[:, j], sigma, p, n) for j in range(terms)], 1)
    torch.testing.assert_close(u, torch.cos(theta[:, None, None] * n + phi[:, :, None]), **TOL)
    w = torch.cos(-theta[None, :] * n[:, None] - phi.sum(1))
    torch.testing.assert_close(net.out.weight.detach(), w, **TOL)
    x = torch.randint(0, p, (20, terms), generator=torch.Generator().manual_seed(0))
    h = torch.cos(theta[None, :, None] * x[:, None, :] + phi[None]).sum(2)  # (20, width)
    torch.testing.assert_close(net(x), (h**terms) @ w.T, **TOL)


def test_mul_forward_is_the_closed_form_on_logarithms():
    p, width = 11, 5  # frequencies 1..4 (not 5, where cos(pi t + phi) hides phi) and the 0 neuron
    net = analytic_mlp("mul", p, width, seed=1).double()
    u = net.layers[0].linear.weight.detach().view(width, 2, p)
    log = discrete_log_table(p)
    sigma = 1 + torch.arange(width - 1) % ((p - 1) // 2)
    theta = 2 * math.pi * sigma.double() / (p - 1)
    t = log[1:].double()
    phi = torch.stack([_phases(u[:-1, j, 1:], sigma, p - 1, t) for j in range(2)], 1)
    torch.testing.assert_close(
        u[:-1, :, 1:], torch.cos(theta[:, None, None] * t + phi[..., None]), **TOL
    )
    assert (u[:-1, :, 0] == 0).all()  # residue 0 feeds only the zero neuron
    assert (u[-1, :, 0] == 1).all() and (u[-1, :, 1:] == 0).all()
    out = net.out.weight.detach()
    torch.testing.assert_close(
        out[1:, :-1], torch.cos(-theta[None, :] * t[:, None] - phi.sum(1)), **TOL
    )
    assert (out[0, :-1] == 0).all() and (out[1:, -1] == 0).all() and out[0, -1] == (width - 1) + 1


@pytest.mark.parametrize("p", [3, 7, 23, 97])
def test_add_is_exact_at_the_default_width(p):
    for seed in range(3):
        net = analytic_mlp("add", p, seed=seed)
        assert net.cfg.width == default_width("add", p) >= 512
        assert net.cfg.width % ((p - 1) // 2) == 0  # every frequency has as many neurons
        assert table_accuracy(net, "add", p) == 1.0


@pytest.mark.parametrize("p", [3, 7, 23, 97])
def test_mul_is_exact_at_the_default_width(p):
    for seed in range(3):
        net = analytic_mlp("mul", p, seed=seed)
        assert table_accuracy(net, "mul", p) == 1.0
        assert table_accuracy(net, "mul", p, nonzero=True) == 1.0
    with torch.no_grad():
        net.out.weight[0, -1] = 0.0  # without the zero neuron, products with a 0 factor fail
    assert table_accuracy(net, "mul", p, nonzero=True) == 1.0
    assert table_accuracy(net, "mul", p) <= 1 - (2 * p - 2) / p**2


@pytest.mark.parametrize(("op", "p"), [("add", 5), ("add", 7), ("mul", 7)])
def test_three_terms_are_exact_with_a_cubic_activation(op, p):
    net = analytic_mlp(op, p, terms=3)
    assert net.cfg.activation == "power" and net.cfg.power == 3
    assert table_accuracy(net, op, p, terms=3) == 1.0
    squared = MLP(
        MLPConfig(
            n_inputs=3,
            vocab=p,
            n_out=p,
            width=net.cfg.width,
            depth=2,
            activation="quadratic",
            bias=False,
        )
    )
    squared.load_state_dict(net.state_dict())  # the same weights under x^2 are near chance
    assert table_accuracy(squared, op, p, terms=3, nonzero=op == "mul") < 0.4


@pytest.mark.parametrize("op", ["add", "mul"])
def test_accuracy_degrades_gracefully_with_width(op):
    """Mean accuracy over seeds grows with width, well above chance (1/23) at 11 neurons."""
    p = 23
    widths = [11, 22, 44, 88, 176]
    mean = []
    for width in widths:
        accs = [
            table_accuracy(analytic_mlp(op, p, width + (op == "mul"), seed=s), op, p)
            for s in range(8)
        ]
        mean.append(sum(accs) / len(accs))
    assert all(b >= a - 0.01 for a, b in zip(mean, mean[1:])), mean
    assert mean[0] > 5 / p and mean[1] < 0.9 and mean[-1] > 0.99, mean
    assert table_accuracy(analytic_mlp(op, p), op, p) == 1.0


def test_summary():
    add = analytic_summary("add", 7)
    assert add == {
        "op": "add",
        "p": 7,
        "terms": 2,
        "width": 513,
        "seed": 0,
        "accuracy": 1.0,
    }
    mul = analytic_summary("mul", 7, width=7)
    assert mul["width"] == 7 and mul["accuracy_nonzero"] <= mul["accuracy"] <= 1.0


def test_frequency_profile_of_the_analytic_networks():
    p = 23
    ipr, freq = frequency_profile(analytic_mlp("add", p).layers[0].linear.weight, p)
    width = default_width("add", p)
    assert ipr.shape == freq.shape == (width,)
    assert (ipr > 0.999).all()
    assert torch.equal(freq, 1 + torch.arange(width) % 11)

    mul = analytic_mlp("mul", p).layers[0].linear.weight
    ipr, freq = frequency_profile(mul, p, op="mul")
    assert (ipr[:-1] > 0.999).all() and ipr[-1] == 0  # the zero neuron has no frequency
    assert set(freq[:-1].tolist()) == set(range(1, 12))
    ipr_zp, _ = frequency_profile(mul, p)  # cosines of log n are not periodic in n
    assert (ipr_zp > 0.5).float().mean() < 0.2

    torch.manual_seed(0)
    random = MLP(MLPConfig(n_inputs=2, vocab=p, n_out=p, width=200, init_std=1.0))
    ipr, _ = frequency_profile(random.layers[0].linear.weight, p)
    assert (ipr > 0.5).float().mean() < 0.05
    with pytest.raises(ValueError, match="expected weight"):
        frequency_profile(torch.zeros(4, 30), p)
