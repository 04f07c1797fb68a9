"""The Task protocol, the task registry and the ``make_task`` factory.

A task is a seeded sampler of examples with exact answers (after clrs ``SAMPLERS`` /
``build_sampler``). Every task family is a subclass of :class:`Task` that declares

- ``name``: the registry key,
- ``Params``: a pydantic model of its parameters (unknown parameters are refused),
- ``kind``: ``"classification"`` (inputs ``x: (n, k)`` of token ids, labels ``y: (n,)``) or
  ``"sequence"`` (token rows with a loss mask),

and builds its named splits once, deterministically from its ``seed``. ``make_task`` is the
only way in: it validates the parameters and turns a mistake into a :class:`UserError` that
names the field.
"""

from __future__ import annotations

import abc
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import ConfigDict, Field, ValidationError

from learnscope.errors import UserError, cut, from_validation
from learnscope.strict import MAX_SEED, StrictModel


class TaskParams(StrictModel):
    """Base of every task's parameter model: unknown keys are errors, floats finite, no
    booleans for numbers (:class:`~learnscope.strict.StrictModel`)."""

    model_config = ConfigDict(frozen=True)

    seed: int = Field(0, ge=0, le=MAX_SEED)
    train_data: str | None = Field(
        None,
        max_length=4096,
        description="a .pt file of tensors that replaces the train split (model-collapse chains)",
    )
    keep_rows: str | None = Field(
        None,
        max_length=4096,
        description="a .pt file of train-split row indices to train on (data-diet pruning)",
    )


class ClassificationParams(TaskParams):
    """Parameters every classification task has: ``imbalance`` (see :func:`long_tail`) and
    ``label_noise`` (see :func:`flip_labels`)."""

    imbalance: float = Field(
        1.0, ge=1, le=1e6, description="rho = n_max / n_min of a long-tailed training split"
    )
    label_noise: float = Field(
        0.0, ge=0, lt=1, description="fraction of training labels replaced by another class"
    )


def long_tail(y: torch.Tensor, n_classes: int, rho: float, seed: int) -> torch.Tensor:
    """Rows of a labelled split kept to make its class counts long-tailed (sorted indices).

    The long-tailed CIFAR protocol (Cui et al. 2019; Cao et al. 2019), as used by
    Shwartz-Ziv et al. 2023, "Simplifying neural network training under class imbalance":
    class ``c`` keeps ``max(1, round(n_c * rho^(-c / (C - 1))))`` of its ``n_c`` rows (a
    seeded random choice), so class 0 keeps all of its rows and class ``C - 1`` a fraction
    ``1 / rho``; with equal ``n_c``, ``rho = n_max / n_min``. Classes absent from ``y`` stay
    absent.

    >>> y = torch.arange(4).repeat_interleave(100)  # 4 classes of 100 rows
    >>> torch.bincount(y[long_tail(y, 4, 10.0, seed=0)]).tolist()
    [100, 46, 22, 10]
    """
    generator = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(n_classes):
        rows = (y == c).nonzero()[:, 0]
        if not len(rows):
            continue
        n = max(1, round(len(rows) * rho ** (-c / max(n_classes - 1, 1))))
        keep.append(rows[torch.randperm(len(rows), generator=generator)[:n]])
    return torch.cat(keep).sort().values


