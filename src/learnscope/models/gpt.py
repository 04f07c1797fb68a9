"""A decoder-only Transformer (GPT) for sequence tasks, after karpathy/nanoGPT ``model.py``.

``tokens: (b, t)`` -> ``logits: (b, t, vocab_size)``; position ``i`` predicts token ``i + 1``.
Pre-LayerNorm blocks, ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``, a final LayerNorm and an
unembedding ``unembed`` (its weight norm is the slingshot signal of Thilak et al. 2022).

``causal: false`` drops the causal mask: every position attends to every position (a
bidirectional encoder, as BERT, for the masked-LM objective); the KV cache is causal-only.

Positions (``pos``): ``learned`` table, ``sinusoidal`` (Vaswani et al. 2017), ``rope`` (rotary,
Su et al. 2021, applied to queries and keys) or ``none`` (the causal mask alone); or a learned
table of ``max_pos`` rows read at position ids the task gives with the tokens
(``forward(tokens, positions=...)``, the rows' ``pos_ids`` of ``task.positions``): ``coupled``
(position coupling, Cho et al. 2024: the digits of one significance in both operands and the
answer share an id) or ``abacus`` (McLeish et al. 2024: ids counted along each run of digits).
While training, each row's non-zero ids are shifted by a random offset ``k``, uniform in
``0 .. max_pos - 1 - max(ids of the row)``, so that every row of the table is trained even
though the training numbers are short (the papers' random start; Abacus draws one ``k`` per
batch, we draw one per row as position coupling does). At eval ``k = 0``. ``id_rope`` (ours,
not the papers'): no table; the ids rotate the queries and keys as RoPE rotates by the token
index (Su et al. 2021), so that an attention score depends on the id difference only (the
digits of equal significance, or one apart, score alike at every length).

``sigma_reparam`` (Zhai et al. 2023, "Stabilizing Transformer Training by Preventing Attention
Entropy Collapse"): every linear layer uses ``W_hat = (gamma / sigma(W)) W``. ``sigma(W)`` is
estimated by one power-iteration step per training forward pass on persistent buffers ``u, v``
without gradient (``v <- norm(W u)``, ``u <- norm(W^T v)``), then ``sigma = v^T W u`` with the
gradient flowing through ``W``. ``u, v`` start at the exact top singular vectors (an SVD), and
the learned scalar ``gamma`` starts at ``sigma(W_0)``, so the initial function is that of the
plain model (the paper's vision ``SNLinear``).

``attn_identity`` (Boix-Adsera et al. 2023, "When can transformers reason with abstract
symbols?"): head ``h`` gets trainable scalars ``alpha_h, beta_h`` (initialised to 0) so that its
query-key product is ``W_Q W_K^T + alpha_h I`` and its value-output product
``W_V W_O + beta_h I``: ``score_ij = (q_i . k_j + alpha_h x_i . x_j) / sqrt(d_head)`` and the
head adds ``beta_h sum_j A_ij x_j`` to the output, ``x`` the attention input. Implemented by
appending ``alpha_h x`` to the queries, ``x`` to the keys and ``x`` to the values.

Activation sites (TransformerLens names; see ``learnscope.models.hooks``)::

    hook_embed                  # (b, t, d_model) token (+ position) embedding
    blocks.{i}.hook_resid_pre   # (b, t, d_model) the block's input
    blocks.{i}.attn.hook_q      # (b, n_head, t, d_head) queries (before rotary positions)
    blocks.{i}.attn.hook_k      # (b, n_head, t, d_head) keys (before rotary positions)
    blocks.{i}.attn.hook_v      # (b, n_head, t, d_head) values
    blocks.{i}.attn.hook_pattern  # (b, n_head, q, k) attention probabilities
    blocks.{i}.attn.hook_z      # (b, n_head, t, d_head) attention-weighted values per head
    blocks.{i}.hook_attn_out    # (b, t, d_model) the attention sublayer's output
    blocks.{i}.hook_resid_mid   # (b, t, d_model) after the attention sublayer
    blocks.{i}.mlp.hook_post    # (b, t, d_mlp) after the GELU
    blocks.{i}.hook_mlp_out     # (b, t, d_model) the MLP sublayer's output
    blocks.{i}.hook_resid_post  # (b, t, d_model) after the MLP sublayer
    ln_final.hook_normalized    # (b, t, d_model)
    hook_logits                 # (b, t, vocab_size)

Attention runs through ``F.scaled_dot_product_attention``; the explicit softmax is computed
only when a forward hook is registered on ``hook_pattern``, or when the attention's flag
``explicit`` is set (``learnscope.models.hooks.double_backward``: the fused CPU kernel has no
second derivative, Hessian-vector products need one). Initialisation as nanoGPT: N(0,
``init_std``^2) weights, zero biases, residual output projections scaled by 1/sqrt(2 n_layer).
``init_scale: alpha`` then multiplies every parameter (LayerNorm gains and sigma-reparam gammas
included) by ``alpha``: Omnigrok (Liu, Michaud & Tegmark 2023) starts at a weight norm ``alpha``
times the usual one, ``||theta_0|| -> alpha ||theta_0||``; with weight decay the norm must then
shrink before the network generalises, which delays grokking. 1.0 (default) changes nothing.

Width (``learnscope.models.param``): ``param: ntk | mup`` rescales the initialisation and
learning rate of each layer relative to the model at ``d_model = base_width`` (``d_mlp`` and the
head size scale with it, ``n_head`` fixed); under μP the attention logits are ``q.k
sqrt(base_d_head) / d_head`` (1/d attention). ``output_scale: alpha``: the logits are ``alpha
(f - f_0)`` (lazy training, as in the MLP).

Incremental decoding (eval mode): ``forward(tokens, cache)`` with a :class:`KVCache` reads
``tokens`` as the positions after those already cached, attends to the cached keys and values
and stores its own; greedy decoding then costs one position per step instead of a whole prefix.
Without a cache the forward pass is the training one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

import learnscope.models.param as width
from learnscope.models.hooks import HookPoint


@dataclass
class GPTConfig:
    vocab_size: int = 16  # from the task
    block_size: int = 64  # longest sequence, from the task
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 128
    d_mlp: int | None = None  # None: 4 * d_model
    dropout: float = 0.0
    pos: Literal["learned", "sinusoidal", "rope", "none", "coupled", "abacus"] = "learned"
    max_pos: int | None = None  # coupled, abacus: rows of the position table (None: block_size)
    id_rope: bool = False  # coupled, abacus: the ids rotate queries and keys (no table)
    id_alibi: bool = False  # coupled, abacus: scores minus slope_h |id_q - id_k|
    id_window: int | None = None  # coupled, abacus: attend only where |id_q - id_k| <= window
    tied_embeddings: bool = False
    bias: bool = True
    sigma_reparam: bool = False
    attn_identity: bool = False
    init_std: float = 0.02
    init_scale: float = 1.0  # alpha: every initial parameter times alpha (Omnigrok)
    causal: bool = True  # False: a bidirectional encoder (masked LM; no KV cache)
    param: Literal["standard", "ntk", "mup"] = "standard"
    base_width: int | None = None  # the d_model where ntk / mup equal standard
    output_scale: float | None = None  # alpha: logits alpha (f - f0); None: plain f
    output_scale_lr: bool = True  # with output_scale: lr / alpha^2 (SGD) or / alpha (Adam)

    @property
    def biased_by_ids(self) -> bool:
        """Attention scores get a bias in id space (``id_alibi`` or ``id_window``)."""
        return self.id_alibi or self.id_window is not None

    def __post_init__(self) -> None:
        for field in ("vocab_size", "block_size", "n_layer", "n_head", "d_model"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1 (got {getattr(self, field)})")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_head")
        if self.pos == "rope" and (self.d_model // self.n_head) % 2:
            raise ValueError("pos 'rope' needs an even head size d_model / n_head")
        odd_head = (self.d_model // self.n_head) % 2
        if self.id_rope and (self.pos not in ("coupled", "abacus") or odd_head):
            raise ValueError("id_rope goes with pos coupled or abacus and an even head size")
        if self.biased_by_ids and self.pos not in ("coupled", "abacus"):
            raise ValueError("id_alibi and id_window go with pos coupled or abacus")
        if self.id_window is not None and not 0 <= self.id_window <= 1_000_000:
            raise ValueError(f"id_window must be in 0..1000000 (got {self.id_window})")
        if self.d_mlp is None:
            self.d_mlp = 4 * self.d_model
        if self.max_pos is None:
            self.max_pos = self.block_size
        if not 2 <= self.max_pos <= 1_000_000:
            raise ValueError(f"max_pos must be in 2..1000000 (got {self.max_pos})")
        if self.d_mlp < 1:
            raise ValueError(f"d_mlp must be >= 1 (got {self.d_mlp})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1) (got {self.dropout})")
        if self.tied_embeddings and self.sigma_reparam:
            raise ValueError("tied_embeddings and sigma_reparam cannot both be set")
        if not 0 < self.init_std <= 1e6:
            raise ValueError(f"init_std must be in (0, 1e6] (got {self.init_std})")
        if not 0 < self.init_scale <= 1e3:
            raise ValueError(f"init_scale must be in (0, 1e3] (got {self.init_scale})")
        if self.param != "standard":
            if self.base_width is None or self.base_width < self.n_head:
                raise ValueError(f"base_width (>= n_head) must be set with param {self.param!r}")
            if self.base_width % self.n_head:
                raise ValueError(f"base_width ({self.base_width}) must be divisible by n_head")
            if self.tied_embeddings or self.sigma_reparam:
                raise ValueError(f"param {self.param!r} needs untied embeddings, no sigma_reparam")
        if self.output_scale is not None and not 1e-6 <= self.output_scale <= 1e6:
            raise ValueError(
                f"output_scale must be in [1e-6, 1e6] or null (got {self.output_scale})"
            )

    def base(self) -> GPTConfig:
        """This config at ``d_model = base_width`` (``d_mlp`` in proportion), standard."""
        d_mlp = max(1, round(self.d_mlp * self.base_width / self.d_model))
        return replace(
            self, d_model=self.base_width, d_mlp=d_mlp, param="standard", output_scale=None
        )

    def n_params(self) -> int:
        """Weights (biases and norms aside), from the sizes alone: exact Python ints."""
        d, d_mlp = self.d_model, self.d_mlp or 4 * self.d_model
        block = 4 * d * d + 2 * d * d_mlp  # q, k, v, out; mlp in, out
        return (2 * self.vocab_size + self.block_size) * d + self.n_layer * block

    def activation_floats(self) -> int:
        """Floats one sequence's forward pass keeps for the backward pass (per layer: the
        residual stream, q, k, v, the MLP, the attention pattern; the logits), roughly."""
        t, d, d_mlp = self.block_size, self.d_model, self.d_mlp or 4 * self.d_model
        per_layer = t * (8 * d + 2 * d_mlp) + 2 * self.n_head * t * t
        return self.n_layer * per_layer + 2 * t * self.vocab_size


class SigmaReparamLinear(nn.Linear):
    """``y = x (gamma / sigma(W)) W^T + b`` (Zhai et al. 2023); see the module docstring."""

    def __init__(self, d_in: int, d_out: int, bias: bool = True) -> None:
        super().__init__(d_in, d_out, bias=bias)
        self.register_buffer("u", F.normalize(torch.randn(d_in), dim=0))  # right sing. vector
        self.register_buffer("v", F.normalize(torch.randn(d_out), dim=0))  # left sing. vector
        self.gamma = nn.Parameter(torch.ones(()))

    @torch.no_grad()
    def init_sigma(self) -> None:
        """Exact top singular pair by SVD; ``gamma = sigma(W)`` so that ``W_hat = W``."""
        left, s, right = torch.linalg.svd(self.weight.float(), full_matrices=False)
        self.v.copy_(left[:, 0])
        self.u.copy_(right[0])
        self.gamma.fill_(s[0].item())

    @torch.no_grad()
    def power_step(self) -> None:
        self.v.copy_(F.normalize(self.weight @ self.u, dim=0))
        self.u.copy_(F.normalize(self.weight.T @ self.v, dim=0))

    def sigma(self) -> torch.Tensor:
        return self.v.clone() @ self.weight @ self.u.clone()  # grad through W only

    def effective_weight(self) -> torch.Tensor:
        return self.weight * (self.gamma / self.sigma())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.power_step()
        return F.linear(x, self.effective_weight(), self.bias)


def linear(cfg: GPTConfig, d_in: int, d_out: int) -> nn.Linear:
    return (SigmaReparamLinear if cfg.sigma_reparam else nn.Linear)(d_in, d_out, bias=cfg.bias)


def rope(
    x: torch.Tensor, base: float = 10000.0, start: int = 0, ids: torch.Tensor | None = None
) -> torch.Tensor:
    """Rotate pairs ``(x_{2i}, x_{2i+1})`` of ``x: (b, h, t, d)`` by ``pos * base^(-2i/d)``,
    ``pos = start .. start + t - 1``, or the rows' position ids ``ids: (b, t)``."""
    t, d = x.shape[-2], x.shape[-1]
    inv = base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    if ids is None:
        pos = torch.arange(start, start + t, device=x.device, dtype=torch.float32)
    else:
        pos = ids.to(torch.float32)[:, None, :]  # (b, 1, t): one rotation per row and token
    angle = pos[..., None] * inv  # (t, d/2) or (b, 1, t, d/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


