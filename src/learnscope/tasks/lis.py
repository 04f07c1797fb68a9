"""Longest strictly increasing subsequence (LIS) of ``n`` integers, with an optional DP table.

A row is ``<bos> x_1 ... x_n = answer <eos>`` with every ``x_i`` uniform in
``0..values-1`` and the answer the length of the longest strictly increasing subsequence, as
in the LIS task of Feng et al. (2023) used by Seq-VCR (Arefin et al. 2024). With
``format: cot`` the dynamic-programming table comes first,

    dp_i = 1 + max({dp_j : j < i, x_j < x_i} U {0}),   answer = max_i dp_i,

written ``dp_1 ... dp_n ####``:

>>> task = make_task("lis", n=6, values=10, format="cot", n_train=4, n_test=2)
>>> task.decode(task.split("train")["tokens"][0])
'<bos> 7 5 3 0 5 9 = 1 1 1 1 2 3 #### 3 <eos>'

Numbers (values and lengths) share the tokens ``"0" .. str(max(values - 1, n))``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from learnscope.tasks.base import make_task
from learnscope.tasks.sequence import Example, SequenceParams, SequenceTask

__all__ = ["LisParams", "LisTask", "lis_table", "make_task"]

MARKER = "####"


class LisParams(SequenceParams):
    n: int = Field(8, ge=1, le=500, description="length of the sequence")
    values: int = Field(10, ge=1, le=1000, description="the integers are 0..values-1")
    format: Literal["plain", "cot"] = "plain"


def lis_table(x: list[int]) -> list[int]:
    """``dp_i``: the longest strictly increasing subsequence ending at ``x_i`` (O(n^2)).

    >>> lis_table([3, 1, 4, 1, 5])
    [1, 1, 2, 1, 3]
    """
    dp: list[int] = []
    for i, xi in enumerate(x):
        dp.append(1 + max((dp[j] for j in range(i) if x[j] < xi), default=0))
    return dp


class LisTask(SequenceTask):
    """The LIS length of ``n`` integers in ``0..values-1``."""

    name = "lis"
    Params = LisParams
    params: LisParams

    def symbols(self) -> list[str]:
        return [*map(str, range(max(self.params.values - 1, self.params.n) + 1)), "=", MARKER]

    def answer_marker(self) -> str | None:
        return MARKER if self.params.format == "cot" else None

    def max_example_len(self) -> int:
        return self.params.n + 2 + (self.params.n + 1 if self.params.format == "cot" else 0)

    def draw(self, rng: np.random.Generator, n: int, split: str) -> list[Example]:
        x = rng.integers(0, self.params.values, size=(n, self.params.n)).tolist()
        return [self.example(row) for row in x]

    def example(self, x: list[int]) -> Example:
        dp = lis_table(x)
        cot = (*map(str, dp), MARKER) if self.params.format == "cot" else ()
        return Example((*map(str, x), "="), (str(max(dp)),), max(dp), cot)
