"""Augmented views of synthetic data whose informative directions are known: a joint-embedding
toy for self-supervised objectives (VICReg, MMCR) and their rank probes (RankMe, LiDAR).

Seeded from ``seed``: an orthonormal basis ``[U V]`` of ``R^dim`` (``U: (dim, k)`` the
``k = informative`` directions, ``V: (dim, dim - k)`` the nuisance ones) and a linear teacher
``A: (n_classes, k)``. A sample has a latent ``s ~ N(0, I_k)``, the label
``y = argmax_c (A s)_c`` (it depends on the informative directions only) and the input

    x = U s + nuisance * V n,   n ~ N(0, I_{dim - k})

Each of its ``n_views`` augmented views keeps ``s`` up to a small jitter and redraws the
nuisance: ``x_j = U (s + jitter * e_j) + nuisance * V n_j``. An objective invariant to the
views keeps ``U s`` and drops the nuisance; a linear probe on the embedding of ``x`` then
reads ``y`` off. Rows: ``x: (n, dim)`` float, ``y: (n,)`` int64, ``views: (n, n_views, dim)``.

>>> task = make_task("views", dim=8, informative=2, n_views=3, n_train=16, n_test=4)
>>> task.split("train")["views"].shape, task.model_dims()
(torch.Size([16, 3, 8]), {'n_inputs': 8, 'embed': 'none', 'n_out': 4})
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field, model_validator

from learnscope.tasks.base import Split, Task, TaskParams, make_task

__all__ = ["ViewsParams", "ViewsTask", "make_task"]


class ViewsParams(TaskParams):
    dim: int = Field(32, ge=2, le=4096, description="input dimension")
    informative: int = Field(4, ge=1, le=4096, description="informative directions k < dim")
    n_classes: int = Field(4, ge=2, le=1000, description="classes of the downstream label")
    nuisance: float = Field(1.0, ge=0, le=1e3, description="std of each nuisance coordinate")
    jitter: float = Field(0.1, ge=0, le=1e3, description="std of a view's informative noise")
    n_views: int = Field(2, ge=2, le=64, description="augmented views per sample")
    n_train: int = Field(2048, ge=2, le=10**6)
    n_test: int = Field(1024, ge=1, le=10**6)
    embed_dim: int | None = Field(
        None, ge=1, le=4096, description="the model's output width; None: n_classes"
    )

    @model_validator(mode="after")
    def _sizes(self) -> ViewsParams:
        if self.informative >= self.dim:
            raise ValueError(f"informative ({self.informative}) must be < dim ({self.dim})")
        return self


class ViewsTask(Task):
    """Samples with informative and nuisance directions, and augmented views of each."""

    name = "views"
    Params = ViewsParams
    kind = "views"
    params: ViewsParams

    def __init__(self, params: ViewsParams) -> None:
        super().__init__(params)
        p = params
        rng = np.random.default_rng(p.seed)
        basis, _ = np.linalg.qr(rng.standard_normal((p.dim, p.dim)))
        self.informative_basis = basis[:, : p.informative]  # U: (dim, k)
        self.nuisance_basis = basis[:, p.informative :]  # V: (dim, dim - k)
        self.teacher = rng.standard_normal((p.n_classes, p.informative))  # A: (C, k)
        self.splits = {"train": self._draw(rng, p.n_train), "test": self._draw(rng, p.n_test)}

    def _inputs(self, rng: np.random.Generator, s: np.ndarray) -> np.ndarray:
        """``U s + nuisance * V n`` for latents ``s: (..., k)``, a fresh ``n`` per row."""
        n = rng.standard_normal((*s.shape[:-1], self.nuisance_basis.shape[1]))
        return s @ self.informative_basis.T + self.params.nuisance * n @ self.nuisance_basis.T

    def _draw(self, rng: np.random.Generator, n: int) -> Split:
        p = self.params
        s = rng.standard_normal((n, p.informative))
        jittered = s[:, None] + p.jitter * rng.standard_normal((n, p.n_views, p.informative))
        tensors = {
            "x": torch.tensor(self._inputs(rng, s), dtype=torch.float32),
            "y": torch.tensor((s @ self.teacher.T).argmax(1), dtype=torch.long),
            "views": torch.tensor(self._inputs(rng, jittered), dtype=torch.float32),
        }
        return Split(tensors)

    def model_dims(self) -> dict[str, int | str]:
        """The MLP's sizes, and ``embed: none``: the inputs are real vectors."""
        n_out = self.params.embed_dim or self.params.n_classes
        return {"n_inputs": self.params.dim, "embed": "none", "n_out": n_out}

    def score(self, predictions: torch.Tensor, split: str) -> float:
        """Accuracy of predicted labels ``(n,)`` against the split's ``y``."""
        y = self.split(split)["y"]
        return float((predictions.to(y.device) == y).double().mean())