def sinusoidal(t: int, d: int) -> torch.Tensor:
    """``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(...)``: ``(t, d)``."""
    pos = torch.arange(t, dtype=torch.float32)[:, None]
    angle = pos * 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    pe = torch.zeros(t, d)
    pe[:, 0::2] = angle.sin()
    pe[:, 1::2] = angle.cos()[:, : d // 2]
    return pe


class KVCache:
    """Keys and values of positions ``0 .. len - 1`` in every layer, for incremental decoding.

    ``GPT.forward(tokens, cache)`` reads ``tokens: (b, t)`` as positions ``len .. len + t - 1``;
    they attend to the cached positions and causally to each other, their keys and values are
    stored and ``len`` advances by ``t``. ``size``: the most positions the cache holds; buffers
    ``(b, n_head, size, d_k)`` per layer are allocated at the first call.

    >>> net = GPT(GPTConfig(vocab_size=5, block_size=6, d_model=8, n_head=2)).eval()
    >>> x, cache = torch.tensor([[1, 2, 3, 4]]), KVCache(6)
    >>> step = torch.cat([net(x[:, :3], cache), net(x[:, 3:], cache)], dim=1)
    >>> cache.len, torch.allclose(step, net(x), atol=1e-6)
    (4, True)
    """

    def __init__(self, size: int) -> None:
        self.size, self.len = size, 0
        self.kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.ids: torch.Tensor | None = None  # (b, size): the task's position ids, if read

    def update_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Store the position ids ``(b, t)`` of positions ``len ..``; those of ``0 .. len + t
        - 1`` (the keys' ids, for a bias in id space)."""
        end = self.len + ids.shape[1]
        if end > self.size:
            raise ValueError(f"KV cache of {self.size} positions cannot hold {end}")
        if self.ids is None:
            self.ids = ids.new_zeros(ids.shape[0], self.size)
        self.ids[:, self.len : end] = ids
        return self.ids[:, :end]

    def twin(self) -> KVCache:
        """A second cache of the same size, for the frozen initial copy of an output-scaled
        model (``output_scale``)."""
        if not hasattr(self, "_twin"):
            self._twin = KVCache(self.size)
        return self._twin

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Store ``k, v: (b, h, t, d_k)`` at positions ``len ..``; the layer's keys and values
        of positions ``0 .. len + t - 1``."""
        end = self.len + k.shape[2]
        if end > self.size:
            raise ValueError(f"KV cache of {self.size} positions cannot hold {end}")
        if layer == len(self.kv):
            self.kv.append(tuple(z.new_empty(*z.shape[:2], self.size, z.shape[3]) for z in (k, v)))
        ck, cv = self.kv[layer]
        ck[:, :, self.len : end], cv[:, :, self.len : end] = k, v
        return ck[:, :, :end], cv[:, :, :end]


def id_bias(
    ids: torch.Tensor | None,
    n_head: int,
    causal: bool,
    alibi: bool = True,
    window: int | None = None,
    key_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """The ``(b, h, t, n)`` additive attention bias at the task's position ids: queries'
    ``ids: (b, t)``, keys' ``key_ids: (b, n)`` (default ``ids``; with a KV cache the last ``t``
    of them are the queries'): with ``alibi``, ALiBi's ``-m_h |id_i - id_j|`` (Press et al.
    2022, "Train short, test long"; slopes ``m_h = 2^(-8 (h + 1) / H)``) in id space; with
    ``window``, ``-inf`` where ``|id_i - id_j| > window`` (local attention, Beltagy et al.
    2020, in id space: every query keeps itself); ``-inf`` for a key after its query when
    ``causal``."""
    if ids is None:
        raise ValueError("model.id_alibi / id_window read the task's position ids")
    key_ids = ids if key_ids is None else key_ids
    dist = (ids[:, None, :, None] - key_ids[:, None, None, :]).abs().float()  # (b, 1, t, n)
    bias = torch.zeros(*dist.shape[:1], n_head, *dist.shape[2:], device=ids.device)
    if alibi:
        slopes = 2.0 ** (-8.0 * torch.arange(1, n_head + 1, device=ids.device) / n_head)
        bias = bias - slopes.view(1, n_head, 1, 1) * dist
    if window is not None:
        bias = bias.masked_fill(dist > window, float("-inf"))
    if causal:
        t, n = ids.shape[1], key_ids.shape[1]
        mask = torch.ones(t, n, dtype=torch.bool, device=ids.device).tril(n - t)
        bias = bias.masked_fill(~mask, float("-inf"))
    return bias


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.qkv = linear(cfg, cfg.d_model, 3 * cfg.d_model)
        self.out = linear(cfg, cfg.d_model, cfg.d_model)
        if cfg.attn_identity:
            self.alpha = nn.Parameter(torch.zeros(cfg.n_head))
            self.beta = nn.Parameter(torch.zeros(cfg.n_head))
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_pattern = HookPoint()
        self.hook_z = HookPoint()
        self.drop = nn.Dropout(cfg.dropout)
        self.explicit = False  # the explicit softmax path, twice differentiable
        dh, base_dh = cfg.d_model // cfg.n_head, (cfg.base_width or cfg.d_model) // cfg.n_head
        self.scale = width.attention_scale(cfg.param, dh, base_dh)  # fixed at construction

    def forward(
        self,
        x: torch.Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
        ids: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``ids: (b, t)``: the tokens' position ids (for ``id_rope``); ``bias: (b, h, t, n)``:
        scores added before the softmax, the causal mask included (:func:`id_bias`)."""
        b, t, d = x.shape
        h, dh = self.cfg.n_head, d // self.cfg.n_head
        start = 0 if cache is None else cache.len
        q, k, v = (z.view(b, t, h, dh).transpose(1, 2) for z in self.qkv(x).split(d, dim=2))
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        if self.cfg.pos == "rope":
            q, k = rope(q, start=start), rope(k, start=start)
        elif self.cfg.id_rope:  # RoPE at the task's ids: a score depends on id differences
            q, k = rope(q, ids=ids), rope(k, ids=ids)
        causal = self.cfg.causal
        if self.cfg.attn_identity:  # (b, h, t, dh + d): the alpha I and beta I terms
            xh = x[:, None].expand(b, h, t, d)
            q = torch.cat((q, self.alpha.view(1, h, 1, 1).to(x.dtype) * xh), dim=-1)
            k, v = torch.cat((k, xh), dim=-1), torch.cat((v, xh), dim=-1)
        if cache is not None:  # keys and values of positions 0 .. start + t - 1
            k, v = cache.update(layer, k, v)
        n = k.shape[2]  # query i (position start + i) sees keys 0 .. start + i
        scale = self.scale
        p_drop = self.cfg.dropout if self.training else 0.0
        if bias is not None:  # (b, h, t, n) scores added, the causal mask in it
            if self.explicit or self.hook_pattern._forward_hooks:
                att = self.hook_pattern((q @ k.transpose(-2, -1) * scale + bias).softmax(dim=-1))
                y = self.drop(att) @ v
            else:
                y = F.scaled_dot_product_attention(
                    q, k, v, attn_mask=bias.to(q.dtype), dropout_p=p_drop, scale=scale
                )
        elif self.explicit or self.hook_pattern._forward_hooks:  # explicit softmax
            att = q @ k.transpose(-2, -1) * scale
            if causal:
                mask = torch.ones(t, n, dtype=torch.bool, device=x.device).tril(start)
                att = att.masked_fill(~mask, float("-inf"))
            att = self.hook_pattern(att.softmax(dim=-1))  # (b, h, q, k)
            y = self.drop(att) @ v
        elif start == 0:
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=p_drop, is_causal=causal, scale=scale
            )
        else:  # after cached positions (eval mode): one query sees every key, else a mask
            mask = torch.ones(t, n, dtype=torch.bool, device=x.device).tril(start)
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=None if t == 1 else mask, scale=scale
            )
        if self.cfg.attn_identity:
            y, yx = y[..., :dh], y[..., dh:]  # A v, and A x per head
            extra = (self.beta.view(1, h, 1, 1).to(x.dtype) * yx).sum(dim=1)  # (b, t, d)
        y = self.hook_z(y)  # (b, h, t, dh)
        y = self.out(y.transpose(1, 2).reshape(b, t, d))
        return y + extra if self.cfg.attn_identity else y


