"""Width parametrisations (``learnscope.models.param``): the per-layer tables of Tensor
Programs V (Table 3) for SGD and Adam, the base width where they equal the standard
parametrisation, and μP trained side by side with the ``mup`` package's."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from learnscope.config import TrainConfig
from learnscope.models import GPT, MLP, GPTConfig, MLPConfig
from learnscope.models.param import attention_scale
from learnscope.train.optim import make_optimizer


def mlp(width: int, param: str = "standard", **kw) -> MLP:
    torch.manual_seed(0)
    base = kw.pop("base_width", 64 if param != "standard" else None)
    cfg = MLPConfig(n_inputs=2, vocab=7, n_out=7, width=width, depth=3, **kw)
    return MLP(MLPConfig(**{**cfg.__dict__, "param": param, "base_width": base}))


# TP5 Table 3, relative to the base width (m = 256 / 64 = 4): per layer type the factor on the
# learning rate, for SGD and for Adam.
MUP_LR = {
    "sgd": {
        "layers.0.linear.weight": 4.0,  # input weights: eta fan_out
        "layers.0.linear.bias": 4.0,  # biases: eta fan_out
        "layers.1.linear.weight": 1.0,  # hidden: eta
        "layers.1.linear.bias": 4.0,
        "out.weight": 0.25,  # output: eta / fan_in
        "out.bias": 1.0,  # finite (n_out classes)
    },
    "adam": {
        "layers.0.linear.weight": 1.0,  # input weights: eta
        "layers.0.linear.bias": 1.0,
        "layers.1.linear.weight": 0.25,  # hidden: eta / fan_in
        "layers.1.linear.bias": 1.0,
        "out.weight": 0.25,  # output: eta / fan_in
        "out.bias": 1.0,
    },
}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_mup_lr_multipliers_are_the_table(optimizer):
    assert mlp(256, "mup").lr_multipliers(optimizer) == MUP_LR[optimizer]


def test_mup_init_is_the_table():
    """Same draws, then TP5 Table 3's variances: output 1/fan_in^2 (std x 1/sqrt(m) over
    PyTorch's 1/sqrt(fan_in)), hidden 1/fan_in (unchanged), biases O(1) (x sqrt(m))."""
    sp, mu = mlp(256).state_dict(), mlp(256, "mup").state_dict()
    assert torch.equal(mu["layers.0.linear.weight"], sp["layers.0.linear.weight"])
    assert torch.equal(mu["layers.1.linear.weight"], sp["layers.1.linear.weight"])
    assert torch.allclose(mu["out.weight"], sp["out.weight"] / 2)
    assert torch.allclose(mu["layers.1.linear.bias"], sp["layers.1.linear.bias"] * 2)
    assert torch.equal(mu["layers.0.linear.bias"], sp["layers.0.linear.bias"])  # fan_in finite


def test_ntk_tables():
    net = mlp(256, "ntk")
    sgd, adam = net.lr_multipliers("sgd"), net.lr_multipliers("adam")
    assert sgd["layers.1.linear.weight"] == sgd["out.weight"] == 0.25
    assert sgd["layers.0.linear.weight"] == 1.0
    assert adam["layers.1.linear.weight"] == 4**-1.5 and adam["out.weight"] == 0.25
    assert adam["layers.0.linear.weight"] == 0.5
    assert torch.allclose(net.out.weight, mlp(256).out.weight)  # 1/fan_in, as PyTorch's


def test_gpt_mup_tables():
    torch.manual_seed(0)
    cfg = dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, d_model=64)
    sp = GPT(GPTConfig(**cfg))
    torch.manual_seed(0)
    mu = GPT(GPTConfig(**cfg, param="mup", base_width=16))
    # constant init std 0.02: hidden x 1/sqrt(m), readout x 1/m, embeddings unchanged
    assert torch.allclose(mu.blocks[0].mlp.fc.weight, sp.blocks[0].mlp.fc.weight / 2)
    assert torch.allclose(mu.unembed.weight, sp.unembed.weight / 4)
    assert torch.equal(mu.embed.weight, sp.embed.weight)
    lr = mu.lr_multipliers("adam")
    assert lr["blocks.0.attn.qkv.weight"] == lr["unembed.weight"] == 0.25
    assert lr["embed.weight"] == lr["blocks.0.ln_1.weight"] == 1.0
    assert attention_scale("mup", 32, 8) == 8**0.5 / 32  # 1/d attention, equal at the base


