"""Group composition ``c = a * b`` over the whole table of a finite non-abelian group.

Chughtai, Chan & Nanda (2023), "A toy model of universality": networks trained on the
composition table of ``S_n``, ``A_n`` or a dihedral group learn it through irreducible
representations. One token per element: elements are numbered ``0..|G|-1`` in the
deterministic order of :func:`learnscope.groups.make_group` (``S_n`` lexicographic in its
permutations, the identity first; ``A_n`` the even ones in that order; ``D_n`` element ``i + n
j`` is ``r^i s^j``). An example is ``x = (a, b)``, ``y = a * b`` (composition, ``b`` applied
first):

>>> task = make_task("group", group="S3", train_fraction=0.5, seed=0)
>>> g = task.group
>>> x, y = task.split("train")["x"], task.split("train")["y"]
>>> bool((torch.from_numpy(g.table)[x[:, 0], x[:, 1]] == y).all()), task.model_dims()
(True, {'n_inputs': 2, 'vocab': 6, 'n_out': 6})

Splits as in modular arithmetic: a seeded permutation (NumPy's PCG64) of the ``|G|^2`` pairs
puts ``round(train_fraction |G|^2)`` of them in ``train`` and the rest in ``test``.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field, field_validator

from learnscope.errors import UserError
from learnscope.groups import GROUP_NAMES, make_group, parse_group
from learnscope.tasks.base import ClassificationParams, Split, Task, make_task

__all__ = ["GroupParams", "GroupTask", "make_task"]


class GroupParams(ClassificationParams):
    group: str = Field("S4", max_length=8, description=f"the group: {GROUP_NAMES}")
    train_fraction: float = Field(0.4, gt=0, lt=1)

    @field_validator("group")
    @classmethod
    def _group(cls, v: str) -> str:
        parse_group(v)  # ValueError names what is allowed
        return v


class GroupTask(Task):
    """``a * b`` in a finite group, the whole table split into train and test."""

    name = "group"
    Params = GroupParams
    kind = "classification"

    def __init__(self, params: GroupParams) -> None:
        super().__init__(params)
        self.group = make_group(params.group)
        n = self.group.order
        a, b = np.divmod(np.arange(n * n, dtype=np.int64), n)
        x = np.stack([a, b], axis=1)
        y = self.group.table[a, b]
        order = np.random.default_rng(params.seed).permutation(n * n)
        n_train = round(params.train_fraction * n * n)
        if not 1 <= n_train <= n * n - 1:
            raise UserError(
                f"task.train_fraction: {params.train_fraction} of {n * n} pairs leaves an empty "
                "train or test split; allowed: a fraction giving 1..N-1 training pairs"
            )
        train, test = order[:n_train], order[n_train:]

        def split(rows: np.ndarray) -> Split:
            return Split({"x": torch.from_numpy(x[rows]), "y": torch.from_numpy(y[rows])})

        self.splits = {"train": split(train), "test": split(test)}

    def model_dims(self) -> dict[str, int]:
        n = self.group.order
        return {"n_inputs": 2, "vocab": n, "n_out": n}

    def score(self, predictions: torch.Tensor, split: str) -> float:
        y = self.split(split)["y"]
        return (predictions.to(y.device) == y).float().mean().item()
