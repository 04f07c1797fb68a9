"""Modular arithmetic: ``c = f(a, b) mod p`` over the whole table, with label noise.

Each example is a tuple of operands in ``0..p-1`` and its label ``f(operands) mod p``:

>>> task = make_task("modular", op="add", p=5, train_fraction=0.6, seed=0)
>>> x, y = task.split("train")["x"], task.split("train")["y"]
>>> bool(((x[:, 0] + x[:, 1]) % 5 == y).all())
True

The model sees the operands as token ids, ``x: (n, n_terms)`` (an MLP one-hot encodes and
concatenates them, as in Gromov 2023), and predicts one of ``p`` classes.

Operations (``op``): ``add``, ``sub``, ``mul``, ``div`` (``a * b^-1``, ``b != 0``, prime ``p``),
the polynomials ``x2+y2``, ``x2+xy+y2``, ``x3+xy``, and ``poly``: any polynomial in ``a, b``
given as ``coefficients: [[i, j, c], ...]`` meaning ``sum c * a^i * b^j``. Many-term addition
``a1 + ... + ak`` has ``op: add, n_terms: k``; its table has ``p^k`` rows, of which
``n_examples`` are drawn without replacement when given (required above 10^7 rows).

Splits: a seeded permutation of the table puts ``round(train_fraction * N)`` rows in ``train``
and the rest in ``test``; they are disjoint, cover the table and do not depend on the machine
(NumPy's PCG64 stream). With ``noise = xi``, exactly ``round(xi * n_train)`` training labels
(the first of a second seeded shuffle) are replaced by a label drawn uniformly from the
``p - 1`` wrong residues (Doshi et al. 2024 draw from all ``p``; we make every corrupted
label wrong so that the corrupted fraction is exact). The splits ``train_clean`` and
``train_corrupted`` (with the corrupted labels as ``y`` and the true ones as ``y_true``, so the
objective reports ``train_corrupted/acc``, memorisation, and ``train_corrupted/true_acc``,
generalisation, as Doshi et al. 2024 do) are then added; test labels stay clean.

``n_train`` takes exactly that many training rows, the first of the same permutation, so the
training set with ``n_train = m`` holds the one with ``n_train = m' < m`` (what a capacity
search needs). ``random_labels`` replaces every training label by one drawn uniformly from
the ``p`` classes (Zhang et al. 2017's random labels; drawn once for the whole permutation, so
they too are nested in ``n_train``); test labels stay true.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator, model_validator

from learnscope.errors import UserError
from learnscope.number_theory import is_prime
from learnscope.tasks.base import ClassificationParams, Split, Task, make_task

__all__ = ["ModularParams", "ModularTask", "make_task", "is_prime"]

MAX_TABLE = 10**7
#: operand cells (rows x n_terms) a task may hold, at most (8 bytes each: 800 MB)
MAX_CELLS = 10**8


def table_rows(p: int, k: int) -> int:
    """``p ** k``, or ``MAX_CELLS + 1`` when it is larger (never computes a huge power).

    >>> table_rows(97, 2), table_rows(97, 10**23) > MAX_CELLS
    (9409, True)
    """
    rows = 1
    for _ in range(k):
        rows *= p
        if rows > MAX_CELLS:
            return MAX_CELLS + 1
    return rows


OPS = ("add", "sub", "mul", "div", "x2+y2", "x2+xy+y2", "x3+xy", "poly")


class ModularParams(ClassificationParams):
    op: Literal["add", "sub", "mul", "div", "x2+y2", "x2+xy+y2", "x3+xy", "poly"] = "add"
    p: int = Field(97, ge=2, le=10**6, description="the modulus")
    n_terms: int = Field(2, ge=2, le=1000, description="operands per example (many-term add)")
    train_fraction: float = Field(0.5, gt=0, lt=1)
    noise: float = Field(0.0, ge=0, lt=1, description="fraction of training labels corrupted")
    n_train: int | None = Field(
        None, ge=1, description="exactly this many training rows (instead of train_fraction)"
    )
    random_labels: bool = Field(
        False, description="every training label drawn uniformly from the p classes"
    )
    coefficients: list[tuple[int, int, int]] | None = Field(
        None, max_length=100, description="for op=poly: [[i, j, c], ...] meaning sum c * a^i * b^j"
    )
    n_examples: int | None = Field(
        None, ge=2, validate_default=True, description="rows drawn from a large table"
    )

    @field_validator("n_examples")
    @classmethod
    def _size(cls, n: int | None, info: ValidationInfo) -> int | None:
        """The table (or the sample of it) must fit: at most MAX_TABLE rows enumerated and
        MAX_CELLS operands held; ``p^n_terms`` is never computed past that."""
        if "p" not in info.data or "n_terms" not in info.data:
            return n  # already refused
        p, k = info.data["p"], info.data["n_terms"]
        size = table_rows(p, k)
        if n is None and size > MAX_TABLE:
            raise ValueError(
                f"the table has p^n_terms = {p}^{k} > {MAX_TABLE} rows; set n_examples to sample it"
            )
        if n is not None and n > size:
            raise ValueError(f"at most p^n_terms = {size}")
        cells = min(size, n or size) * k
        if cells > MAX_CELLS:
            raise ValueError(
                f"{cells} operands (rows x n_terms) need {cells * 8 / 1e9:.1f} GB; allowed: "
                f"at most {MAX_CELLS} operands"
            )
        return n

    @model_validator(mode="after")
    def _check(self) -> ModularParams:
        if self.op == "div" and not is_prime(self.p):
            raise ValueError(f"op 'div' needs a prime p (got p={self.p})")
        if self.random_labels and self.noise:
            raise ValueError("random_labels replaces every training label: noise must be 0")
        if self.noise and self.imbalance > 1:  # train_clean/train_corrupted: not subsampled
            raise ValueError("noise and imbalance cannot both be set")
        if self.n_terms > 2 and self.op != "add":
            raise ValueError(f"n_terms > 2 is only defined for op 'add' (got op={self.op!r})")
        if self.op == "poly":
            if not self.coefficients:
                raise ValueError("op 'poly' needs coefficients: [[i, j, c], ...]")
            if any(i < 0 or j < 0 for i, j, _ in self.coefficients):
                raise ValueError("poly exponents i, j must be >= 0")
        elif self.coefficients is not None:
            raise ValueError(f"coefficients are only used with op 'poly' (got op={self.op!r})")
        return self


def _label(op: str, x: np.ndarray, p: int, coefficients) -> np.ndarray:
    """``f(x) mod p`` for operand rows ``x: (n, k)`` (int64, values < p)."""
    a, b = x[:, 0], x[:, 1]
    if op == "add":
        return x.sum(axis=1) % p
    if op == "sub":
        return (a - b) % p
    if op == "mul":
        return (a * b) % p
    if op == "div":
        return (a * np.array([pow(int(v), -1, p) for v in range(1, p)])[b - 1]) % p
    if op == "x2+y2":
        return (a * a + b * b) % p
    if op == "x2+xy+y2":
        return (a * a + a * b + b * b) % p
    if op == "x3+xy":
        return (a * a % p * a + a * b) % p
    out = np.zeros(len(x), dtype=np.int64)
    for i, j, c in coefficients:  # op == "poly", reduced mod p at each product
        term = c % p * _power(a, i, p) % p * _power(b, j, p) % p
        out = (out + term) % p
    return out


def _power(a: np.ndarray, e: int, p: int) -> np.ndarray:
    """``a ** e mod p`` elementwise by repeated squaring (``log2 e`` products; ``p < 2^31``).

    >>> _power(np.array([2, 3]), 10**9, 7).tolist() == [pow(2, 10**9, 7), pow(3, 10**9, 7)]
    True
    """
    out, base = np.ones_like(a) % p, a % p
    while e:
        if e & 1:
            out = out * base % p
        base, e = base * base % p, e >> 1
    return out


class ModularTask(Task):
    """``f(a, b) mod p`` on the full table (or a sample of it), split and optionally corrupted."""

    name = "modular"
    Params = ModularParams
    kind = "classification"

    def __init__(self, params: ModularParams) -> None:
        super().__init__(params)
        p, k = params.p, params.n_terms
        rng = np.random.default_rng(params.seed)
        x = self._table(params, rng)
        y = _label(params.op, x, p, params.coefficients)

        n = len(x)
        order = rng.permutation(n)
        if params.n_train is not None:
            n_train = params.n_train
            if n_train > n - 1:
                raise UserError(
                    f"task.n_train: {n_train} leaves an empty test split; allowed: 1..{n - 1} "
                    f"(the table has {n} rows)"
                )
        else:
            n_train = round(params.train_fraction * n)
            if not 1 <= n_train <= n - 1:
                raise UserError(
                    f"task.train_fraction: {params.train_fraction} of {n} examples leaves an "
                    "empty train or test split; allowed: a fraction giving 1..N-1 training rows"
                )
        train, test = order[:n_train], order[n_train:]

        y_train = y[train].copy()
        if params.random_labels:  # drawn for the whole permutation: nested in n_train
            y_train = np.random.default_rng([params.seed, 2]).integers(0, p, size=n)[:n_train]
        corrupted = np.zeros(n_train, dtype=bool)
        n_bad = round(params.noise * n_train)
        if n_bad:
            noise_rng = np.random.default_rng([params.seed, 1])
            bad = noise_rng.permutation(n_train)[:n_bad]
            y_train[bad] = (y_train[bad] + noise_rng.integers(1, p, size=n_bad)) % p
            corrupted[bad] = True
        self.clean_train_labels = torch.from_numpy(y[train])
        self.corrupted = torch.from_numpy(corrupted)

        def split(rows, labels, **more) -> Split:
            tensors = {"x": torch.from_numpy(x[rows]), "y": torch.from_numpy(labels)}
            return Split(tensors | {k: torch.from_numpy(v) for k, v in more.items()})

        self.splits = {"train": split(train, y_train), "test": split(test, y[test])}
        if n_bad:  # the corrupted rows also carry their true labels: memorised or computed?
            self.splits["train_clean"] = split(train[~corrupted], y_train[~corrupted])
            self.splits["train_corrupted"] = split(
                train[corrupted], y_train[corrupted], y_true=y[train][corrupted]
            )
        self.p, self.n_terms = p, k

    @staticmethod
    def _table(params: ModularParams, rng: np.random.Generator) -> np.ndarray:
        """All operand tuples (``b != 0`` for div), or ``n_examples`` drawn without replacement."""
        p, k = params.p, params.n_terms
        size = table_rows(p, k)  # the limits are checked by ModularParams
        if size <= MAX_TABLE:
            index = np.arange(size, dtype=np.int64)
            if params.n_examples is not None:
                index = np.sort(rng.choice(size, params.n_examples, replace=False))
            digits = [(index // p**i) % p for i in reversed(range(k))]
            x = np.stack(digits, axis=1)
        else:  # too large to enumerate: draw tuples until n_examples distinct ones
            rows: set[tuple[int, ...]] = set()
            while len(rows) < params.n_examples:
                draw = rng.integers(0, p, size=(params.n_examples - len(rows), k))
                rows.update(map(tuple, draw.tolist()))
            x = np.array(sorted(rows), dtype=np.int64)
        if params.op == "div":
            x = x[x[:, 1] != 0]
        return x

    def model_dims(self) -> dict[str, int]:
        return {"n_inputs": self.n_terms, "vocab": self.p, "n_out": self.p}

    def score(self, predictions: torch.Tensor, split: str) -> float:
        y = self.split(split)["y"]
        return (predictions.to(y.device) == y).float().mean().item()