class FeedForward(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = linear(cfg, cfg.d_model, cfg.d_mlp)
        self.act = nn.GELU()
        self.hook_post = HookPoint()
        self.proj = linear(cfg, cfg.d_mlp, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.hook_post(self.act(self.fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.ln_1 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.attn = Attention(cfg)
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.ln_2 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.mlp = FeedForward(cfg)
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
        ids: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.hook_resid_pre(x)
        attn = self.attn(self.ln_1(x), cache, layer, ids, bias)
        x = self.hook_resid_mid(x + self.hook_attn_out(self.drop(attn)))
        return self.hook_resid_post(x + self.hook_mlp_out(self.drop(self.mlp(self.ln_2(x)))))


class FinalNorm(nn.LayerNorm):
    """LayerNorm whose output is the site ``ln_final.hook_normalized``."""

    def __init__(self, d: int, bias: bool) -> None:
        super().__init__(d, bias=bias)
        self.hook_normalized = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hook_normalized(super().forward(x))


#: positions read at ids the task gives with the tokens (``forward(..., positions=)``)
TASK_POSITIONS = ("coupled", "abacus")


def add_position_table(module: nn.Module, pos: str, block_size: int, d: int) -> None:
    """The absolute positions of ``pos`` on ``module`` (shared by the GPT and the UT): a learned
    ``pos_embed`` table, or the fixed ``pos_table`` buffer; nothing for ``rope`` and ``none``."""
    if pos == "learned":
        module.pos_embed = nn.Embedding(block_size, d)
    elif pos == "sinusoidal":
        module.register_buffer("pos_table", sinusoidal(block_size, d), False)


def with_positions(module: nn.Module, pos: str, x: torch.Tensor, start: int = 0) -> torch.Tensor:
    """``x: (b, t, d)`` embeddings of positions ``start .. start + t - 1``, plus the absolute
    positions :func:`add_position_table` put on ``module`` (unchanged for ``rope`` and ``none``)."""
    t = x.shape[1]
    if pos == "learned":
        return x + module.pos_embed.weight[start : start + t]
    if pos == "sinusoidal":
        return x + module.pos_table[start : start + t].to(x.dtype)
    return x


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.pos in TASK_POSITIONS and not cfg.id_rope:  # ids given with the tokens: a
            self.pos_embed = nn.Embedding(cfg.max_pos, cfg.d_model)  # table of max_pos rows
        else:
            add_position_table(self, cfg.pos, cfg.block_size, cfg.d_model)
        self.hook_embed = HookPoint()
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_final = FinalNorm(cfg.d_model, cfg.bias)
        self.unembed = linear(cfg, cfg.d_model, cfg.vocab_size)
        self.hook_logits = HookPoint()
        self._init_weights()
        if cfg.tied_embeddings:
            self.unembed.weight = self.embed.weight
        width.setup(self, lambda: GPT(cfg.base()), std_scales_with_fan_in=False)

    def lr_multipliers(self, optimizer: str) -> dict[str, float]:
        """Per-parameter learning-rate factors (``learnscope.models.param``)."""
        return width.model_lr_multipliers(self, optimizer)

    def _init_weights(self) -> None:
        std = self.cfg.init_std
        with torch.no_grad():
            for name, m in self.named_modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    resid = name.endswith(("attn.out", "mlp.proj"))
                    nn.init.normal_(
                        m.weight, std=std / math.sqrt(2 * self.cfg.n_layer) if resid else std
                    )
                    if getattr(m, "bias", None) is not None:
                        m.bias.zero_()
                if isinstance(m, SigmaReparamLinear):
                    m.init_sigma()
            if self.cfg.init_scale != 1.0:  # Omnigrok: theta_0 -> alpha theta_0, all of it
                for p in self.parameters():
                    p.mul_(self.cfg.init_scale)

    def _position_ids(self, positions: torch.Tensor | None, tokens: torch.Tensor) -> torch.Tensor:
        """The ids to read the position table at: ``positions``, each row's non-zero ones
        shifted by a random offset while training (module docstring)."""
        if positions is None or positions.shape != tokens.shape:
            got = None if positions is None else tuple(positions.shape)
            raise ValueError(
                f"model.pos {self.cfg.pos} reads position ids given with the tokens (task."
                f"positions: {self.cfg.pos}) of shape {tuple(tokens.shape)}; got {got}"
            )
        top = int(positions.max()) if positions.numel() else 0
        if top >= self.cfg.max_pos:
            raise ValueError(f"position id {top} >= model.max_pos {self.cfg.max_pos}")
        if not self.training or self.cfg.id_rope:  # RoPE is blind to a common shift
            return positions
        room = self.cfg.max_pos - positions.amax(1, keepdim=True)  # offsets 0 .. room - 1
        k = (torch.rand(room.shape, device=positions.device) * room).long()
        return torch.where(positions > 0, positions + k, positions)

    def new_cache(self, size: int) -> KVCache | None:
        """An empty KV cache for ``size`` positions; None for a bidirectional model."""
        return KVCache(size) if self.cfg.causal else None

    def forward(
        self,
        tokens: torch.Tensor,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tokens: (b, t) int64, t <= block_size -> logits (b, t, vocab_size).

        With a ``cache`` (eval mode only), ``tokens`` are positions ``cache.len ..`` of the
        rows whose earlier positions the cache holds (see :class:`KVCache`). ``positions: (b,
        t)``: the tokens' position ids, for ``pos`` coupled or abacus (module docstring)."""
        start, t = (0 if cache is None else cache.len), tokens.shape[1]
        if start + t > self.cfg.block_size:
            raise ValueError(f"sequence length {start + t} > block_size {self.cfg.block_size}")
        if cache is not None and self.training:
            raise ValueError("a KV cache needs eval mode (dropout, sigma_reparam power steps)")
        if cache is not None and not self.cfg.causal:
            raise ValueError("a KV cache needs a causal model (causal: true)")
        ids = bias = None
        if self.cfg.pos in TASK_POSITIONS:
            ids = self._position_ids(positions, tokens)
            x = self.embed(tokens) if self.cfg.id_rope else self.embed(tokens) + self.pos_embed(ids)
            if self.cfg.biased_by_ids:  # one bias for every layer; the cache keeps keys' ids
                keys = ids if cache is None else cache.update_ids(ids)
                bias = id_bias(ids, self.cfg.n_head, self.cfg.causal, self.cfg.id_alibi,
                               self.cfg.id_window, keys)  # fmt: skip
        else:
            x = with_positions(self, self.cfg.pos, self.embed(tokens), start)
        x = self.drop(self.hook_embed(x))
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i, ids, bias)
        if cache is not None:
            cache.len += t
        logits = self.unembed(self.ln_final(x))
        if self._initial:  # alpha (f - f_0), f_0 from the frozen initial copy
            twin = None if cache is None else cache.twin()
            f0 = width.initial_output(self, tokens, twin, positions)
            logits = self.cfg.output_scale * (logits - f0)
        return self.hook_logits(logits)
