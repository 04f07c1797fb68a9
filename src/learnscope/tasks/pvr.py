"""Pointer-value retrieval with ``k`` hops (Abnar et al. 2023, after Zhang et al. 2021).

A row holds ``n`` values ``x_0 .. x_{n-1}``, each uniform in ``0..n-1`` and so also a
pointer. Start from the pointer ``x_0`` and follow it ``k`` times: ``v_1 = x[x_0]``,
``v_{j+1} = x[v_j]``; the answer is ``v_k``. The number of hops is written in unary before
the values (``k`` tokens ``>``), so a longer chain at test time uses no unseen token:

>>> task = make_task("pvr", n=6, max_hops=2, test_hops=[4], format="cot", n_train=6, n_test=3)
>>> task.decode(task.split("train")["tokens"][1])
'<bos> > > : 4 5 1 4 1 2 = 1 #### 5 <eos>'

(``x_0 = 4``, ``v_1 = x_4 = 1``, ``v_2 = x_1 = 5``.) With ``format: cot`` the chain
``v_1 .. v_{k-1}`` is written before ``####`` and the answer. ``train`` and ``test`` have
``k`` uniform in ``1..max_hops``; ``test_hops_{k}`` has exactly ``k`` hops for each ``k`` in
``test_hops`` (``1 <= k <= n``): beyond ``max_hops`` it tests generalisation to more hops, at
or below it the accuracy (and a UT's steps) per training hop count.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from learnscope.tasks.base import make_task
from learnscope.tasks.sequence import Example, SequenceParams, SequenceTask

__all__ = ["PvrParams", "PvrTask", "make_task"]

MARKER = "####"


class PvrParams(SequenceParams):
    n: int = Field(10, ge=2, le=1000, description="values per row (each also a pointer)")
    max_hops: int = Field(2, ge=1, description="training rows have 1..max_hops hops")
    test_hops: list[int] = Field(
        [4], max_length=100, description="hops of the splits test_hops_{k}"
    )
    format: Literal["plain", "cot"] = "plain"

    @model_validator(mode="after")
    def _check(self) -> PvrParams:
        if self.max_hops > self.n:
            raise ValueError(f"max_hops must be <= n={self.n} (got {self.max_hops})")
        bad = [k for k in self.test_hops if not 1 <= k <= self.n]
        if bad:
            raise ValueError(f"test_hops must be in 1..n={self.n} (got {bad})")
        if len(set(self.test_hops)) != len(self.test_hops):
            raise ValueError(f"test_hops must be distinct (got {self.test_hops})")
        return self


class PvrTask(SequenceTask):
    """Follow a pointer ``k`` times through ``n`` values; test at more hops."""

    name = "pvr"
    Params = PvrParams
    params: PvrParams

    def symbols(self) -> list[str]:
        return [*map(str, range(self.params.n)), ">", ":", "=", MARKER]

    def test_splits(self) -> list[str]:
        return ["test", *(f"test_hops_{k}" for k in self.params.test_hops)]

    def answer_marker(self) -> str | None:
        return MARKER if self.params.format == "cot" else None

    def max_example_len(self) -> int:
        k = self.params.max_hops
        return k + self.params.n + 3 + (k if self.params.format == "cot" else 0)

    def draw(self, rng: np.random.Generator, n: int, split: str) -> list[Example]:
        if split.startswith("test_hops_"):
            hops = [int(split.removeprefix("test_hops_"))] * n
        else:
            hops = rng.integers(1, self.params.max_hops + 1, size=n).tolist()
        x = rng.integers(0, self.params.n, size=(n, self.params.n)).tolist()
        return [self.example(row, k) for row, k in zip(x, hops)]

    def example(self, x: list[int], hops: int) -> Example:
        chain, v = [], x[0]
        for _ in range(hops):
            v = x[v]
            chain.append(v)
        cot = (*map(str, chain[:-1]), MARKER) if self.params.format == "cot" else ()
        question = (*[">"] * hops, ":", *map(str, x), "=")
        return Example(question, (str(v),), v, cot)
