"""The KV cache: cached logits and greedy decoding against the plain forward pass."""

from __future__ import annotations

import copy
import functools

import pytest
import torch

from learnscope.models import build_model, capture
from learnscope.models.gpt import GPT, GPTConfig, KVCache
from learnscope.tasks import make_task
from learnscope.train.objectives import SequenceObjective, greedy_decode

CONFIGS = {
    "learned": {"pos": "learned"},
    "sinusoidal": {"pos": "sinusoidal"},
    "rope": {"pos": "rope"},
    "none": {"pos": "none"},
    "sigma_reparam": {"sigma_reparam": True},
    "attn_identity": {"attn_identity": True, "pos": "rope"},
    "tied_dropout_nobias": {"tied_embeddings": True, "dropout": 0.2, "bias": False},
}
TASKS = {
    "mul_pause": {"name": "multiplication", "n_digits": 2, "m_digits": 2, "format": "pause"},
    "add_hints": {"name": "addition", "index_hints": True, "hi": 4, "test_lengths": [6]},
}


def model(dims: dict[str, int], kw: dict, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    net = GPT(GPTConfig(**dims, n_layer=2, n_head=4, d_model=32, **kw))
    if kw.get("attn_identity"):  # make the alpha I and beta I terms matter
        for block in net.blocks:
            block.attn.alpha.data.normal_()
            block.attn.beta.data.normal_()
    return net.eval()


@functools.cache
def task(name: str):
    params = dict(TASKS[name])
    if params["name"] == "multiplication":
        params["n_pause"] = 2
    return make_task(**params, n_train=64, n_test=24)


def rows(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Test rows of every test split: prompts of several lengths in one batch."""
    t = task(name)
    splits = [t.split(s) for s in t.eval_splits if s.startswith("test")]
    return torch.cat([s["tokens"] for s in splits]), torch.cat([s["prompt_len"] for s in splits])


@functools.cache
def trained(name: str, config: str, steps: int = 20) -> GPT:
    """A few AdamW steps, so that the logits are no longer those of the initialisation."""
    t, obj = task(name), SequenceObjective()
    net = model(t.model_dims(), CONFIGS[config]).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(steps):
        batch = t.sample(32, g)
        loss = obj.loss(obj.forward(net, batch), batch)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.8 * first  # it did learn something
    return net.eval()


@pytest.mark.parametrize("hooked", [False, True], ids=["sdpa", "hooked"])
@pytest.mark.parametrize("kw", CONFIGS.values(), ids=CONFIGS.keys())
def test_cached_logits_equal_uncached_logits_step_by_step(kw, hooked):
    net = model({"vocab_size": 11, "block_size": 16}, kw)
    x = torch.randint(0, 11, (3, 14), generator=torch.Generator().manual_seed(1))
    full = net(x)
    cache, parts, patterns = KVCache(16), [], []
    with capture(net, "blocks.0.attn.hook_pattern" if hooked else [], False) as acts:
        for lo, hi in [(0, 5), (5, 8), *((i, i + 1) for i in range(8, 14))]:  # prefill, 3, 1s
            parts.append(net(x[:, lo:hi], cache))
            patterns.append(acts.get("blocks.0.attn.hook_pattern"))
    assert cache.len == 14
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-5)
    if hooked:  # (b, h, new queries, all keys so far), causal within the chunk
        assert patterns[1].shape == (3, 4, 3, 8) and patterns[-1].shape == (3, 4, 1, 14)
        assert (patterns[1][..., 0, 6:] == 0).all() and (patterns[1][..., 0, :6] > 0).all()


def first_differences(a: torch.Tensor, b: torch.Tensor) -> list[tuple[int, int]]:
    return [(int(i), int((a[i] != b[i]).nonzero()[0])) for i in (a != b).any(1).nonzero()[:, 0]]


# every configuration on both tasks, trained, in float64; float32 and the untrained models on
# two configurations (the suite's time goes where a difference between the paths would show)
CASES = [(c, t, True, torch.float64) for c in CONFIGS for t in TASKS]
CASES += [(c, t, False, torch.float64) for c in ("learned", "rope") for t in TASKS]
CASES += [(c, t, True, torch.float32) for c in ("learned", "sigma_reparam") for t in TASKS]


@pytest.mark.parametrize(
    "config, task_name, train, dtype",
    CASES,
    ids=[f"{c}-{t}-{'trained' if tr else 'init'}-{str(d)[6:]}" for c, t, tr, d in CASES],
)
def test_cached_and_uncached_greedy_decoding_give_identical_tokens(config, task_name, train, dtype):
    """float64: identical tokens. float32: identical except where the uncached logits tie to
    within 1e-4 at the first position a row differs (rounding may flip such an argmax)."""
    t = task(task_name)
    net = trained(task_name, config) if train else model(t.model_dims(), CONFIGS[config])
    net = copy.deepcopy(net).to(dtype)
    tokens, prompt_len = rows(task_name)
    assert len(prompt_len.unique()) > 1 or task_name == "mul_pause"
    plain = greedy_decode(net, tokens, prompt_len, t.eos_id, cache=False)
    cached = greedy_decode(net, tokens, prompt_len, t.eos_id)
    assert cached.shape == plain.shape and torch.equal(cached[:, :2], tokens[:, :2])
    diffs = first_differences(plain, cached)
    if dtype == torch.float64:
        assert diffs == []
    logits = net(plain[:, :-1])
    for i, j in diffs:
        top = logits[i, j - 1].topk(2).values
        assert top[0] - top[1] < 1e-4, (i, j)
    assert len(diffs) <= 1


@pytest.mark.parametrize("kind", ["gpt", "ut"])
def test_decoding_uses_the_models_cache_only_in_eval_mode(monkeypatch, kind):
    """Greedy decoding takes the model's ``new_cache`` (the GPT's KV cache, the UT's
    per-step cache): the prompt once, then one token per call; in training mode none."""
    t = task("mul_pause")
    if kind == "gpt":
        net = model(t.model_dims(), {})
    else:
        torch.manual_seed(0)
        net = build_model("ut", {"d_model": 16, "n_head": 2, "max_steps": 3}, t.model_dims())
        net = net.eval()
    tokens, prompt_len = rows("mul_pause")
    calls = []
    cls = type(net)
    forward = cls.forward
    monkeypatch.setattr(
        cls,
        "forward",
        lambda self, x, cache=None: calls.append(x.shape[1]) or forward(self, x, cache),
    )
    greedy_decode(net, tokens, prompt_len)
    p, T = int(prompt_len.min()), tokens.shape[1]
    assert calls == [p] + [1] * (T - p - 1)  # the prompt once, then one token per step
    calls.clear()
    greedy_decode(net.train(), tokens, prompt_len)
    assert calls == list(range(p, T))  # training mode: the whole prefix every step


def test_cache_refuses_training_mode_and_overflow():
    net = model({"vocab_size": 5, "block_size": 8}, {})
    x = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="eval mode"):
        net.train()(x, KVCache(8))
    net.eval()
    with pytest.raises(ValueError, match="cannot hold 6"):
        cache = KVCache(4)
        net(x, cache)
        net(x, cache)
    with pytest.raises(ValueError, match="block_size 8"):
        cache = KVCache(16)
        net(x, cache)
        net(torch.zeros(1, 6, dtype=torch.long), cache)
