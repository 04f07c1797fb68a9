"""Multi-digit addition with length-generalisation splits (Zhou et al. 2023).

Both operands have the same number of digits ``L`` (no leading zero): ``L`` is uniform in
``lo..hi`` for ``train`` and ``test``, and exactly ``k`` in the out-of-distribution split
``test_len_{k}`` for each ``k`` in ``test_lengths`` (all ``> hi``). The answer is the sum:

- default: ``<bos> 5 7 + 6 8 = 1 2 5 <eos>``;
- ``reverse``: the sum least significant digit first, ``= 5 2 1`` (the order a carry is
  computed in);
- ``index_hints`` (Zhou et al. 2023, after apple/ml-np-rasp): both operands zero-padded to
  ``L + 1`` digits and every digit preceded by a hint token shared by the digits of the same
  column, ``h3 0 h4 5 h5 7 + h3 0 h4 6 h5 8 = h3 1 h4 2 h5 5``; the answer is the ``L + 1``
  (hint, digit) pairs, most significant first, or least significant first with ``reverse``.
  The hints of a row are a run of consecutive tokens ``h{o}..h{o+L}`` with a random offset
  ``o`` in ``0..H-L-1``, where ``H = max(hi, test_lengths) + 1`` hint tokens exist, so that
  training on short rows still shows every hint token (our choice; the paper's exact hint
  sampling is not stated in the sources we have).

>>> task = make_task("addition", lo=2, hi=2, test_lengths=[3], n_train=5, n_test=3)
>>> task.decode(task.split("train")["tokens"][0])
'<bos> 2 3 + 6 4 = 8 7 <eos>'
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from learnscope.errors import UserError
from learnscope.tasks.base import make_task
from learnscope.tasks.sequence import (
    Example,
    LengthParams,
    SequenceTask,
    draw_lengths,
    draw_numbers,
    length_splits,
)

__all__ = ["AdditionParams", "AdditionTask", "make_task"]


class AdditionParams(LengthParams):
    reverse: bool = Field(False, description="write the sum least significant digit first")
    index_hints: bool = Field(False, description="precede every digit by its column's hint")
    reverse_operands: bool = Field(
        False, description="write both operands least significant digit first (as Abacus does)"
    )


class AdditionTask(SequenceTask):
    """``a + b`` with ``L``-digit operands; out-of-distribution splits at longer ``L``."""

    name = "addition"
    Params = AdditionParams
    params: AdditionParams

    @property
    def n_hints(self) -> int:
        return max(self.params.hi, *self.params.test_lengths) + 1

    def __init__(self, params: AdditionParams) -> None:
        if params.index_hints and (params.positions != "none" or params.reverse_operands):
            raise UserError("task.index_hints: goes with positions none and reverse_operands false")
        super().__init__(params)

    def symbols(self) -> list[str]:
        hints = [f"h{i}" for i in range(self.n_hints)] if self.params.index_hints else []
        return [*"0123456789", "+", "=", *hints]

    def test_splits(self) -> list[str]:
        return length_splits(self.params)

    def max_example_len(self) -> int:
        L = self.params.hi
        if self.params.index_hints:
            return 6 * (L + 1) + 2
        return 3 * L + 3

    def draw(self, rng: np.random.Generator, n: int, split: str) -> list[Example]:
        lengths = draw_lengths(rng, n, split, self.params)
        out = []
        for L in lengths:
            a, b = draw_numbers(rng, 2, L)
            offset = int(rng.integers(0, self.n_hints - L)) if self.params.index_hints else 0
            out.append(self.example(a, b, L, offset))
        return out

    def example(self, a: int, b: int, L: int, offset: int = 0) -> Example:
        """The example ``a + b`` (``L`` digits each); ``offset`` is the first hint's index."""
        total = a + b
        if not self.params.index_hints:
            answer = list(str(total))
            answer = answer[::-1] if self.params.reverse else answer
            first, second = str(a), str(b)
            if self.params.reverse_operands:
                first, second = first[::-1], second[::-1]
            # position coupling (Cho et al. 2024, their start s = 1): + and = have id 1 and the
            # digit of 10^i has id i + 2 in a, b and the sum alike, so that the token that
            # predicts the digit of 10^i (=, or the digit of 10^(i-1)) has id i + 1 and all
            # of them move together with the model's random offset
            sig = []
            for digits_, lsb_first in ((first, self.params.reverse_operands),
                                       (second, self.params.reverse_operands),
                                       (answer, self.params.reverse)):  # fmt: skip
                ids = list(range(2, len(digits_) + 2))
                sig += [*(ids if lsb_first else ids[::-1]), 1]
            question = (*first, "+", *second, "=")
            return Example(question, tuple(answer), total, positions=tuple(sig[:-1]))

        def hinted(x: int) -> list[tuple[str, str]]:
            return [(f"h{offset + k}", d) for k, d in enumerate(str(x).zfill(L + 1))]

        pairs = hinted(total)[::-1] if self.params.reverse else hinted(total)
        question = (*_flat(hinted(a)), "+", *_flat(hinted(b)), "=")
        return Example(question, tuple(_flat(pairs)), total)


def _flat(pairs: list[tuple[str, str]]) -> list[str]:
    return [t for pair in pairs for t in pair]
