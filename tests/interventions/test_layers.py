from __future__ import annotations

import math

import pytest
import torch

from learnscope.interventions.layers import most_similar_block, remove_blocks, residual_stream
from learnscope.models.gpt import GPT, GPTConfig


def gpt(n_layer: int = 4) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=7, block_size=8, n_layer=n_layer, n_head=2, d_model=16)).eval()


def silence(block) -> None:
    """A block whose sublayers add zero: the identity on the residual stream."""
    with torch.no_grad():
        for lin in (block.attn.out, block.mlp.proj):
            lin.weight.zero_()
            lin.bias.zero_()


def test_most_similar_block_closed_form():
    # x^l at angle theta_l: d(x^l, x^{l+n}) = |theta_{l+n} - theta_l| / pi
    angles = [0.0, 0.3, 0.35, 1.2, 1.25]
    xs = [torch.tensor([[math.cos(a), math.sin(a)]]) for a in angles]
    start, dist, dists = most_similar_block(xs, 1)
    assert start == 1 and dist == pytest.approx(0.05 / math.pi)
    assert dists == pytest.approx([abs(b - a) / math.pi for a, b in zip(angles, angles[1:])])
    start, dist, _ = most_similar_block(xs, 2)
    assert start == 0 and dist == pytest.approx(0.35 / math.pi)
    with pytest.raises(ValueError, match="n must be in 1..4"):
        most_similar_block(xs, 5)


def test_an_identity_block_is_found_and_removing_it_changes_nothing():
    net = gpt(4)
    silence(net.blocks[2])
    tokens = torch.randint(0, 7, (5, 8), generator=torch.Generator().manual_seed(1))
    stream = residual_stream(net, tokens, torch.full((5,), 7))
    assert len(stream) == 5 and stream[0].shape == (5, 16)
    start, dist, dists = most_similar_block(stream, 1)
    assert start == 2 and dist == pytest.approx(0.0, abs=1e-6)
    assert min(d for i, d in enumerate(dists) if i != 2) > 0.01
    pruned = remove_blocks(net, 2, 1)
    assert len(pruned.blocks) == 3 and pruned.cfg.n_layer == 3 and net.cfg.n_layer == 4
    assert len(net.blocks) == 4  # the original is left alone
    torch.testing.assert_close(pruned(tokens), net(tokens), atol=1e-5, rtol=1e-5)


def test_remove_blocks_keeps_the_others_in_order():
    net = gpt(5)
    pruned = remove_blocks(net, 1, 3)
    kept = [net.blocks[0], net.blocks[4]]
    for a, b in zip(pruned.blocks, kept):
        assert torch.equal(a.mlp.fc.weight, b.mlp.fc.weight)
    tokens = torch.randint(0, 7, (2, 8), generator=torch.Generator().manual_seed(2))
    x = net.embed(tokens) + net.pos_embed.weight[:8]
    for block in kept:
        x = block(x)
    torch.testing.assert_close(pruned(tokens), net.unembed(net.ln_final(x)))
    for bad in ((4, 2), (-1, 1), (0, 5), (0, 0)):
        with pytest.raises(ValueError):
            remove_blocks(net, *bad)
