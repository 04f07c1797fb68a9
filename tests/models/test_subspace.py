"""Training in a random subspace theta_0 + P z (Li et al. 2018): the wrapper starts at the
initial network, trains only z, keeps the activation sites' names, and its projections have
unit-length columns."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learnscope.errors import UserError
from learnscope.models import capture, hook_names
from learnscope.models.mlp import MLP, MLPConfig
from learnscope.models.subspace import Subspace, fwht


def _mlp() -> MLP:
    torch.manual_seed(0)
    return MLP(MLPConfig(n_inputs=2, vocab=5, n_out=5, width=16))


@pytest.mark.parametrize("kind", ["dense", "fastfood"])
def test_starts_at_the_initial_network_and_trains_only_z(kind):
    inner = _mlp()
    x = torch.randint(0, 5, (7, 2))
    before = inner(x).detach()
    net = Subspace(inner, dim=6, kind=kind, seed=3)
    assert [n for n, _ in net.named_parameters()] == ["z"]
    assert torch.allclose(net(x), before)
    net(x).pow(2).sum().backward()
    assert net.z.grad is not None and float(net.z.grad.abs().sum()) > 0
    with torch.no_grad():
        net.z.add_(1.0)
    assert not torch.allclose(net(x), before)  # z moves theta


def test_theta_is_theta0_plus_p_z_and_dense_columns_are_unit_length():
    net = Subspace(_mlp(), dim=5, kind="dense", seed=1)
    assert torch.allclose(net.proj.norm(dim=0), torch.ones(5))
    z = torch.randn(5)
    with torch.no_grad():
        net.z.copy_(z)
    flat = torch.cat([t.reshape(-1) for t in net.theta().values()])
    assert torch.allclose(flat, net.theta0 + net.proj @ z, atol=1e-6)


def test_fastfood_is_linear_with_unit_columns_when_d_is_a_power_of_two():
    inner = nn.Sequential(nn.Linear(4, 2, bias=False))  # D = 8 = L
    net = Subspace(inner, dim=8, kind="fastfood", seed=0)
    cols = []
    for j in range(8):
        with torch.no_grad():
            net.z.zero_()
            net.z[j] = 1.0
        cols.append(net.offset().detach())
    p = torch.stack(cols, 1)  # (D, d)
    assert torch.allclose(p.norm(dim=0), torch.ones(8), atol=1e-5)
    z = torch.randn(8)
    with torch.no_grad():
        net.z.copy_(z)
    assert torch.allclose(net.offset(), p @ z, atol=1e-5)


def test_walsh_hadamard_is_orthogonal_up_to_its_size():
    h = torch.stack([fwht(e) for e in torch.eye(16)])
    assert torch.allclose(h @ h.T, 16 * torch.eye(16))
    with pytest.raises(ValueError, match="power-of-2"):
        fwht(torch.ones(6))


def test_activation_sites_keep_their_names():
    inner = _mlp()
    names = hook_names(inner)
    x = torch.randint(0, 5, (3, 2))
    with capture(inner, ["layers.0.hook_post"]) as acts:
        inner(x)
    want = acts["layers.0.hook_post"]
    net = Subspace(inner, dim=4, seed=0)
    assert hook_names(net) == names
    with capture(net, ["layers.0.hook_post"]) as acts:
        net(x)
    assert torch.allclose(acts["layers.0.hook_post"], want)


def test_bad_dimensions_are_user_errors():
    with pytest.raises(UserError, match="train.subspace.dim"):
        Subspace(_mlp(), dim=10**6)
    with pytest.raises(UserError, match="train.subspace.kind"):
        Subspace(_mlp(), dim=2, kind="sparse")


def test_a_run_config_with_a_bad_subspace_names_the_field():
    from learnscope.config import load_config

    with pytest.raises(UserError, match="subspace"):
        load_config("intrinsic-dim-linear", ["train.subspace={dim: 2, kind: sparse}"])
    with pytest.raises(UserError, match="subspace"):
        load_config("intrinsic-dim-linear", ["train.subspace={dim: 0}"])


def test_a_subspace_run_trains_through_the_runner(tmp_path):
    from learnscope.config import load_config
    from learnscope.runner import execute
    from learnscope.store import Store

    store = Store(tmp_path)
    cfg = load_config("intrinsic-dim-linear", ["train.subspace={dim: 4}"])
    result = execute(cfg, store)
    assert result.status == "finished"
    assert result.summary["test_acc"] >= 0.99  # 4 directions suffice: the loss reaches 0
    cfg = load_config("intrinsic-dim-linear", ["train.subspace={dim: 3}"])
    assert execute(cfg, store).summary["test_acc"] < 0.5  # 3 do not