def flip_labels(
    y: torch.Tensor, n_classes: int, fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels with ``round(fraction * n)`` of them replaced by a different class, and the
    rows flipped (sorted indices): symmetric label noise (Zhang et al. 2017; the noisy-label
    setting of Paul et al. 2021 and Toneva et al. 2019). The rows are a seeded random choice;
    each flipped label moves to one of the other ``C - 1`` classes, uniformly
    (``y' = (y + u) mod C``, ``u`` uniform on ``1..C-1``), so every flipped label is wrong.

    >>> y = torch.arange(4).repeat(5)  # 20 rows, 4 classes
    >>> noisy, rows = flip_labels(y, 4, 0.25, seed=0)
    >>> len(rows), bool((noisy[rows] != y[rows]).all()), int((noisy != y).sum())
    (5, True, 5)
    """
    generator = torch.Generator().manual_seed(seed * 7919 + 31)  # not the task's own stream
    n = len(y)
    rows = torch.randperm(n, generator=generator)[: round(fraction * n)].sort().values
    shift = torch.randint(1, n_classes, (len(rows),), generator=generator)
    noisy = y.clone()
    noisy[rows] = (y[rows] + shift) % n_classes
    return noisy, rows


@dataclass
class Split:
    """Named tensors with the same first dimension (one row per example).

    Classification tasks hold ``x: (n, k)`` int64 operands and ``y: (n,)`` int64 labels.
    """

    tensors: dict[str, torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sizes = {k: len(v) for k, v in self.tensors.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"split tensors differ in length: {sizes}")

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    def rows(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The examples at ``index``, as a batch (a dict of tensors)."""
        return {k: v[index] for k, v in self.tensors.items()}

    def to(self, device: torch.device | str) -> Split:
        return Split({k: v.to(device) for k, v in self.tensors.items()}, self.info)


class Task(abc.ABC):
    """Base class of every task family; subclasses are registered by their ``name``."""

    name: ClassVar[str]
    Params: ClassVar[type[TaskParams]]
    kind: ClassVar[str]

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not register:  # a shared base of a kind of task (e.g. SequenceTask), not a task
            return
        missing = [a for a in ("name", "Params") if a not in cls.__dict__]
        missing += [] if hasattr(cls, "kind") else ["kind"]  # may come from a shared base
        if missing:
            raise TypeError(f"task class {cls.__name__} must define {', '.join(missing)}")
        if cls.name in TASKS:
            raise TypeError(f"task name {cls.name!r} is taken by {TASKS[cls.name].__module__}")
        TASKS[cls.name] = cls

    def __init__(self, params: TaskParams) -> None:
        self.params = params
        self.splits: dict[str, Split] = {}
        #: rows of the train split whose label ``label_noise`` flipped (sorted indices)
        self.flipped = torch.empty(0, dtype=torch.long)
        self.kept: torch.Tensor | None = None  # the train rows ``keep_rows`` kept, if given

    # -- what trainers and probes read ------------------------------------------------
    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise UserError(f"split: unknown split {name!r}; this task has {sorted(self.splits)}")
        return self.splits[name]

    @property
    def eval_splits(self) -> list[str]:
        """Splits evaluated at every eval step (train first, then test, then the others)."""
        return list(self.splits)

    @abc.abstractmethod
    def model_dims(self) -> dict[str, int]:
        """Sizes a model needs from the task (e.g. ``n_inputs``, ``vocab``, ``n_out``)."""

    @abc.abstractmethod
    def score(self, predictions: torch.Tensor, split: str) -> float:
        """Exact-match accuracy of ``predictions`` against the split's answers."""

    def use_train_data(self, path: str) -> None:
        """Train on the tensors saved at ``path`` (``torch.save`` of a dict of tensors with
        the train split's keys, dtypes and row shapes; any number of rows) instead of the
        task's own ``train`` split, which is kept as ``train_real`` (so a model trained on
        data generated by another model is still scored against the truth). Other
        ``train_*`` splits are left as they were."""
        where = f"task.train_data: {cut(str(path))}"
        if not Path(path).exists():
            raise UserError(f"{where} cannot be read: no such file")
        if not Path(path).is_file():  # a device (/dev/zero), a directory
            raise UserError(f"{where}: not a regular file (a .pt file of tensors)")
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, ValueError) as err:
            text = str(err).strip()
            why = "" if isinstance(err, pickle.UnpicklingError) or not text else ": " + text
            raise UserError(
                f"{where} cannot be read as a .pt file of tensors (torch.save of a dict)"
                f"{cut(why.splitlines()[0] if why else '', 160)}"
            ) from None
        train = self.split("train")
        if not isinstance(loaded, dict) or set(loaded) != set(train.tensors):
            keys = sorted(loaded) if isinstance(loaded, dict) else type(loaded).__name__
            raise UserError(f"{where} holds {keys}; expected tensors {sorted(train.tensors)}")
        for key, want in train.tensors.items():
            got = loaded[key]
            if (
                not isinstance(got, torch.Tensor)
                or got.dtype != want.dtype
                or (got.shape[1:] != want.shape[1:])
            ):
                raise UserError(
                    f"{where}: {key} must be a {want.dtype} tensor of rows shaped "
                    f"{tuple(want.shape[1:])}"
                )
        try:
            replaced = Split(dict(loaded))
        except ValueError as err:
            raise UserError(f"{where}: {err}") from None
        if not len(replaced):
            raise UserError(f"{where} holds no rows")
        self.splits = {"train": replaced} | {k: v for k, v in self.splits.items() if k != "train"}
        self.splits["train_real"] = train

    def imbalance(self, rho: float) -> None:
        """Make the training split long-tailed (:func:`long_tail`, seeded by the task's seed;
        the other splits stay as they are: a balanced test set stays balanced). The training
        class counts are kept in ``split("train").info["class_counts"]`` (a list of ``C``)."""
        train, n_classes = self.split("train"), self.model_dims()["n_out"]
        rows = long_tail(train["y"], n_classes, rho, seed=self.params.seed)
        kept = Split(train.rows(rows), dict(train.info))
        kept.info["class_counts"] = torch.bincount(kept["y"], minlength=n_classes).tolist()
        self.splits["train"] = kept

    def add_label_noise(self, fraction: float) -> None:
        """Flip ``round(fraction * n)`` training labels to another class (:func:`flip_labels`,
        seeded by the task's seed); the test split stays clean. The flipped rows are
        ``self.flipped``; they are also the split ``train_noisy`` (``y`` the noisy label,
        ``y_true`` the true one: the run reports ``train_noisy/acc``, memorisation, and
        ``train_noisy/true_acc``)."""
        if self.kind != "classification":
            raise UserError(
                f"task.label_noise: {self.name} is a {self.kind} task; allowed: 0 (label noise "
                "is for classification tasks)"
            )
        train = self.split("train")
        y, rows = flip_labels(train["y"], self.model_dims()["n_out"], fraction, self.params.seed)
        self.splits["train"] = Split(train.tensors | {"y": y}, dict(train.info))
        self.flipped = rows
        self._noisy_split(train["y"])

    def _noisy_split(self, y_true: torch.Tensor) -> None:
        """The split ``train_noisy``: the flipped rows of ``train`` with their true labels."""
        self.splits.pop("train_noisy", None)
        if len(self.flipped):
            rows = self.split("train").rows(self.flipped)
            self.splits["train_noisy"] = Split(rows | {"y_true": y_true[self.flipped]})

    def keep_train_rows(self, path: str) -> None:
        """Train on the rows of the train split listed in ``path`` (a ``.pt`` file of a 1-D
        int64 tensor of distinct indices, as :func:`torch.save` writes it): the data-diet
        studies prune a training set this way. ``self.kept`` holds those indices (sorted);
        ``self.flipped`` and ``train_noisy`` follow the kept rows."""
        where = f"task.keep_rows: {cut(str(path))}"
        if not Path(path).is_file():
            raise UserError(f"{where} cannot be read: not a file")
        try:
            index = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, ValueError):
            index = None
        if not isinstance(index, torch.Tensor) or index.dtype != torch.long or index.dim() != 1:
            raise UserError(f"{where}: expected a .pt file of a 1-D int64 tensor of row indices")
        train = self.split("train")
        n = len(train)
        index = index.unique()  # sorted
        if not len(index) or int(index.min()) < 0 or int(index.max()) >= n:
            raise UserError(f"{where}: needs 1 or more row indices in 0..{n - 1}")
        y_true = train["y"].clone()
        if len(self.flipped):
            y_true[self.flipped] = self.splits["train_noisy"]["y_true"]
        kept = Split(train.rows(index), dict(train.info))
        if "class_counts" in kept.info:
            counts = torch.bincount(kept["y"], minlength=self.model_dims()["n_out"])
            kept.info["class_counts"] = counts.tolist()
        self.splits["train"], self.kept = kept, index
        self.flipped = torch.isin(index, self.flipped).nonzero()[:, 0]
        self._noisy_split(y_true[index])

    def __iter__(self) -> Iterator[tuple[str, Split]]:
        return iter(self.splits.items())

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        return f"{type(self).__name__}({self.params!r}; {sizes})"


