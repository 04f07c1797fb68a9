"""A sequence of classification tasks trained one after another (continual learning).

``task: {name: sequence, base: {name: prototypes, ...}, n_tasks: 5, permute: true,
steps_per_task: 500}`` builds ``n_tasks`` variants of one base task; ``tasks: [{name: modular,
op: add, p: 23}, {name: modular, op: sub, p: 23}]`` lists the tasks themselves (every one with
the same sizes: inputs, vocabulary, classes). Task ``k`` (``k >= 1``; task 0 is kept as built)
may be changed by

- ``permute: true``: a fixed random permutation of the input positions and, for token inputs,
  of the token values at each position (for the one-hot MLP a permutation of its input
  features, the analogue of permuted MNIST, Kirkpatrick et al. 2017; Goodfellow et al. 2013);
  real-valued inputs have their coordinates permuted;
- ``relabel: true``: a fixed random permutation of the labels (a new label map, Dohare et al.
  2024's stream of tasks on one data set).

Both are drawn from a generator seeded by ``(seed, k)``: the same seed gives the same
sequence.

Splits: ``train`` is the *active* task's training split (task 0 at first; the trainer's
continual callback, :mod:`learnscope.train.continual`, swaps it every ``steps_per_task``
steps, so step ``s`` trains on task ``min(s // steps_per_task, n_tasks - 1)``);
``task{k}/train`` and ``task{k}/test`` are task ``k``'s own splits. The eval splits are
``train`` and every ``task{k}/test``, so every eval logs ``task{k}/test/acc`` for every task.

>>> seq = make_task("sequence", base={"name": "prototypes", "n_classes": 3, "length": 4,
...                 "vocab": 5}, n_tasks=3, permute=True, steps_per_task=10)
>>> seq.eval_splits
['train', 'task0/test', 'task1/test', 'task2/test']
>>> seq.active_task(0), seq.active_task(19), seq.active_task(20), seq.active_task(99)
(0, 1, 2, 2)
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field, model_validator

from learnscope.errors import UserError
from learnscope.tasks.base import Split, Task, TaskParams, make_task

__all__ = ["SequenceParams", "TaskSequence", "make_task"]

MAX_TASKS = 1000


class SequenceParams(TaskParams):
    tasks: list[dict[str, Any]] | None = Field(
        None, max_length=MAX_TASKS, description="the task configs, in training order"
    )
    base: dict[str, Any] | None = Field(None, description="one task config, varied n_tasks times")
    n_tasks: int = Field(2, ge=1, le=MAX_TASKS, description="with base: how many variants")
    permute: bool = Field(False, description="task k >= 1: permuted input positions and values")
    relabel: bool = Field(False, description="task k >= 1: permuted labels")
    steps_per_task: int = Field(500, ge=1, le=10**8, description="training steps on each task")
    window: int = Field(
        10, ge=1, le=MAX_TASKS, description="tasks averaged in new_task_acc_first / _last"
    )

    @model_validator(mode="after")
    def _one_source(self) -> SequenceParams:
        if (self.tasks is None) == (self.base is None):
            raise ValueError("give one of tasks (a list of task configs) or base (one config)")
        if self.tasks is not None and "n_tasks" in self.model_fields_set:
            raise ValueError("n_tasks goes with base; with tasks, their number is the list's")
        for config in self.tasks if self.tasks is not None else [self.base]:
            if not isinstance(config, dict) or "name" not in config:
                raise ValueError("each task config is a mapping with a name")
            if config["name"] == "sequence":
                raise ValueError("a task of a sequence cannot itself be a sequence")
        return self

    @property
    def configs(self) -> list[dict[str, Any]]:
        return list(self.tasks) if self.tasks is not None else [dict(self.base)] * self.n_tasks


class TaskSequence(Task):
    """Classification tasks trained one after another; see the module docstring."""

    name = "sequence"
    Params = SequenceParams
    kind = "classification"

    def __init__(self, params: SequenceParams) -> None:
        super().__init__(params)
        self.tasks: list[Task] = []
        self.train_splits: list[Split] = []
        self.test_splits: list[Split] = []
        for k, config in enumerate(params.configs):
            config = {"seed": params.seed, **config}
            try:
                task = make_task(config.pop("name"), **config)
            except UserError as err:
                raise UserError(f"task.{'tasks' if params.tasks else 'base'}: {err}") from None
            if task.kind != "classification" or "test" not in task.splits:
                raise UserError(
                    f"task.tasks: {task.name} is not a classification task with a test split; "
                    "allowed: classification tasks (modular, prototypes, views, ...)"
                )
            if self.tasks and task.model_dims() != self.tasks[0].model_dims():
                raise UserError(
                    f"task.tasks: task {k} has sizes {task.model_dims()}, task 0 has "
                    f"{self.tasks[0].model_dims()}; every task of a sequence needs the same"
                )
            self.tasks.append(task)
            change = self._change(k, task)
            self.train_splits.append(change(task.split("train")))
            self.test_splits.append(change(task.split("test")))
        self.splits = {"train": self.train_splits[0]}
        for k in range(self.n_tasks):
            self.splits[f"task{k}/train"] = self.train_splits[k]
            self.splits[f"task{k}/test"] = self.test_splits[k]

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def active_task(self, step: int) -> int:
        """The task trained at step ``step`` (0-based updates): ``min(step // steps_per_task,
        n_tasks - 1)``."""
        return min(step // self.params.steps_per_task, self.n_tasks - 1)

    def _change(self, k: int, task: Task):
        """The fixed change of task ``k`` (permuted inputs and / or labels), as a function of
        a split."""
        p = self.params
        if k == 0 or not (p.permute or p.relabel):
            return lambda split: split
        g = torch.Generator().manual_seed(p.seed * 1_000_003 + k)
        dims = task.model_dims()
        x = task.split("train")["x"]
        n_pos = x.shape[1]
        positions = torch.randperm(n_pos, generator=g) if p.permute else torch.arange(n_pos)
        values = None
        if p.permute and not x.is_floating_point():  # a permutation of values per position
            vocab = dims["vocab"]
            values = torch.stack([torch.randperm(vocab, generator=g) for _ in range(n_pos)])
        labels = torch.randperm(dims["n_out"], generator=g) if p.relabel else None

        def change(split: Split) -> Split:
            tensors = dict(split.tensors)
            xs = tensors["x"][:, positions]
            if values is not None:
                xs = values[torch.arange(n_pos)[None, :], xs]  # x'[i, j] = values[j, x[i, j]]
            tensors["x"] = xs
            if labels is not None:
                for key in ("y", "y_true"):
                    if key in tensors:
                        tensors[key] = labels[tensors[key]]
            tensors.pop("views", None)  # the views of an input are not permuted with it
            return Split(tensors, dict(split.info))

        return change

    @property
    def eval_splits(self) -> list[str]:
        return ["train"] + [f"task{k}/test" for k in range(self.n_tasks)]

    def model_dims(self) -> dict[str, int]:
        return self.tasks[0].model_dims()

    def score(self, predictions: torch.Tensor, split: str) -> float:
        y = self.split(split)["y"]
        return (predictions.to(y.device) == y).float().mean().item()
