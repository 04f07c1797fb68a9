"""Multi-digit multiplication: an ``n_digits`` by ``m_digits`` product, with or without CoT.

The operands have exactly ``n_digits`` and ``m_digits`` digits (no leading zero; a one-digit
operand is 0..9) and the
product is written with ``n_digits + m_digits`` digits, zero-padded, so every row of a task
has the same length. With ``reverse`` every number is written least significant digit first,
as in the data of Deng et al. (2023) used by Seq-VCR (Arefin et al. 2024). Formats:

- ``plain``: ``<bos> 2 3 6 5 * 4 3 4 7 = 1 0 2 8 0 6 5 5 <eos>`` (2365 x 4347 = 10280655);
- ``pause``: ``n_pause`` (>= 1) ``<pause>`` tokens after ``=``, part of the prompt, no loss;
- ``cot``: the partial products and running sums before the answer, as in Deng et al.'s
  chain of thought: ``P_0 + P_1 ( S_1 ) + ... + P_{m-1} ( S_{m-1} ) ####`` then the answer,
  where ``P_j = a * b_j * 10^j`` (``b_j`` the j-th least significant digit of ``b``) is
  written with ``n + 1 + j`` digits and ``S_j = P_0 + ... + P_j`` with ``n + 1 + j`` digits
  (``S_j < a 10^(j+1) < 10^(n+j+1)``).

>>> task = make_task("multiplication", n_digits=2, m_digits=2, format="cot", n_train=4, n_test=2)
>>> task.decode(task.split("train")["tokens"][0])
'<bos> 2 4 * 7 2 = 0 4 8 + 1 6 8 0 ( 1 7 2 8 ) #### 1 7 2 8 <eos>'

Training examples are a fixed set of ``n_train`` distinct products, or fresh draws every
step (``fresh: true``); ``test`` holds ``n_test`` products never in ``train``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from learnscope.tasks.base import make_task
from learnscope.tasks.sequence import (
    Example,
    SequenceParams,
    SequenceTask,
    digits,
    draw_numbers,
)

__all__ = ["MultiplicationParams", "MultiplicationTask", "make_task"]

MARKER = "####"


class MultiplicationParams(SequenceParams):
    n_digits: int = Field(4, ge=1, le=40, description="digits of the first operand")
    m_digits: int = Field(4, ge=1, le=40, description="digits of the second operand")
    format: Literal["plain", "cot", "pause"] = "plain"
    reverse: bool = Field(False, description="write numbers least significant digit first")

    @model_validator(mode="after")
    def _check(self) -> MultiplicationParams:
        if self.format == "pause" and self.n_pause < 1:
            raise ValueError("format 'pause' needs n_pause >= 1 (the number of <pause> tokens)")
        if self.format != "pause" and self.n_pause > 0:
            raise ValueError(f"n_pause is only used with format 'pause' (got {self.format!r})")
        return self


class MultiplicationTask(SequenceTask):
    """``a * b`` with ``a`` of ``n_digits`` and ``b`` of ``m_digits`` digits."""

    name = "multiplication"
    Params = MultiplicationParams
    params: MultiplicationParams

    def symbols(self) -> list[str]:
        return [*"0123456789", "*", "=", "+", "(", ")", MARKER]

    def answer_marker(self) -> str | None:
        return MARKER if self.params.format == "cot" else None

    def max_example_len(self) -> int:
        n, m = self.params.n_digits, self.params.m_digits
        cot = 0
        if self.params.format == "cot":  # P_j and S_j (j >= 1) of n + 1 + j digits, + ( ) ####
            cot = sum(n + 1 + j for j in range(m)) + sum(n + 4 + j for j in range(1, m)) + 1
        return n + m + 2 + cot + n + m

    def draw(self, rng: np.random.Generator, n: int, split: str) -> list[Example]:
        nd, md = self.params.n_digits, self.params.m_digits
        a, b = draw_numbers(rng, n, nd), draw_numbers(rng, n, md)
        return [self.example(x, y) for x, y in zip(a, b)]

    def example(self, a: int, b: int) -> Example:
        """The example ``a * b`` in this task's format."""
        nd, md, rev = self.params.n_digits, self.params.m_digits, self.params.reverse
        question = (*digits(a, nd, rev), "*", *digits(b, md, rev), "=")
        cot: list[str] = []
        if self.params.format == "cot":
            total = 0
            for j in range(md):
                part = a * (b // 10**j % 10) * 10**j
                total += part
                cot += ["+"] if j else []
                cot += digits(part, nd + 1 + j, rev)
                cot += ["(", *digits(total, nd + 1 + j, rev), ")"] if j else []
            cot.append(MARKER)
        answer = tuple(digits(a * b, nd + md, rev))
        return Example(question, answer, a * b, tuple(cot))
