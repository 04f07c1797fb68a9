"""One attention layer with factored query and key weights and the tokens as values, for the
gradual rank increase of Boix-Adsera, Littwin, Abbe, Bengio & Susskind (2023; PAPERS.md 26).

``f(X) = softmax(X W_Q W_K^T X^T / sqrt(d)) X`` for ``X: (b, T, d)`` (no mask, no values or
output projection: the teacher of ``learnscope.tasks.attention_teacher`` has identity values).
``W_Q, W_K: (d, d_head)`` start at ``N(0, init_scale^2)`` entries; from a small
``init_scale`` the product ``W_Q W_K^T`` is learned one direction at a time, its update
``W_t - W_0`` gaining rank in steps, each after a plateau of the loss that lengthens like
``log(1 / init_scale)`` (the paper's theorem for diagonal heads; here the plain product).

Sites: ``hook_scores (b, T, T)`` before the softmax, ``hook_pattern (b, T, T)``, ``hook_out``
``(b, T, d)``; parameters ``w_q``, ``w_k``. ``qk()`` is the product ``W_Q W_K^T``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from learnscope.models.hooks import HookPoint


@dataclass
class AttentionConfig:
    d: int = 16  # token dimension, from the task
    d_head: int | None = None  # None: d
    init_scale: float = 0.01  # std of W_Q's and W_K's entries

    def __post_init__(self) -> None:
        if self.d_head is None:
            self.d_head = self.d
        if self.d < 1 or self.d_head < 1:
            raise ValueError(f"d and d_head must be >= 1 (got {self.d}, {self.d_head})")
        if not 0 < self.init_scale <= 1e3:
            raise ValueError(f"init_scale must be in (0, 1000] (got {self.init_scale})")

    def n_params(self) -> int:
        return 2 * self.d * (self.d_head or self.d)

    def activation_floats(self) -> int:
        """Floats one row keeps for the backward pass, per token pair and token: roughly."""
        return 4 * self.d * self.d


class Attention(nn.Module):
    def __init__(self, cfg: AttentionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.w_q = nn.Parameter(torch.randn(cfg.d, cfg.d_head) * cfg.init_scale)
        self.w_k = nn.Parameter(torch.randn(cfg.d, cfg.d_head) * cfg.init_scale)
        self.hook_scores, self.hook_pattern, self.hook_out = HookPoint(), HookPoint(), HookPoint()

    def qk(self) -> torch.Tensor:
        """``W_Q W_K^T: (d, d)``, the query-key matrix the teacher's ``W*`` is compared with."""
        return self.w_q @ self.w_k.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.hook_scores(x @ self.qk() @ x.transpose(-2, -1) / math.sqrt(self.cfg.d))
        return self.hook_out(self.hook_pattern(scores.softmax(-1)) @ x)
