"""Noisy prototypes: a token-valued mixture of classes, for class-imbalance studies.

Class ``c`` has a prototype ``pi_c``: ``length`` tokens drawn uniformly from ``0..vocab-1``
(seeded). An example of class ``c`` is its prototype with every token independently replaced,
with probability ``noise``, by a token drawn uniformly from the vocabulary (possibly the same
one). The label is ``c``. Unlike modular arithmetic, where one algorithm serves every class,
each class here is learned from its own examples, so a long-tailed training split
(``imbalance``, see :func:`learnscope.tasks.base.long_tail`) starves the minority classes, as
the long-tailed image benchmarks of Shwartz-Ziv et al. 2023 do.

The Bayes-optimal classifier knows the prototypes: ``P(x | c) = prod_t (1 - noise + noise /
vocab)^[x_t = pi_c,t] (noise / vocab)^[x_t != pi_c,t]``, so it predicts the class whose
prototype agrees with ``x`` on the most positions (ties split evenly);
:meth:`PrototypesTask.bayes_accuracy` scores it on a split.

Splits: ``train`` holds ``n_per_class`` examples of each class (before ``imbalance``),
``test`` ``n_test_per_class`` of each (balanced).

>>> task = make_task("prototypes", n_classes=3, length=4, vocab=5, noise=0.0, seed=0)
>>> x, y = task.split("test")["x"], task.split("test")["y"]
>>> bool((x == task.prototypes[y]).all()), task.bayes_accuracy("test")
(True, 1.0)
"""

from __future__ import annotations

import torch
from pydantic import Field

from learnscope.tasks.base import ClassificationParams, Split, Task, make_task

__all__ = ["PrototypesParams", "PrototypesTask", "make_task"]


class PrototypesParams(ClassificationParams):
    n_classes: int = Field(10, ge=2, le=10**4)
    length: int = Field(8, ge=1, le=1024, description="tokens per example")
    vocab: int = Field(8, ge=2, le=10**4, description="values a token takes")
    noise: float = Field(0.6, ge=0, le=1, description="probability a token is redrawn")
    n_per_class: int = Field(200, ge=1, le=10**5, description="training rows per class")
    n_test_per_class: int = Field(100, ge=1, le=10**5)


class PrototypesTask(Task):
    name = "prototypes"
    Params = PrototypesParams
    kind = "classification"

    def __init__(self, params: PrototypesParams) -> None:
        super().__init__(params)
        g = torch.Generator().manual_seed(params.seed)
        shape = (params.n_classes, params.length)
        self.prototypes = torch.randint(0, params.vocab, shape, generator=g)
        self.splits = {
            "train": self._draw(params.n_per_class, g),
            "test": self._draw(params.n_test_per_class, g),
        }

    def _draw(self, per_class: int, g: torch.Generator) -> Split:
        p = self.params
        y = torch.arange(p.n_classes).repeat_interleave(per_class)
        x = self.prototypes[y].clone()
        redraw = torch.rand(x.shape, generator=g) < p.noise
        x[redraw] = torch.randint(0, p.vocab, (int(redraw.sum()),), generator=g)
        return Split({"x": x, "y": y})

    def bayes_accuracy(self, split: str) -> float:
        """Accuracy of the Bayes-optimal rule (most positions agreeing with a prototype;
        ties split evenly) on ``split``."""
        s = self.split(split)
        agree = (s["x"][:, None, :] == self.prototypes[None]).sum(-1)  # (n, C)
        best = agree == agree.max(1, keepdim=True).values
        return (best.gather(1, s["y"][:, None])[:, 0] / best.sum(1)).mean().item()

    def model_dims(self) -> dict[str, int]:
        p = self.params
        return {"n_inputs": p.length, "vocab": p.vocab, "n_out": p.n_classes}

    def score(self, predictions: torch.Tensor, split: str) -> float:
        y = self.split(split)["y"]
        return (predictions.to(y.device) == y).float().mean().item()
