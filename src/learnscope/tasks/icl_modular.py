"""In-context learning of linear modular functions (He et al. 2024).

A task is a pair ``(a, b)`` in ``Z_p^2`` and the function ``z = a x + b y mod p``. A row is
``n_shots`` triples of one task, one token per residue and no separators (as in He et al.):

    <bos> x_1 y_1 z_1 x_2 y_2 z_2 ... x_k y_k z_k <eos>

The model is prompted with everything up to ``x_k y_k`` and answers ``z_k``. As in He et al.
every in-context ``z_i`` is a training target too (``loss_on_context``, default on), so
``loss_mask`` is True at all the ``z`` tokens while ``answer_mask`` and ``score`` look at
``z_k`` only.

``n_tasks`` of the ``p^2`` tasks are drawn (seeded) for pre-training; the ``(x, y)`` pairs
are split once, a fraction ``pair_fraction`` for training and the rest held out. Splits:

- ``train``: seen tasks, training pairs;
- ``test``: seen tasks, held-out pairs only (in-distribution generalisation);
- ``test_unseen_tasks``: the tasks not pre-trained on, any pairs (out-of-distribution).

The pairs of a row are distinct (drawn without replacement from its pool).

>>> task = make_task("icl_modular", p=5, n_shots=3, n_tasks=4, n_train=8, n_test=4)
>>> task.decode(task.split("train")["tokens"][0])
'<bos> 4 3 3 1 2 2 3 1 1 <eos>'
>>> task.seen_tasks
[(2, 1), (3, 2), (4, 0), (3, 1)]
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from learnscope.errors import UserError
from learnscope.tasks.base import make_task
from learnscope.tasks.sequence import Example, SequenceParams, SequenceTask

__all__ = ["IclModularParams", "IclModularTask", "make_task"]


class IclModularParams(SequenceParams):
    p: int = Field(29, ge=2, le=1000, description="the modulus")
    n_shots: int = Field(32, ge=1, le=1000, description="triples (x, y, z) per row")
    n_tasks: int = Field(64, ge=1, le=10**6, description="tasks (a, b) seen in training")
    pair_fraction: float = Field(0.5, gt=0, lt=1, description="share of (x, y) pairs to train")
    loss_on_context: bool = Field(True, description="train on every z, not only the last")

    @model_validator(mode="after")
    def _check(self) -> IclModularParams:
        if self.n_tasks >= self.p**2:
            raise ValueError(f"n_tasks must be < p^2 = {self.p**2} to leave unseen tasks")
        return self


class IclModularTask(SequenceTask):
    """``z = a x + b y mod p`` learnt in context; tested on new pairs and on unseen tasks."""

    name = "icl_modular"
    Params = IclModularParams
    params: IclModularParams

    def __init__(self, params: IclModularParams) -> None:
        p = params.p
        rng = np.random.default_rng([params.seed, 1])  # its own stream: tasks and pairs
        tasks = rng.permutation(p * p).tolist()
        self.seen_tasks = [divmod(t, p) for t in tasks[: params.n_tasks]]
        self.unseen_tasks = [divmod(t, p) for t in tasks[params.n_tasks :]]
        pairs = rng.permutation(p * p)
        n_train_pairs = round(params.pair_fraction * p * p)
        self.train_pairs = [divmod(int(i), p) for i in pairs[:n_train_pairs]]
        self.test_pairs = [divmod(int(i), p) for i in pairs[n_train_pairs:]]
        self.all_pairs = [divmod(i, p) for i in range(p * p)]
        short = min(len(self.train_pairs), len(self.test_pairs))
        if short < params.n_shots:
            raise UserError(
                f"task.pair_fraction: {params.pair_fraction} of p^2 = {p * p} pairs leaves "
                f"{short} pairs in a split, fewer than n_shots = {params.n_shots}"
            )
        super().__init__(params)

    def symbols(self) -> list[str]:
        return [str(i) for i in range(self.params.p)]

    def test_splits(self) -> list[str]:
        return ["test", "test_unseen_tasks"]

    def max_example_len(self) -> int:
        return 3 * self.params.n_shots

    def draw(self, rng: np.random.Generator, n: int, split: str) -> list[Example]:
        tasks = self.unseen_tasks if split == "test_unseen_tasks" else self.seen_tasks
        pool = {"train": self.train_pairs, "test": self.test_pairs}.get(split, self.all_pairs)
        p, k = self.params.p, self.params.n_shots
        out = []
        for t in rng.integers(len(tasks), size=n).tolist():
            a, b = tasks[t]
            shots = [pool[i] for i in rng.choice(len(pool), size=k, replace=False).tolist()]
            words = [str(v) for x, y in shots for v in (x, y, (a * x + b * y) % p)]
            targets = tuple(range(2, 3 * k - 1, 3)) if self.params.loss_on_context else ()
            out.append(Example(tuple(words[:-1]), (words[-1],), int(words[-1]), (), targets))
        return out