def test_base_width_is_the_standard_parametrisation():
    sp, mu = mlp(64), mlp(64, "mup", base_width=64)
    for (name, a), b in zip(sp.state_dict().items(), mu.state_dict().values()):
        assert torch.equal(a, b), name
    assert set(mu.lr_multipliers("adam").values()) == {1.0}
    x = torch.randint(0, 7, (5, 2))
    gpt = dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, d_model=32)
    torch.manual_seed(1)
    a = GPT(GPTConfig(**gpt))
    torch.manual_seed(1)
    b = GPT(GPTConfig(**gpt, param="mup", base_width=32))
    assert torch.allclose(a(x), b(x))


def test_standard_keeps_one_parameter_group():
    opt = make_optimizer(mlp(128), TrainConfig(optimizer="adam", lr=0.1))
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["lr"] == 0.1
    opt = make_optimizer(mlp(256, "mup"), TrainConfig(optimizer="adam", lr=0.1))
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs == pytest.approx([0.025, 0.1])


def test_output_scale_centres_and_scales_the_lr():
    net = mlp(64, output_scale=10.0)
    assert torch.all(net(torch.randint(0, 7, (4, 2))) == 0)  # alpha (f(theta_0) - f(theta_0))
    assert list(set(net.lr_multipliers("sgd").values())) == pytest.approx([0.01])
    assert list(set(net.lr_multipliers("adam").values())) == pytest.approx([0.1])
    plain = mlp(64, output_scale=10.0, output_scale_lr=False)
    assert set(plain.lr_multipliers("sgd").values()) == {1.0}


def test_mup_needs_a_base_width():
    with pytest.raises(ValueError, match="base_width"):
        MLPConfig(param="mup")


# -- against the mup package ------------------------------------------------------------------


class MupMLP(nn.Module):
    """The same MLP written the ``mup`` way: a ``MuReadout`` (readout multiplier 1/m)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        from mup import MuReadout

        self.l0, self.l1 = nn.Linear(14, width), nn.Linear(width, width)
        self.out = MuReadout(width, 7)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.l1(torch.relu(self.l0(h)))))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_same_training_as_the_mup_package(optimizer):
    """Our μP (no multipliers, TP5 Table 3) and ``mup``'s (MuReadout, MuSGD / MuAdam) train the
    same function: readout weights W_mup = m W_ours, the rest copied."""
    mup = pytest.importorskip("mup")
    torch.set_default_dtype(torch.float64)
    try:
        width, m = 256, 4.0
        ours = mlp(width, "mup")
        theirs = MupMLP(width)
        mup.set_base_shapes(theirs, MupMLP(64), rescale_params=False)
        with torch.no_grad():
            for a, b in ((theirs.l0, ours.layers[0].linear), (theirs.l1, ours.layers[1].linear)):
                a.weight.copy_(b.weight)
                a.bias.copy_(b.bias)
            theirs.out.weight.copy_(ours.out.weight * m)
            theirs.out.bias.copy_(ours.out.bias)
        ours = ours.double()
        x = torch.randint(0, 7, (32, 2))
        y = torch.randint(0, 7, (32,))
        h = nn.functional.one_hot(x, 7).flatten(1).double()
        lr = 0.5 if optimizer == "sgd" else 0.01
        opt_ours = make_optimizer(ours, TrainConfig(optimizer=optimizer, lr=lr, eps=1e-12))
        kind = mup.MuSGD if optimizer == "sgd" else mup.MuAdam
        extra = {} if optimizer == "sgd" else {"betas": (0.9, 0.98), "eps": 1e-12}
        opt_theirs = kind(theirs.parameters(), lr=lr, **extra)
        for _ in range(4):
            for net, opt, inp in ((ours, opt_ours, x), (theirs, opt_theirs, h)):
                opt.zero_grad()
                nn.functional.cross_entropy(net(inp), y).backward()
                opt.step()
        assert torch.allclose(ours(x), theirs(h), rtol=1e-6, atol=1e-8)
        assert not torch.allclose(ours(x), copy.deepcopy(mlp(width, "mup")).double()(x))
    finally:
        torch.set_default_dtype(torch.float32)
