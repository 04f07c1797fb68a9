"""``ntk_distance`` (``learnscope.probes.ntk``): zero for a model linear in its weights, and
the same as finite differences on a tiny MLP; the linearised twin trained beside a run is
gradient descent on the linear model."""

from __future__ import annotations

import torch
from torch import nn

from learnscope.probes.ntk import (
    empirical_ntk,
    linearisation_gap,
    linearised,
    linearised_grad,
    model_function,
    ntk_change,
)
from learnscope.runner import execute
from learnscope.store import Store


def tiny_mlp() -> tuple[nn.Module, dict[str, torch.Tensor], torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    params = {k: v.detach().clone() for k, v in net.named_parameters()}
    return net, params, x


def flat(params: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in params.values()])


def unflat(vec: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, i = {}, 0
    for k, v in like.items():
        out[k], i = vec[i : i + v.numel()].view_as(v), i + v.numel()
    return out


def fd_jacobian(f, params, eps=1e-6) -> torch.Tensor:
    """Central differences, one parameter at a time: ``(n_outputs, P)``."""
    theta = flat(params)
    cols = []
    for i in range(len(theta)):
        e = torch.zeros_like(theta)
        e[i] = eps
        plus, minus = f(unflat(theta + e, params)), f(unflat(theta - e, params))
        cols.append((plus - minus).reshape(-1) / (2 * eps))
    return torch.stack(cols, dim=1)


def test_ntk_and_linearisation_match_finite_differences():
    net, theta_0, x = tiny_mlp()
    f = model_function(net, lambda m, b: m(b["x"]), {"x": x})
    J = fd_jacobian(f, theta_0)
    assert torch.allclose(empirical_ntk(f, theta_0), J @ J.T, atol=1e-8)
    torch.manual_seed(1)
    theta = {k: v + 0.1 * torch.randn_like(v) for k, v in theta_0.items()}
    expected = f(theta_0).reshape(-1) + J @ (flat(theta) - flat(theta_0))
    assert torch.allclose(linearised(f, theta_0, theta).reshape(-1), expected, atol=1e-8)
    # the gradient of a loss of f_lin is J(theta_0)^T dL/df
    target = torch.randn(4, 2, dtype=torch.float64)
    grad = linearised_grad(f, theta_0, theta, lambda out: (out - target).pow(2).sum())
    residual = 2 * (expected - target.reshape(-1))
    assert torch.allclose(flat(grad), J.T @ residual, atol=1e-7)
    # and the kernel moves once the weights do (tanh is not linear)
    assert ntk_change(empirical_ntk(f, theta), empirical_ntk(f, theta_0)) > 1e-3


def test_zero_for_a_linear_model():
    torch.manual_seed(0)
    net = nn.Linear(3, 2).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    f = model_function(net, lambda m, b: m(b["x"]), {"x": x})
    theta_0 = {k: v.detach().clone() for k, v in net.named_parameters()}
    theta = {k: v + torch.randn_like(v) for k, v in theta_0.items()}
    assert ntk_change(empirical_ntk(f, theta), empirical_ntk(f, theta_0)) == 0.0
    assert linearisation_gap(f(theta), linearised(f, theta_0, theta)) < 1e-12


def ntk_run(model: dict, tmp_path, steps=20) -> dict:
    cfg = {
        "name": "ntk",
        "task": {"name": "modular", "p": 7, "train_fraction": 0.6},
        "model": {"kind": "mlp", **model},
        "train": {"optimizer": "sgd", "lr": 0.1, "loss": "mse", "steps": steps, "eval_every": 10},
        "probes": [{"probe": "ntk_distance", "every": 10, "rows": 8}],
    }
    store = Store(tmp_path / "runs")
    result = execute(cfg, store)
    return store.metric_table(result.run_id).iloc[-1].to_dict()


def test_a_linear_model_is_its_own_linearisation(tmp_path):
    """depth 1: logits = W onehot(x) + b, linear in the weights: the twin trained beside the
    run is the run, and the kernel never moves."""
    last = ntk_run({"depth": 1}, tmp_path)
    assert last["ntk_distance/kernel"] == 0.0
    assert last["ntk_distance/gap"] < 1e-6
    assert last["ntk_distance/weights"] > 1e-3  # it did train


def test_the_twin_is_gradient_descent_on_the_linear_model(tmp_path):
    """A tiny ReLU MLP: the gap the probe reports equals the one of a linear model trained by
    hand (full batch SGD on f_lin with the Jacobian at theta_0)."""
    from learnscope.models import build_model
    from learnscope.tasks import make_task

    model = {"width": 16, "depth": 2, "activation": "tanh"}
    last = ntk_run(model, tmp_path, steps=20)
    task = make_task("modular", p=7, train_fraction=0.6)
    torch.manual_seed(0)
    net = build_model("mlp", model, task.model_dims())
    train = task.split("train").tensors
    theta_0 = {k: v.detach().clone() for k, v in net.named_parameters()}
    f_train = model_function(net, lambda m, b: m(b["x"]), train)
    target = nn.functional.one_hot(train["y"], 7).float()
    theta_lin = dict(theta_0)
    theta = {k: v.detach().clone().requires_grad_() for k, v in theta_0.items()}
    opt = torch.optim.SGD(theta.values(), lr=0.1)
    for _ in range(20):
        grad = linearised_grad(
            f_train, theta_0, theta_lin, lambda out: (out - target).pow(2).sum(-1).mean()
        )
        theta_lin = {k: theta_lin[k] - 0.1 * grad[k] for k in theta_lin}
        opt.zero_grad()
        (f_train(theta) - target).pow(2).sum(-1).mean().backward()
        opt.step()
    from learnscope.probes.plan import draw_probe_batch

    probe = {k: v[:8] for k, v in draw_probe_batch(task, "train", 256, 0).items()}
    f = model_function(net, lambda m, b: m(b["x"]), probe)
    with torch.no_grad():
        theta_t = {k: v.detach() for k, v in theta.items()}
        gap = linearisation_gap(f(theta_t), linearised(f, theta_0, theta_lin))
    assert gap > 1e-4  # tanh: the network leaves its linearisation
    assert abs(last["ntk_distance/gap"] - gap) < 1e-3 * gap + 1e-6
