"""A Universal Transformer (Dehghani et al. 2019): one causal block applied again and again,
with adaptive computation time (Graves 2016) and, optionally, per-step weights from a
hyper-network (Hyper-UT, Abnar et al. 2023, "Adaptivity and modularity for efficient
generalization over task complexity").

``tokens: (b, t)`` -> ``logits: (b, t, vocab_size)`` as the GPT (``learnscope.models.gpt``),
whose pre-LayerNorm :class:`~learnscope.models.gpt.Block` is the shared block. Step ``n``
(``n = 0 .. max_steps - 1``) computes ``s_{n+1} = block_n(s_n + e_n)``, ``e_n`` a learned step
embedding, ``s_0`` the token (+ position) embedding.

**Adaptive computation time** (``act: true``; the Universal Transformer's ACT): each position
halts on its own. Before step ``n`` it gets the halting probability ``p_n = sigmoid(w . s_n +
b)``; while the running sum of ``p`` stays at or below ``1 - halt_eps`` the position continues
and step ``n``'s output gets weight ``p_n``; at the step where the sum would pass ``1 -
halt_eps`` (or at the last step) the position halts and the output gets the remainder ``R = 1 -
sum of the earlier p``. The block's output is ``y = sum_n w_n s_{n+1}`` (weights summing to 1 per
position), ``N`` the number of steps a position took, and the ponder cost ``ponder_cost * mean
over positions of (N + R)`` is added to the training loss (``aux_loss``). A halted position's
state keeps being computed (batched) but no longer reaches its output. Every step reads only
the position's own state and causal attention, so the model stays causal.

``act: false``: the block is applied ``max_steps`` times (a fixed-depth UT).

**Hyper-UT** (``hyper: true``): the block's weights at step ``n`` are a mixture of a bank of
``n_experts`` blocks, ``theta_n = sum_k c_{n,k} theta_k`` with ``c_n = softmax(H e_n)``, ``H`` a
linear hyper-network reading the step embedding: each step runs its own function while the
parameters are shared across depth (the issue's specification: weights from the step
embedding; the paper's own selection rule is unconfirmed, see the facts sheet).

Activation sites: ``hook_embed`` (b, t, d), ``block.*`` (the shared block's sites, as the
GPT's ``blocks.{i}.*``; a capture keeps the last step's call), ``hook_steps`` (b, t) the steps
``N`` each position took (``max_steps`` without ACT), ``ln_final.hook_normalized``,
``hook_logits``. After each forward pass ``ponder_steps: (b, t)`` holds ``N`` as a tensor
(the sequence objective reports its mean at the answer positions as ``{split}/steps``).

Incremental decoding (eval mode): ``forward(tokens, cache)`` with a :class:`UTCache` (from
``new_cache``) reads ``tokens`` as the positions after those cached, as the GPT's KV cache.

>>> net = UT(UTConfig(vocab_size=7, block_size=5, d_model=8, n_head=2, max_steps=3)).eval()
>>> net(torch.tensor([[1, 2, 3]])).shape, net.ponder_steps.shape
(torch.Size([1, 3, 7]), torch.Size([1, 3]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call, stack_module_state

from learnscope.models.gpt import (
    Block,
    FinalNorm,
    GPTConfig,
    KVCache,
    add_position_table,
    with_positions,
)
from learnscope.models.hooks import HookPoint


@dataclass
class UTConfig:
    vocab_size: int = 16  # from the task
    block_size: int = 64  # longest sequence, from the task
    n_head: int = 4
    d_model: int = 128
    d_mlp: int | None = None  # None: 4 * d_model
    dropout: float = 0.0
    pos: Literal["learned", "sinusoidal", "rope", "none"] = "learned"
    bias: bool = True
    init_std: float = 0.02
    max_steps: int = 6  # most applications of the shared block
    act: bool = True  # adaptive computation time
    ponder_cost: float = 0.01  # tau: weight of the ponder cost (N + R) in the loss
    halt_eps: float = 0.01  # a position halts once its halting probabilities pass 1 - eps
    hyper: bool = False  # per-step weights mixed from a bank by a hyper-network
    n_experts: int = 4  # blocks in the hyper-network's bank

    def __post_init__(self) -> None:
        if not 1 <= self.max_steps <= 1000:
            raise ValueError(f"max_steps must be in 1..1000 (got {self.max_steps})")
        if not 0 <= self.ponder_cost <= 1e3:
            raise ValueError(f"ponder_cost must be in [0, 1000] (got {self.ponder_cost})")
        if not 0 < self.halt_eps < 1:
            raise ValueError(f"halt_eps must be in (0, 1) (got {self.halt_eps})")
        if not 1 <= self.n_experts <= 64:
            raise ValueError(f"n_experts must be in 1..64 (got {self.n_experts})")
        self.block = GPTConfig(  # validates the sizes the block shares with the GPT
            vocab_size=self.vocab_size,
            block_size=self.block_size,
            n_layer=self.max_steps,
            n_head=self.n_head,
            d_model=self.d_model,
            d_mlp=self.d_mlp,
            dropout=self.dropout,
            pos=self.pos,
            bias=self.bias,
            init_std=self.init_std,
        )
        self.d_mlp = self.block.d_mlp

    def n_params(self) -> int:
        """Weights (biases and norms aside), from the sizes alone."""
        d, d_mlp = self.d_model, self.d_mlp or 4 * self.d_model
        block = (4 * d * d + 2 * d * d_mlp) * (self.n_experts if self.hyper else 1)
        return (2 * self.vocab_size + self.block_size + self.max_steps) * d + block

    def activation_floats(self) -> int:
        """Floats one sequence's forward pass keeps for the backward pass, roughly: a GPT
        block's worth per step."""
        t, d, d_mlp = self.block_size, self.d_model, self.d_mlp or 4 * self.d_model
        per_step = t * (8 * d + 2 * d_mlp) + 2 * self.n_head * t * t
        return self.max_steps * per_step + 2 * t * self.vocab_size


