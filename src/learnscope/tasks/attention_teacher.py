"""A low-rank teacher attention map, learned by one attention layer: the setting of "Transformers
learn through gradual rank increase" (Boix-Adsera, Littwin, Abbe, Bengio & Susskind 2023;
PAPERS.md 26, our small-scale plan).

Tokens ``x_t ~ N(0, I_d)``, ``T`` of them a row. The teacher's
query-key matrix is ``W* = sum_{i < r} s_i u_i v_i^T`` with orthonormal ``u, v`` (seeded) and
singular values ``s_i = scale * ratio^-i`` (distinct, so that they are learned one at a time),
and the target of each row is the attention output with the values equal to the tokens:

    Y = softmax(X W* X^T / sqrt(d)) X          X: (T, d), Y: (T, d)

(causal: false, every token attends to every token). Rows: ``x, y: (n, T, d)`` float32. A
regression task (``kind = "regression"``: the mean squared error; ``acc`` the fraction of
output coordinates within ``tolerance``).

>>> task = make_task("attention_teacher", d=8, T=4, rank=2, n_train=5, n_test=3)
>>> task.split("train")["y"].shape, task.model_dims(), torch.linalg.matrix_rank(task.w_star).item()
(torch.Size([5, 4, 8]), {'d': 8}, 2)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import Field, model_validator

from learnscope.tasks.base import Split, Task, TaskParams, make_task

__all__ = ["AttentionTeacherParams", "AttentionTeacherTask", "make_task", "teacher_attention"]


def teacher_attention(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``softmax(X W X^T / sqrt(d)) X`` for ``x: (n, T, d)``, ``w: (d, d)``."""
    scores = x @ w @ x.transpose(-2, -1) / math.sqrt(x.shape[-1])
    return scores.softmax(-1) @ x


class AttentionTeacherParams(TaskParams):
    d: int = Field(16, ge=2, le=4096, description="token dimension")
    T: int = Field(8, ge=2, le=4096, description="tokens per row")
    rank: int = Field(3, ge=1, le=4096, description="rank of the teacher's W*")
    scale: float = Field(8.0, gt=0, le=1e4, description="largest singular value of W*")
    ratio: float = Field(2.0, ge=1, le=1e3, description="s_i / s_(i+1)")
    n_train: int = Field(256, ge=1, le=10**7)
    n_test: int = Field(256, ge=1, le=10**7)
    tolerance: float = Field(0.01, gt=0, le=1e3, description="acc: |f - y| within this")

    @model_validator(mode="after")
    def _rank(self) -> AttentionTeacherParams:
        if self.rank > self.d:
            raise ValueError(f"rank must be <= d (got rank={self.rank}, d={self.d})")
        return self


class AttentionTeacherTask(Task):
    name = "attention_teacher"
    Params = AttentionTeacherParams
    kind = "regression"

    def __init__(self, params: AttentionTeacherParams) -> None:
        super().__init__(params)
        p = params
        rng = np.random.default_rng(p.seed)
        u, _ = np.linalg.qr(rng.standard_normal((p.d, p.d)))
        v, _ = np.linalg.qr(rng.standard_normal((p.d, p.d)))
        s = p.scale * p.ratio ** -np.arange(p.rank)
        self.singular_values = torch.tensor(s, dtype=torch.float32)
        self.w_star = torch.tensor((u[:, : p.rank] * s) @ v[:, : p.rank].T, dtype=torch.float32)
        self.splits = {"train": self._draw(rng, p.n_train), "test": self._draw(rng, p.n_test)}

    def _draw(self, rng: np.random.Generator, n: int) -> Split:
        p = self.params
        x = torch.tensor(rng.standard_normal((n, p.T, p.d)), dtype=torch.float32)
        return Split({"x": x, "y": teacher_attention(x, self.w_star)})

    def model_dims(self) -> dict[str, int]:
        return {"d": self.params.d}

    def score(self, predictions: torch.Tensor, split: str) -> float:
        y = self.split(split)["y"]
        err = (predictions.to(y.device).reshape(y.shape) - y).abs()
        return (err <= self.params.tolerance).float().mean().item()
