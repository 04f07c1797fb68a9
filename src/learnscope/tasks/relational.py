"""Reasoning over abstract symbols: same/different and template tasks (Boix-Adsera et al. 2023).

A template is a word over variables, e.g. ``aba``; a string matches it when some one-to-one
assignment of symbols to the variables writes it (``s7 s2 s7`` matches ``aba``, not ``abb``).
Each row is a string made from a template drawn uniformly, with distinct symbols drawn for
its distinct variables, and the answer names the template. ``mode: same_different`` is the
template task with ``aa`` (answer ``same``) and ``ab`` (answer ``different``); ``mode:
template`` uses ``templates`` (answers ``t0``, ``t1``, ...):

>>> task = make_task("relational", mode="template", templates=["aab", "aba", "abb"],
...                  n_train_symbols=20, n_test_symbols=5, n_train=6, n_test=3)
>>> task.decode(task.split("test")["tokens"][0])
'<bos> s23 s20 s20 = t2 <eos>'

The point of the task is generalisation to symbols never seen: ``train`` uses only the
symbols ``s0 .. s{n_train_symbols-1}`` and ``test`` only the ``n_test_symbols`` others, so
the test split's symbol tokens never occur in training.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from learnscope.tasks.base import make_task
from learnscope.tasks.sequence import Example, SequenceParams, SequenceTask

__all__ = ["RelationalParams", "RelationalTask", "pattern", "make_task"]


def pattern(word) -> tuple[int, ...]:
    """Each letter replaced by the rank of its first occurrence: equal iff one template.

    >>> pattern("aba"), pattern(["s4", "s9", "s4"])
    ((0, 1, 0), (0, 1, 0))
    """
    first: dict = {}
    return tuple(first.setdefault(w, len(first)) for w in word)


class RelationalParams(SequenceParams):
    mode: Literal["same_different", "template"] = "same_different"
    templates: list[str] | None = Field(
        None, description="for mode template: words over variables a-z, e.g. [aab, aba, abb]"
    )
    n_train_symbols: int = Field(64, ge=1, le=10**6, description="symbols of the training split")
    n_test_symbols: int = Field(16, ge=1, le=10**6, description="symbols of the test split only")

    @model_validator(mode="after")
    def _check(self) -> RelationalParams:
        if self.mode == "same_different" and self.templates is not None:
            raise ValueError("templates are only used with mode 'template'")
        if self.mode == "template":
            if not self.templates or len(self.templates) < 2:
                raise ValueError("mode 'template' needs at least two templates")
            if not all(t.isalpha() and t.islower() for t in self.templates):
                raise ValueError(f"templates must be words over a-z (got {self.templates})")
            if len({pattern(t) for t in self.templates}) != len(self.templates):
                raise ValueError(f"templates must be different up to renaming ({self.templates})")
        need = max(len(set(t)) for t in self.words())
        for field in ("n_train_symbols", "n_test_symbols"):
            if getattr(self, field) < need:
                raise ValueError(f"{field} must be >= {need}, the variables of a template")
        return self

    def words(self) -> list[str]:
        return ["aa", "ab"] if self.mode == "same_different" else list(self.templates)


class RelationalTask(SequenceTask):
    """Name the template of a string of abstract symbols; test on unseen symbols."""

    name = "relational"
    Params = RelationalParams
    params: RelationalParams

    @property
    def labels(self) -> list[str]:
        if self.params.mode == "same_different":
            return ["same", "different"]
        return [f"t{i}" for i in range(len(self.params.templates))]

    def symbols(self) -> list[str]:
        n = self.params.n_train_symbols + self.params.n_test_symbols
        return [*(f"s{i}" for i in range(n)), "=", *self.labels]

    def max_example_len(self) -> int:
        return max(map(len, self.params.words())) + 2

    def draw(self, rng: np.random.Generator, n: int, split: str) -> list[Example]:
        a, b = self.params.n_train_symbols, self.params.n_test_symbols
        pool = np.arange(a) if split == "train" else np.arange(a, a + b)
        words = self.params.words()
        out = []
        for k in rng.integers(len(words), size=n).tolist():
            variables = sorted(set(words[k]))
            chosen = rng.choice(pool, size=len(variables), replace=False).tolist()
            assign = {v: f"s{s}" for v, s in zip(variables, chosen)}
            question = (*(assign[v] for v in words[k]), "=")
            out.append(Example(question, (self.labels[k],), k))
        return out