class UTCache:
    """Keys, values and states of positions ``0 .. len - 1`` at every step, for incremental
    decoding.

    Step ``n`` has its own :class:`~learnscope.models.gpt.KVCache` (one layer), whose ``len``
    counts the positions that went through step ``n``, and ``inputs[n]``, the states ``s_n``
    of the positions so far. A call's positions attend, at step ``n``, to every earlier
    position's step-``n`` keys, whether that position halted before step ``n`` or not (its
    state keeps being computed, as in the uncached pass, where only its output ignores it).
    When an earlier call stopped before step ``n`` (all its positions had halted), its
    positions are taken through step ``n`` first, from their stored ``s_n``. So the logits equal
    the uncached ones, up to float rounding.

    >>> net = UT(UTConfig(vocab_size=5, block_size=6, d_model=8, n_head=2, max_steps=3)).eval()
    >>> x, cache = torch.tensor([[1, 2, 3, 4]]), net.new_cache(6)
    >>> step = torch.cat([net(x[:, :3], cache), net(x[:, 3:], cache)], dim=1)
    >>> cache.len, torch.allclose(step, net(x), atol=1e-6)
    (4, True)
    """

    def __init__(self, size: int, max_steps: int) -> None:
        self.size, self.len = size, 0
        self.steps = [KVCache(size) for _ in range(max_steps)]
        self.inputs: list[torch.Tensor | None] = [None] * max_steps

    def store(self, n: int, start: int, x: torch.Tensor) -> None:
        """Keep ``x: (b, t, d)``, the states ``s_n`` of positions ``start .. start + t - 1``."""
        if n >= len(self.inputs):
            return
        if self.inputs[n] is None:
            self.inputs[n] = x.new_empty(x.shape[0], self.size, x.shape[2])
        self.inputs[n][:, start : start + x.shape[1]] = x


