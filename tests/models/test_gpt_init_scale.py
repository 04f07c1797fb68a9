"""``model.init_scale`` of the GPT (Omnigrok, Liu, Michaud & Tegmark 2023): every initial
parameter times ``alpha``; the default 1.0 leaves the initialisation as it was."""

from __future__ import annotations

import pytest
import torch

from learnscope.errors import UserError
from learnscope.models import build_model, model_config

DIMS = {"vocab_size": 13, "block_size": 10}


def built(seed: int = 0, **kw) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The initial parameters at ``seed`` and the RNG state right after building."""
    torch.manual_seed(seed)
    net = build_model("gpt", {"n_layer": 2, "d_model": 32, "n_head": 4, **kw}, DIMS)
    params = {n: p.detach().clone() for n, p in net.named_parameters()}
    return params, torch.get_rng_state()


def test_default_leaves_the_initialisation_unchanged():
    plain, rng_plain = built()
    one, rng_one = built(init_scale=1.0)
    assert plain.keys() == one.keys()
    assert all(torch.equal(plain[n], one[n]) for n in plain)
    assert torch.equal(rng_plain, rng_one)  # no extra random draws
    # nanoGPT's init as documented: N(0, 0.02^2) weights, unit LayerNorm gains, zero biases
    assert 0.018 < plain["embed.weight"].std().item() < 0.022
    assert torch.equal(plain["ln_final.weight"], torch.ones(32))
    assert torch.equal(plain["unembed.bias"], torch.zeros(13))


@pytest.mark.parametrize("alpha", [0.5, 2.0, 8.0])
def test_every_parameter_is_alpha_times_the_plain_one(alpha):
    plain, rng_plain = built()
    scaled, rng_scaled = built(init_scale=alpha)
    assert torch.equal(rng_plain, rng_scaled)  # the same draws, then multiplied
    for name, p in plain.items():
        assert torch.allclose(scaled[name], alpha * p, rtol=1e-6, atol=0), name
    norm = lambda ps: torch.sqrt(sum((p**2).sum() for p in ps.values()))  # noqa: E731
    assert norm(scaled).item() == pytest.approx(alpha * norm(plain).item(), rel=1e-5)


def test_scaled_model_is_a_scaled_function():
    """Closed form for one layer's worth of the map: with LayerNorm gains and all weights
    times alpha, the logits of the final LayerNorm + unembedding are alpha^2 times the plain
    ones for the same residual stream direction (biases are zero at init)."""
    torch.manual_seed(0)
    net1 = build_model("gpt", {"n_layer": 1, "d_model": 16, "n_head": 2}, DIMS)
    torch.manual_seed(0)
    net3 = build_model("gpt", {"n_layer": 1, "d_model": 16, "n_head": 2, "init_scale": 3.0}, DIMS)
    h = torch.randn(4, 16)
    out1 = net1.unembed(net1.ln_final(h))
    out3 = net3.unembed(net3.ln_final(h))
    assert torch.allclose(out3, 9.0 * out1, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("bad", [0, -1.0, 1e4])
def test_bad_init_scale_is_a_user_error(bad):
    with pytest.raises(UserError, match="init_scale"):
        model_config("gpt", {"init_scale": bad}, DIMS)