TASKS: dict[str, type[Task]] = {}


def validate_task_params(name: str, params: dict[str, Any]) -> TaskParams:
    """Validate ``params`` for task ``name``; a :class:`UserError` names the bad field."""
    if name not in TASKS:
        raise UserError(f"task.name: unknown task {name!r}; allowed: {', '.join(sorted(TASKS))}")
    try:
        return TASKS[name].Params(**params)
    except ValidationError as err:
        raise from_validation(err, "task", model=TASKS[name].Params) from None


def make_task(name: str, **params: Any) -> Task:
    """Build task ``name`` with ``params``, validated.

    >>> task = make_task("modular", op="add", p=7, train_fraction=0.5, seed=1)
    >>> len(task.split("train")) + len(task.split("test"))
    49
    """
    checked = validate_task_params(name, params)
    task = TASKS[name](checked)
    if checked.train_data is not None:
        if getattr(checked, "fresh", False):
            raise UserError(
                "task.train_data: a task that draws fresh batches (fresh: true) "
                "never reads a fixed train split; allowed: fresh: false"
            )
        task.use_train_data(checked.train_data)
    if isinstance(checked, ClassificationParams) and checked.imbalance > 1:
        task.imbalance(checked.imbalance)
    if isinstance(checked, ClassificationParams) and checked.label_noise > 0:
        task.add_label_noise(checked.label_noise)
    if checked.keep_rows is not None:
        if getattr(checked, "fresh", False):
            raise UserError("task.keep_rows: a task with fresh: true has no fixed train split")
        task.keep_train_rows(checked.keep_rows)
    return task
