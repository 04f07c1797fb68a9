"""Parity of a bit string, with an optional scratchpad, and length-generalisation splits.

A row is ``<bos> b_1 ... b_L = parity <eos>`` with ``L`` uniform in ``lo..hi`` for ``train``
and ``test`` and exactly ``k`` in ``test_len_{k}`` (each ``k > hi``), as in the length
generalisation study of Zhou et al. (2023). With ``scratchpad`` the running parities
``r_i = b_1 xor ... xor b_i`` are written before the answer, then ``####``:

>>> task = make_task("parity", lo=3, hi=4, test_lengths=[6], scratchpad=True, n_train=8, n_test=4)
>>> task.decode(task.split("train")["tokens"][1])
'<bos> 0 1 0 1 = 0 1 1 0 #### 0 <eos>'
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from learnscope.tasks.base import make_task
from learnscope.tasks.sequence import (
    Example,
    LengthParams,
    SequenceTask,
    draw_lengths,
    length_splits,
)

__all__ = ["ParityParams", "ParityTask", "make_task"]

MARKER = "####"


class ParityParams(LengthParams):
    scratchpad: bool = Field(False, description="write the running parities before the answer")


class ParityTask(SequenceTask):
    """The parity of ``L`` bits; out-of-distribution splits at longer ``L``."""

    name = "parity"
    Params = ParityParams
    params: ParityParams

    def symbols(self) -> list[str]:
        return ["0", "1", "=", MARKER]

    def test_splits(self) -> list[str]:
        return length_splits(self.params)

    def answer_marker(self) -> str | None:
        return MARKER if self.params.scratchpad else None

    def max_example_len(self) -> int:
        return self.params.hi + 2 + (self.params.hi + 1 if self.params.scratchpad else 0)

    def draw(self, rng: np.random.Generator, n: int, split: str) -> list[Example]:
        return [self.example(rng.integers(0, 2, size=L).tolist()) for L in
                draw_lengths(rng, n, split, self.params)]  # fmt: skip

    def example(self, bits: list[int]) -> Example:
        running = np.cumsum(bits) % 2
        cot = (*map(str, running), MARKER) if self.params.scratchpad else ()
        return Example((*map(str, bits), "="), (str(running[-1]),), int(running[-1]), cot)
