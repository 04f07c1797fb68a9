"""A random linear teacher on Gaussian inputs: the double-descent task with exact answers.

Seeded from ``seed``: a teacher ``w*: (d,)`` with ``N(0, 1)`` entries and inputs ``x ~ N(0,
I_d)`` (with ``rank = k``: ``x = U s``, ``s ~ N(0, I_k)``, ``U: (d, k)`` a random orthonormal
basis, so the inputs span only ``k`` directions and the square loss of a linear model has a
rank-``k`` Hessian; the intrinsic-dimension test model). Two targets:

- ``target: regression`` (``kind = "regression"``): ``y = w* . x / sqrt(d) + sigma * eps`` on
  the training rows, ``eps ~ N(0, 1)``; the test rows keep the clean ``y = w* . x / sqrt(d)``,
  so the test loss (the mean of ``(f(x) - y)^2``) is the excess risk of ridgeless regression
  whose expectation :func:`learnscope.studies.double_descent.ridgeless_risk` gives in closed
  form (Advani & Saxe 2017; Belkin, Hsu & Xu 2019; Hastie et al. 2019). A prediction counts
  as correct (``acc``) when it is within ``tolerance`` of its target: the answer is exact, up
  to that tolerance.
- ``target: classification``: a teacher ``W*: (C, d)``, label ``y = argmax_c (W* x)_c``; with
  ``label_noise = xi``, exactly ``round(xi * n_train)`` training labels (a seeded choice) are
  replaced by a uniformly drawn *wrong* label (Nakkiran et al. 2019's label noise); the train
  split keeps the true labels as ``y_true`` (reported as ``train/true_acc``); test labels are
  clean.

Rows: ``x: (n, d)`` float32, ``y: (n,)`` float32 (regression) or int64 (classification).

>>> task = make_task("teacher", d=4, n_train=8, n_test=5, sigma=0.0)
>>> x, y = task.split("train")["x"], task.split("train")["y"]
>>> bool(torch.allclose(y, x @ task.w_star / 2)), task.model_dims()
(True, {'n_inputs': 4, 'embed': 'none', 'n_out': 1})
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from learnscope.tasks.base import Split, Task, TaskParams, make_task

__all__ = ["TeacherParams", "TeacherTask", "make_task"]


class TeacherParams(TaskParams):
    d: int = Field(20, ge=1, le=10**5, description="input dimension")
    rank: int | None = Field(
        None, ge=1, le=10**5, description="inputs span this many directions (None: all d)"
    )
    n_train: int = Field(100, ge=1, le=10**6)
    n_test: int = Field(1000, ge=1, le=10**6)
    target: Literal["regression", "classification"] = "regression"
    sigma: float = Field(0.0, ge=0, le=1e3, description="regression: noise std of train targets")
    tolerance: float = Field(
        0.1, gt=0, le=1e6, description="regression: |f(x) - y| counted as a correct answer"
    )
    n_classes: int = Field(2, ge=2, le=10**4, description="classification: classes")
    label_noise: float = Field(
        0.0, ge=0, lt=1, description="classification: fraction of training labels made wrong"
    )

    @model_validator(mode="after")
    def _consistent(self) -> TeacherParams:
        if self.rank is not None and self.rank > self.d:
            raise ValueError(f"rank ({self.rank}) must be <= d ({self.d})")
        if self.target == "regression" and self.label_noise:
            raise ValueError("label_noise is for target 'classification' (regression: sigma)")
        if self.target == "classification" and self.sigma:
            raise ValueError("sigma is for target 'regression' (classification: label_noise)")
        return self


class TeacherTask(Task):
    """Gaussian inputs, a random linear teacher, noisy training targets."""

    name = "teacher"
    Params = TeacherParams
    kind = "regression"  # per instance: "classification" with target: classification
    params: TeacherParams

    def __init__(self, params: TeacherParams) -> None:
        super().__init__(params)
        p = params
        self.kind = p.target
        rng = np.random.default_rng([p.seed, 30])
        k = p.rank or p.d
        basis = np.linalg.qr(rng.standard_normal((p.d, k)))[0] if p.rank else np.eye(p.d)
        self.basis = torch.tensor(basis, dtype=torch.float32)  # U: (d, k)
        if p.target == "regression":
            self.w_star = torch.tensor(rng.standard_normal(p.d), dtype=torch.float32)
        else:
            w = rng.standard_normal((p.n_classes, p.d))
            self.w_star = torch.tensor(w, dtype=torch.float32)  # W*: (C, d)
        x_train = self._inputs(rng, p.n_train)
        x_test = self._inputs(rng, p.n_test)
        train = {"x": x_train, "y": self.answer(x_train)}
        if p.target == "regression":
            eps = torch.tensor(rng.standard_normal(p.n_train), dtype=torch.float32)
            train["y"] = train["y"] + p.sigma * eps
        else:
            train["y_true"] = train["y"].clone()
            n_bad = round(p.label_noise * p.n_train)
            if n_bad:
                bad = torch.tensor(rng.permutation(p.n_train)[:n_bad])
                shift = torch.tensor(rng.integers(1, p.n_classes, n_bad))
                train["y"][bad] = (train["y"][bad] + shift) % p.n_classes
        self.splits = {
            "train": Split(train),
            "test": Split({"x": x_test, "y": self.answer(x_test)}),
        }

    def _inputs(self, rng: np.random.Generator, n: int) -> torch.Tensor:
        s = torch.tensor(rng.standard_normal((n, self.basis.shape[1])), dtype=torch.float32)
        return s @ self.basis.T

    def answer(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's clean answer for ``x: (n, d)``: ``w* . x / sqrt(d)`` or the argmax."""
        if self.kind == "regression":
            return x @ self.w_star / self.params.d**0.5
        return (x @ self.w_star.T).argmax(1)

    def model_dims(self) -> dict[str, int | str]:
        """Real inputs (``embed: none``); one output for regression, ``C`` logits otherwise."""
        n_out = 1 if self.kind == "regression" else self.params.n_classes
        return {"n_inputs": self.params.d, "embed": "none", "n_out": n_out}

    def score(self, predictions: torch.Tensor, split: str) -> float:
        """Regression: fraction within ``tolerance`` of the split's targets; classification:
        exact-match accuracy of the labels."""
        y = self.split(split)["y"]
        predictions = predictions.to(y.device)
        if self.kind == "regression":
            hit = (predictions.reshape(y.shape) - y).abs() <= self.params.tolerance
            return float(hit.double().mean())
        return float((predictions == y).double().mean())
