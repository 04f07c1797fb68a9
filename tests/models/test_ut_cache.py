"""The UT's cache: cached logits and greedy decoding against the plain forward pass, with
adaptive depth where earlier positions halted before later ones need their keys."""

from __future__ import annotations

import pytest
import torch

from learnscope.models import build_model
from learnscope.models.ut import UT, UTCache
from learnscope.tasks import make_task
from learnscope.train.objectives import SequenceObjective, greedy_decode

CONFIGS = {
    "act": {},
    "act-rope": {"pos": "rope"},
    "act-none": {"pos": "none"},
    "fixed": {"act": False},
    "hyper-act": {"hyper": True, "pos": "rope"},
}


def ut(dims: dict[str, int], kw: dict, seed: int = 0) -> UT:
    torch.manual_seed(seed)
    net = build_model("ut", {"d_model": 16, "n_head": 2, "max_steps": 5, **kw}, dims)
    if net.cfg.act:  # halting that differs by position: from 1 step to all 5
        torch.nn.init.normal_(net.halt.weight, std=40.0)
        torch.nn.init.constant_(net.halt.bias, -1.0)
    return net.eval().double()


@pytest.mark.parametrize("kw", CONFIGS.values(), ids=CONFIGS.keys())
def test_cached_logits_equal_uncached_logits_step_by_step(kw):
    """The whole batch, then each row alone: in a row alone a one-token call whose position
    halts early stops before the steps the next call needs (the catch-up path)."""
    net = ut({"vocab_size": 11, "block_size": 16}, kw)
    x = torch.randint(0, 11, (3, 14), generator=torch.Generator().manual_seed(1))
    full = net(x)
    full_steps = net.ponder_steps
    behind = []
    for rows in [slice(0, 3), slice(0, 1), slice(1, 2), slice(2, 3)]:
        cache, parts, steps = net.new_cache(16), [], []
        for lo, hi in [(0, 5), (5, 8), *((i, i + 1) for i in range(8, 14))]:  # prefill, 3, 1s
            behind.append(any(kv.len < cache.len for kv in cache.steps))  # a call stopped early
            parts.append(net(x[rows, lo:hi], cache))
            steps.append(net.ponder_steps)
        assert cache.len == 14
        torch.testing.assert_close(torch.cat(parts, 1), full[rows], rtol=1e-10, atol=1e-10)
        assert torch.equal(torch.cat(steps, 1), full_steps[rows])  # each halts as before
    if net.cfg.act:  # positions halt after different steps, and the catch-up path ran
        assert len(full_steps.unique()) > 1 and any(behind)


def test_decoding_pvr_with_the_cache_gives_the_uncached_tokens():
    """A UT + ACT trained a few steps on PVR (chain of thought, so several tokens are decoded
    per row), in float64: the greedy tokens with and without the cache are identical."""
    task = make_task("pvr", n=6, max_hops=3, test_hops=[4], format="cot", n_train=64, n_test=32)
    net = ut(task.model_dims(), {"pos": "rope"}).train()
    obj, opt = SequenceObjective(), torch.optim.AdamW(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        batch = task.sample(32, g)
        loss = obj.loss(obj.forward(net, batch), batch) + net.aux_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    for name in ("test", "test_hops_4"):
        split = task.split(name)
        tokens, prompt_len = split["tokens"], split["prompt_len"]
        plain = greedy_decode(net, tokens, prompt_len, task.eos_id, cache=False)
        cached = greedy_decode(net, tokens, prompt_len, task.eos_id)
        assert torch.equal(plain, cached), name
        assert (cached[:, int(prompt_len.max()) :] != 0).any()  # something was generated


def test_cache_refuses_training_mode_and_overflow():
    net = ut({"vocab_size": 5, "block_size": 8}, {})
    x = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="eval mode"):
        net.train()(x, UTCache(8, 5))
    net.eval()
    with pytest.raises(ValueError, match="cannot hold 6"):
        cache = UTCache(4, 5)
        net(x, cache)
        net(x, cache)
    with pytest.raises(ValueError, match="block_size 8"):
        cache = net.new_cache(16)
        net(x, cache)
        net(torch.zeros(1, 6, dtype=torch.long), cache)