class UT(nn.Module):
    def __init__(self, cfg: UTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Embedding(cfg.vocab_size, d)
        add_position_table(self, cfg.pos, cfg.block_size, d)
        self.step_embed = nn.Embedding(cfg.max_steps, d)
        self.hook_embed = HookPoint()
        self.drop = nn.Dropout(cfg.dropout)
        self.block = Block(cfg.block)
        if cfg.hyper:  # the bank: n_experts blocks' parameters stacked on a leading axis
            bank = [Block(cfg.block) for _ in range(cfg.n_experts)]
            for expert in bank:
                _init(expert, cfg.init_std, cfg.max_steps)
            params, _ = stack_module_state(bank)
            self.bank = nn.ParameterDict({k.replace(".", "__"): v for k, v in params.items()})
            self.hyper_net = nn.Linear(d, cfg.n_experts)
            self.block.requires_grad_(False)  # a skeleton: its weights are replaced per step
        if cfg.act:
            self.halt = nn.Linear(d, 1)
        self.hook_steps = HookPoint()
        self.ln_final = FinalNorm(d, cfg.bias)
        self.unembed = nn.Linear(d, cfg.vocab_size, bias=cfg.bias)
        self.hook_logits = HookPoint()
        for m in (self.embed, self.step_embed, self.unembed, *self._pos()):
            nn.init.normal_(m.weight, std=cfg.init_std)
        _init(self.block, cfg.init_std, cfg.max_steps)
        if cfg.act:  # start by continuing: p = sigmoid(-1) ~ 0.27, so about 3-4 steps
            nn.init.zeros_(self.halt.weight)
            nn.init.constant_(self.halt.bias, -1.0)
        self.aux_loss: torch.Tensor | None = None
        self.ponder_steps: torch.Tensor | None = None

    def _pos(self) -> list[nn.Module]:
        return [self.pos_embed] if self.cfg.pos == "learned" else []

    def new_cache(self, size: int) -> UTCache:
        """An empty cache for ``size`` positions (greedy and sampled decoding use it)."""
        return UTCache(size, self.cfg.max_steps)

    def _step(self, x: torch.Tensor, n: int, cache: KVCache | None = None) -> torch.Tensor:
        """Step ``n``: the shared block (or step ``n``'s mixture of the bank) on ``x + e_n``."""
        x = x + self.step_embed.weight[n]
        if not self.cfg.hyper:
            return self.block(x, cache)
        c = self.hyper_net(self.step_embed.weight[n]).softmax(-1)  # (n_experts,)
        mixed = {k.replace("__", "."): torch.tensordot(c, v, dims=1) for k, v in self.bank.items()}
        return functional_call(self.block, mixed, (x, cache))

    def _cached_step(self, x: torch.Tensor, n: int, cache: UTCache) -> torch.Tensor:
        """Step ``n`` of the positions ``cache.len ..`` after taking every earlier position
        through it (see :class:`UTCache`)."""
        kv, start = cache.steps[n], cache.len
        if kv.len < start:  # an earlier call stopped before step n: its positions first
            behind = self._step(cache.inputs[n][:, kv.len : start], n, kv)
            cache.store(n + 1, kv.len, behind)
            kv.len = start
        cache.store(n, start, x)
        y = self._step(x, n, kv)
        cache.store(n + 1, start, y)
        kv.len += x.shape[1]
        return y

    def forward(self, tokens: torch.Tensor, cache: UTCache | None = None) -> torch.Tensor:
        """tokens: (b, t) int64, t <= block_size -> logits (b, t, vocab_size). With a
        ``cache`` (eval mode only), ``tokens`` are positions ``cache.len ..`` of the rows whose
        earlier positions the cache holds (see :class:`UTCache`)."""
        b, t = tokens.shape
        start = 0 if cache is None else cache.len
        if start + t > self.cfg.block_size:
            raise ValueError(f"sequence length {start + t} > block_size {self.cfg.block_size}")
        if cache is not None and self.training:
            raise ValueError("a KV cache needs eval mode (dropout)")
        if cache is not None and start + t > cache.size:
            raise ValueError(f"KV cache of {cache.size} positions cannot hold {start + t}")
        x = with_positions(self, self.cfg.pos, self.embed(tokens), start)
        x = self.drop(self.hook_embed(x))
        step = self._step if cache is None else partial(self._cached_step, cache=cache)
        if self.cfg.act:
            y, steps, remainder = self._adaptive(x, step)
            self.aux_loss = self.cfg.ponder_cost * (steps + remainder).mean()
        else:
            for n in range(self.cfg.max_steps):
                x = step(x, n)
            y, steps = x, torch.full((b, t), float(self.cfg.max_steps), device=x.device)
            self.aux_loss = None
        if cache is not None:
            cache.len += t
        self.ponder_steps = self.hook_steps(steps.detach())
        return self.hook_logits(self.unembed(self.ln_final(y)))

    def _adaptive(self, x: torch.Tensor, step):
        """ACT over the steps (``step(x, n)`` computes step ``n``, :meth:`_step` or the cached
        one): the weighted output ``(b, t, d)``, the steps ``N`` and the remainders ``R``
        ``(b, t)`` (see the module docstring)."""
        threshold, last = 1.0 - self.cfg.halt_eps, self.cfg.max_steps - 1
        total = x.new_zeros(x.shape[:2])  # sum of the halting probabilities used so far
        running = torch.ones_like(total)  # 1 while a position has not halted
        steps, remainder, y = torch.zeros_like(total), torch.zeros_like(total), torch.zeros_like(x)
        for n in range(self.cfg.max_steps):
            p = torch.sigmoid(self.halt(x)).squeeze(-1)  # (b, t)
            halts = running * (((total + p) > threshold).float() if n < last else 1.0)
            going = running - halts
            weight = going * p + halts * (1.0 - total)  # the remainder when halting
            remainder = remainder + halts * (1.0 - total)
            total = total + going * p + halts * (1.0 - total)
            steps = steps + running
            x = step(x, n)
            y = y + weight.unsqueeze(-1) * x
            running = going
            if not bool(running.any()):
                break
        return y, steps, remainder


def _init(block: nn.Module, std: float, depth: int) -> None:
    """The GPT's initialisation: N(0, std^2) weights, zero biases, output projections scaled
    by 1/sqrt(2 * depth)."""
    with torch.no_grad():
        for name, m in block.named_modules():
            if isinstance(m, nn.Linear):
                resid = name.endswith(("attn.out", "mlp.proj"))
                nn.init.normal_(m.weight, std=std / math.sqrt(2 * depth) if resid else std)
                if m.bias is not None:
                    m.bias.zero_()
