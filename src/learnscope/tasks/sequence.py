"""What every sequence task shares: vocabulary, rows, splits, fresh sampling and scoring.

A sequence family (``multiplication``, ``addition``, ``parity``, ...) only says how to draw one
example: a ``question`` (the tokens after ``<bos>``, ending with its separator), an optional
chain of thought ``cot`` (ending with the family's answer marker), the ``answer`` tokens, and
the answer as a Python value. :class:`SequenceTask` turns examples into rows that every
sequence task shares, and that the objective and the GPT rely on::

    <bos> question [<pause> x n_pause] [cot] answer <eos> <pad> ...

- ``tokens: (n, T)`` int64, right-padded with ``<pad>`` (id 0); ``T`` is the longest row of all
  splits (and of the training distribution when ``fresh``), so every split has the same width;
- ``loss_mask: (n, T)`` bool, True at the training targets: cot, answer and ``<eos>`` (plus any
  question tokens a family marks as targets, e.g. the in-context ``z`` of ``icl_modular``),
  never ``<bos>``, the question, pauses or pads;
- ``answer_mask: (n, T)`` bool, True exactly at the answer tokens;
- ``prompt_len: (n,)`` int64, the tokens given before greedy decoding starts (bos, question,
  pauses).

Splits: every test split (``test`` and the family's out-of-distribution splits, e.g.
``test_len_20``) is drawn first, then ``train`` excluding every held-out question, all from one
NumPy PCG64 stream seeded by ``seed``, so the same seed gives the same rows on any machine.
Within a split the questions are distinct; a parameter asking for more distinct examples than
the task has is a :class:`~learnscope.errors.UserError` naming ``n_train`` or ``n_test``.
With ``fresh: true`` the trainer draws every batch with :meth:`SequenceTask.sample` (never a
held-out question) and ``train`` is a fixed sample of ``n_train`` rows for evaluation.

A family is a subclass of :class:`SequenceTask` with ``name``, ``Params`` (a subclass of
:class:`SequenceParams`) and the methods ``symbols``, ``draw`` and ``max_example_len``
(``test_splits`` and ``answer_marker`` when it has more splits or a chain of thought).

``score`` is exact match of the answer: the generated tokens up to the first ``<eos>`` must be
the answer (or, with a chain of thought, the tokens after its last answer marker must be, so
that a chain of a different length still scores on its answer).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from learnscope.errors import UserError
from learnscope.tasks.base import Split, Task, TaskParams

__all__ = [
    "SPECIALS",
    "Example",
    "LengthParams",
    "SequenceParams",
    "SequenceTask",
    "abacus_ids",
    "digits",
    "draw_numbers",
    "draw_lengths",
    "length_splits",
    "undigits",
]

SPECIALS = ("<pad>", "<bos>", "<eos>", "<pause>")
MAX_STALLS = 20  # draws in a row that add no new distinct example before giving up


class SequenceParams(TaskParams):
    """Parameters every sequence task takes."""

    n_train: int = Field(1000, ge=1, le=10**7, description="training examples (a fixed set)")
    n_test: int = Field(200, ge=1, le=10**7, description="examples in each test split")
    fresh: bool = Field(False, description="draw a fresh training batch at every step")
    n_pause: int = Field(0, ge=0, le=1000, description="<pause> tokens after the question")
    positions: Literal["none", "coupled", "abacus"] = Field(
        "none",
        description="position ids the rows carry (pos_ids) for a GPT with model.pos coupled or "
        "abacus: coupled (the family's: a digit's significance), abacus (digit runs)",
    )


class LengthParams(SequenceParams):
    """Parameters of a task trained on lengths ``lo..hi`` and tested on longer ones."""

    lo: int = Field(1, ge=1, le=1000, description="shortest training length")
    hi: int = Field(10, ge=1, le=1000, description="longest training length")
    test_lengths: list[int] = Field(
        [15, 20],
        max_length=100,
        description="lengths of the out-of-distribution splits test_len_{n}, > hi, <= 1000",
    )

    @model_validator(mode="after")
    def _check_lengths(self) -> LengthParams:
        if self.lo > self.hi:
            raise ValueError(f"lo must be <= hi (got lo={self.lo}, hi={self.hi})")
        short = [n for n in self.test_lengths if n <= self.hi]
        if short:
            raise ValueError(f"test_lengths must all be > hi={self.hi} (got {short})")
        if any(n > 1000 for n in self.test_lengths):
            raise ValueError("test_lengths must all be <= 1000")
        if len(set(self.test_lengths)) != len(self.test_lengths):
            raise ValueError(f"test_lengths must be distinct (got {self.test_lengths})")
        return self


def draw_lengths(rng: np.random.Generator, n: int, split: str, params: LengthParams) -> list[int]:
    """Lengths of ``n`` examples of ``split``: uniform in ``lo..hi``; ``k`` for ``test_len_k``."""
    if split.startswith("test_len_"):
        return [int(split.removeprefix("test_len_"))] * n
    return rng.integers(params.lo, params.hi + 1, size=n).tolist()


def length_splits(params: LengthParams) -> list[str]:
    """``test`` (lengths ``lo..hi``) then ``test_len_{n}`` for each test length."""
    return ["test", *(f"test_len_{n}" for n in params.test_lengths)]


def draw_numbers(rng: np.random.Generator, n: int, n_digits: int) -> list[int]:
    """``n`` uniform integers with exactly ``n_digits`` digits (any size: no int64 overflow)."""
    first = rng.integers(1 if n_digits > 1 else 0, 10, size=(n, 1))
    rest = rng.integers(0, 10, size=(n, n_digits - 1))
    return [int("".join(map(str, row))) for row in np.concatenate([first, rest], 1).tolist()]


@dataclass(frozen=True)
class Example:
    """One example: tokens as strings, the answer as a Python value.

    ``targets`` are indices into ``question`` that are training targets too (default none).
    """

    question: tuple[str, ...]
    answer: tuple[str, ...]
    value: Any
    cot: tuple[str, ...] = ()
    targets: tuple[int, ...] = ()
    #: coupled position ids of the question's then the answer's tokens (Cho et al. 2024: the
    #: digits of one significance share an id; 0 for a token of none), from the families that
    #: define them; empty otherwise
    positions: tuple[int, ...] = ()


def digits(x: int, width: int, reverse: bool = False) -> list[str]:
    """``x`` as ``width`` decimal digit tokens, zero-padded; least significant first if ``reverse``.

    >>> digits(42, 4), digits(42, 4, reverse=True)
    (['0', '0', '4', '2'], ['2', '4', '0', '0'])
    """
    out = list(str(x).zfill(width))
    if len(out) != width:
        raise ValueError(f"{x} has more than {width} digits")
    return out[::-1] if reverse else out


def undigits(tokens: list[str] | tuple[str, ...], reverse: bool = False) -> int:
    """Inverse of :func:`digits`.

    >>> undigits(['2', '4', '0', '0'], reverse=True)
    42
    """
    return int("".join(reversed(tokens) if reverse else tokens))


class SequenceTask(Task, register=False):
    """Base of the sequence families; a family implements the four abstract methods."""

    kind = "sequence"
    Params: ClassVar[type[SequenceParams]] = SequenceParams

    # -- what a family defines ----------------------------------------------------------
    @abc.abstractmethod
    def symbols(self) -> list[str]:
        """The family's tokens (after the specials ``<pad> <bos> <eos> <pause>``)."""

    @abc.abstractmethod
    def draw(self, rng: np.random.Generator, n: int, split: str) -> list[Example]:
        """``n`` examples of ``split`` (``train`` or one of :meth:`test_splits`)."""

    @abc.abstractmethod
    def max_example_len(self) -> int:
        """Upper bound of ``len(question) + len(cot) + len(answer)`` for training examples."""

    def test_splits(self) -> list[str]:
        """Held-out splits, drawn before ``train`` and excluded from it."""
        return ["test"]

    def answer_marker(self) -> str | None:
        """The token just before the answer when a chain of thought precedes it, else None."""
        return None

    # -- construction ---------------------------------------------------------------------
    def __init__(self, params: SequenceParams) -> None:
        super().__init__(params)
        self.vocab: list[str] = [*SPECIALS, *self.symbols()]
        if len(set(self.vocab)) != len(self.vocab):
            raise ValueError(f"{self.name}: duplicate tokens in the vocabulary {self.vocab}")
        self.token_id = {t: i for i, t in enumerate(self.vocab)}
        self.pad_id, self.bos_id, self.eos_id, self.pause_id = range(4)

        rng = np.random.default_rng(params.seed)
        examples: dict[str, list[Example]] = {}
        held_out: set[tuple[str, ...]] = set()
        for name in self.test_splits():
            examples[name] = self._distinct(rng, params.n_test, name, held_out, "n_test")
            held_out.update(e.question for e in examples[name])
        train = self._distinct(rng, params.n_train, "train", held_out, "n_train")
        self.held_out = frozenset(held_out)

        longest = max(self._row_len(e) for split in (train, *examples.values()) for e in split)
        if params.fresh:
            longest = max(longest, self.max_example_len() + 2 + params.n_pause)
        self.block_size = longest
        self._answers = {"train": [e.value for e in train]}
        self._answers.update({k: [e.value for e in v] for k, v in examples.items()})
        if params.positions == "coupled" and not all(e.positions for e in train):
            raise UserError(
                f"task.positions: the {self.name} task has no coupled position ids; allowed: "
                "none, abacus"
            )
        if params.positions == "abacus" and not set("0123456789") <= set(self.vocab):
            raise UserError(f"task.positions: abacus needs digit tokens ({self.name} has none)")
        self.splits = {"train": self._split(train)}
        self.splits.update({k: self._split(v) for k, v in examples.items()})

    def _distinct(
        self, rng: np.random.Generator, n: int, split: str, exclude: set, field: str
    ) -> list[Example]:
        """``n`` examples of ``split`` with distinct questions, none in ``exclude``."""
        out: list[Example] = []
        seen: set[tuple[str, ...]] = set()
        stalls = 0
        while len(out) < n:
            before = len(out)
            for e in self.draw(rng, max(2 * (n - len(out)), 64), split):
                if e.question not in seen and e.question not in exclude:
                    seen.add(e.question)
                    out.append(e)
                    if len(out) == n:
                        break
            stalls = stalls + 1 if len(out) == before else 0
            if stalls >= MAX_STALLS:
                raise UserError(
                    f"task.{field}: split {split!r} has only about {len(out)} distinct examples "
                    f"outside the other splits (asked for {n}); ask for fewer examples or make "
                    "the task larger"
                )
        return out

    def _row_len(self, e: Example) -> int:
        return 2 + len(e.question) + self.params.n_pause + len(e.cot) + len(e.answer)

    def _split(self, examples: list[Example]) -> Split:
        return Split(self.rows(examples))

    def rows(self, examples: list[Example]) -> dict[str, torch.Tensor]:
        """The contract tensors of ``examples``, padded to ``block_size``."""
        T, pauses = self.block_size, [self.pause_id] * self.params.n_pause
        ids, bounds = [], []  # bounds: prompt end, answer start, eos position
        for e in examples:
            prompt = [self.bos_id, *self.encode(e.question), *pauses]
            row = prompt + self.encode(e.cot) + self.encode(e.answer) + [self.eos_id]
            if len(row) > T:
                raise ValueError(f"{self.name}: a row of {len(row)} tokens > block size {T}")
            ids.append(row)
            bounds.append((len(prompt), len(prompt) + len(e.cot), len(row) - 1))
        p, a, eos = np.array(bounds, dtype=np.int64).reshape(-1, 3).T[:, :, None]
        t = np.arange(T)
        tokens = np.zeros((len(ids), T), dtype=np.int64)
        tokens[t < eos + 1] = np.fromiter((i for row in ids for i in row), dtype=np.int64)
        loss_mask = (t >= p) & (t <= eos)
        for i, e in enumerate(examples):
            loss_mask[i, [1 + j for j in e.targets]] = True
        out = {
            "tokens": torch.from_numpy(tokens),
            "loss_mask": torch.from_numpy(loss_mask),
            "answer_mask": torch.from_numpy((t >= a) & (t < eos)),
            "prompt_len": torch.from_numpy(p[:, 0].copy()),
        }
        if self.params.positions == "coupled":
            out["pos_ids"] = torch.from_numpy(self._coupled(examples, T))
        elif self.params.positions == "abacus":
            out["pos_ids"] = abacus_ids(out["tokens"], [self.token_id[d] for d in "0123456789"])
        return out

    def _coupled(self, examples: list[Example], T: int) -> np.ndarray:
        """``pos_ids: (n, T)``: 0 at ``<bos>``, pauses and the chain of thought, the family's
        ids at the question and answer tokens, and one past the answer's largest at ``<eos>``."""
        ids = np.zeros((len(examples), T), dtype=np.int64)
        for i, e in enumerate(examples):
            q = len(e.question)
            answer = list(e.positions[q:])
            row = [0, *e.positions[:q], *[0] * (self.params.n_pause + len(e.cot)), *answer]
            ids[i, : len(row) + 1] = [*row, max(answer, default=0) + 1]
        return ids

    # -- the contract -----------------------------------------------------------------------
    def encode(self, text_tokens: list[str] | tuple[str, ...]) -> list[int]:
        try:
            return [self.token_id[t] for t in text_tokens]
        except KeyError as err:
            msg = f"{self.name}: token {err.args[0]!r} is not in the vocabulary"
            raise ValueError(msg) from None

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        """The tokens of ``ids`` joined by spaces, pads left out."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return " ".join(self.vocab[i] for i in ids if i != self.pad_id)

    def model_dims(self) -> dict[str, int]:
        return {"vocab_size": len(self.vocab), "block_size": self.block_size}

    def answers(self, split: str) -> list:
        """The ground-truth answers of ``split`` as Python values."""
        self.split(split)
        return self._answers[split]

    def sample(self, n: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """A training batch of ``n`` rows: fresh draws when ``fresh``, else rows of ``train``.

        Fresh draws never repeat a held-out question; ``generator`` (a CPU torch generator)
        seeds them, so a seeded trainer sees the same batches on any machine.
        """
        if not self.params.fresh:
            train = self.split("train")
            return train.rows(torch.randint(len(train), (n,), generator=generator))
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        rng = np.random.default_rng(seed)
        out: list[Example] = []
        while len(out) < n:
            draws = self.draw(rng, n - len(out), "train")
            out += [e for e in draws if e.question not in self.held_out]
        return self.rows(out)

    def score(self, predictions: torch.Tensor, split: str) -> float:
        """Fraction of rows whose generated answer is exactly right (see the module doc)."""
        return self.row_scores(predictions, self.split(split).tensors).double().mean().item()

    def row_scores(
        self, predictions: torch.Tensor, rows: dict[str, torch.Tensor], partial: bool = False
    ) -> torch.Tensor:
        """Per-row rewards ``(n,)`` float of ``predictions: (n, T)`` against ``rows`` (the
        contract tensors of the same examples): 1.0 for an exactly right answer, else 0.0.

        ``partial``: the fraction of the row's generated targets (``loss_mask`` after the
        prompt: chain of thought, answer, ``<eos>``) that equal the true token at their
        position, 1.0 exactly when the row matches its target tokens (a partial score for
        reinforcement fine-tuning; a chain of another length scores by position).
        """
        tokens, prompt_len = rows["tokens"].cpu(), rows["prompt_len"].cpu()
        pred = predictions.to("cpu", torch.int64)
        if pred.shape != tokens.shape:
            raise ValueError(f"predictions {tuple(pred.shape)} != rows {tuple(tokens.shape)}")
        generated = torch.arange(tokens.shape[1]) >= prompt_len[:, None]
        target = rows["loss_mask"].cpu() & generated
        if partial:
            hits = ((pred == tokens) & target).sum(1)
            return hits.float() / target.sum(1).clamp(min=1).float()
        exact = ((pred == tokens) | ~target).all(1)
        marker = self.answer_marker()
        if marker is None:  # the answer sits at fixed positions: exact match is the score
            return exact.float()
        marker_id, answer_mask = self.token_id[marker], rows["answer_mask"].cpu()
        correct = exact.clone()
        for i in (~exact).nonzero().flatten().tolist():  # CoT of another length: parse
            out = pred[i, prompt_len[i] :].tolist()
            if self.eos_id not in out:
                continue
            out = out[: out.index(self.eos_id)]
            if marker_id in out:
                out = out[len(out) - out[::-1].index(marker_id) :]
            correct[i] = out == tokens[i][answer_mask[i]].tolist()
        return correct.float()


def abacus_ids(tokens: torch.Tensor, digit_ids: list[int]) -> torch.Tensor:
    """Abacus position ids (McLeish et al. 2024): ``1, 2, 3, ...`` along each maximal run of
    digit tokens, counted from the run's first digit, and 0 at every other token.

    >>> abacus_ids(torch.tensor([[9, 1, 2, 7, 3, 8, 0]]), [1, 2, 3]).tolist()
    [[0, 1, 2, 0, 1, 0, 0]]
    """
    is_digit = torch.isin(tokens, torch.tensor(digit_ids, device=tokens.device))
    t = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
    # the position of the last non-digit at or before each token (-1: none yet)
    last_other = torch.where(is_digit, -1, t).cummax(dim=1).values
    return torch.where(is_digit, t - last_other, 0)
