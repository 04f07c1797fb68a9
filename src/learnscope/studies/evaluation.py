"""Contamination-free evaluation on freshly generated task instances (``learnscope eval``).

Every evaluation draws new instances of a task from a seed (with ``--fresh`` the seed is the
date, ``YYYYMMDD``, printed so that the draw can be repeated), so no instance can have leaked
into anyone's training data: the idea of LiveBench (White et al. 2024) applied to algorithmic
tasks with exact answers.

**Difficulty levels.** A task with lengths (``lo``, ``hi``, ``test_lengths``: addition,
parity) is scored per length ``L`` in ``lo..hi`` and each test length (instances drawn as the
task's ``test_len_L`` split); ``--level n_digits,m_digits=1,2,3`` scores one level per value,
the named task parameters set to it (multiplication by digits); otherwise one level (``all``)
drawn like the task's ``test`` split.

**Scoring.** A learnscope run (a GPT trained on the task) decodes greedily with its KV cache
(:func:`~learnscope.train.objectives.greedy_decode`) and is scored exactly by the task's own
rule (:meth:`~learnscope.tasks.sequence.SequenceTask.correct`). A Hugging Face causal LM gets
a few-shot prompt and its completion is parsed (:mod:`learnscope.hf.prompts`).

**Confidence interval.** The Wilson score interval at 95 % (``z = 1.96``): with ``k`` right out
of ``n``, ``p = k / n``,

    centre = (p + z^2 / 2n) / (1 + z^2 / n),
    half = z sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n),

which stays inside ``[0, 1]`` and is not empty at ``k = 0`` or ``k = n`` (Wilson 1927).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from learnscope.errors import UserError
from learnscope.runner import record as record_run
from learnscope.tasks import TASKS, make_task
from learnscope.tasks.sequence import Example, SequenceTask

Z95 = 1.959963984540054


def fresh_seed(day: dt.date | None = None) -> int:
    """The seed of ``--fresh``: the (UTC) date as ``YYYYMMDD``.

    >>> fresh_seed(dt.date(2026, 11, 30))
    20261130
    """
    day = day or dt.datetime.now(dt.timezone.utc).date()
    return day.year * 10000 + day.month * 100 + day.day


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of ``k`` successes in ``n`` trials (see the module docstring).

    >>> [round(x, 4) for x in wilson(0, 10)], [round(x, 4) for x in wilson(5, 10)]
    ([0.0, 0.2775], [0.2366, 0.7634])
    """
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact ends: no rounding past p
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


@dataclass
class Level:
    """One difficulty level: its value, the task's parameters there, the split drawn."""

    value: int
    params: dict[str, Any]
    split: str


@dataclass
class LevelResult:
    value: int
    n: int = 0
    correct: int = 0
    skipped: str = ""  # why no instance of the level could be scored

    @property
    def acc(self) -> float:
        return self.correct / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.correct, self.n)


def levels(task_name: str, params: dict[str, Any], level: str | None) -> tuple[str, list[Level]]:
    """The axis name and the levels of a task (see the module docstring)."""
    allowed = sorted(k for k, cls in TASKS.items() if issubclass(cls, SequenceTask))
    if task_name not in allowed:
        raise UserError(
            f"--task: {task_name!r} has no generator of fresh instances; allowed: "
            + ", ".join(allowed)
        )
    if level:
        keys, sep, values = level.partition("=")
        names = [k.strip() for k in keys.split(",") if k.strip()]
        try:
            numbers = [int(v) for v in values.split(",")] if sep else []
        except ValueError:
            numbers = []
        if not names or not numbers:
            raise UserError(f"--level: {level!r}; expected PARAM[,PARAM]=V1,V2,... (integers)")
        out = [Level(v, {**params, **dict.fromkeys(names, v)}, "test") for v in numbers]
        return ",".join(names), out
    task = make_task(task_name, **{**params, "n_train": 1, "n_test": 1})
    p = task.params
    if all(hasattr(p, a) for a in ("lo", "hi", "test_lengths")):
        lengths = sorted({*range(p.lo, p.hi + 1), *p.test_lengths})
        return "length", [Level(L, params, f"test_len_{L}") for L in lengths]
    return "all", [Level(0, params, "test")]


def sequence_task(name: str, params: dict[str, Any]) -> SequenceTask:
    """The task ``name`` built with few rows (``eval`` draws its own); sequence tasks only."""
    small = {**params, "n_train": min(params.get("n_train", 8), 8), "n_test": 1}
    try:
        task = make_task(name, **small)
    except UserError as err:
        raise UserError(str(err).replace("task.", "--params ")) from None
    if not isinstance(task, SequenceTask):
        raise UserError(f"--task: {name!r} is not a sequence task; eval prompts sequence tasks")
    return task


@torch.no_grad()
def score_gpt(model: torch.nn.Module, task: SequenceTask, examples: list[Example]) -> list[bool]:
    """Greedy decoding with the KV cache, scored by the task's exact rule. A ``ValueError``
    when the rows do not fit the task's (the model's) block size."""
    return score_rows(model, task, task.rows(examples))


@torch.no_grad()
def score_rows(
    model: torch.nn.Module,
    task: SequenceTask,
    rows: dict[str, torch.Tensor],
) -> list[bool]:
    """:func:`score_gpt` on rows already built (``tokens``, ``prompt_len``, ``loss_mask``,
    ``answer_mask``)."""
    from learnscope.train.objectives import EVAL_ROWS, greedy_decode

    model.eval()
    out: list[bool] = []
    for start in range(0, len(rows["tokens"]), EVAL_ROWS):
        part = {k: v[start : start + EVAL_ROWS] for k, v in rows.items()}
        pred = greedy_decode(model, part["tokens"], part["prompt_len"], task.eos_id, cache=True)
        out += task.row_scores(pred, part).bool().tolist()
    return out


@torch.no_grad()
def score_hf(
    model: torch.nn.Module,
    tokenizer: Any,
    examples: list[Example],
    shots: list[Example],
    batch: int = 16,
) -> tuple[list[bool], list[str]]:
    """Few-shot prompts (:func:`learnscope.hf.prompts.few_shot`), greedy generation, parsed
    answers: per instance whether it is right, and the completions."""
    from learnscope.hf.prompts import few_shot, is_correct, render

    pairs = [(s.question, s.answer) for s in shots]
    prompts = [few_shot(pairs, e.question) for e in examples]
    budget = max(len(tokenizer(render(e.answer))["input_ids"]) for e in examples) + 4
    tokenizer.padding_side = "left"  # generation continues every row at the same position
    completions: list[str] = []
    for start in range(0, len(prompts), batch):
        enc = tokenizer(prompts[start : start + batch], return_tensors="pt", padding=True)
        out = model.generate(
            **enc,
            max_new_tokens=budget,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        new = out[:, enc["input_ids"].shape[1] :]
        completions += tokenizer.batch_decode(new, skip_special_tokens=True)
    return [is_correct(c, e.answer) for c, e in zip(completions, examples)], completions


def evaluate_levels(
    task_name: str,
    params: dict[str, Any],
    level: str | None,
    n: int,
    seed: int,
    score,
) -> tuple[str, list[LevelResult]]:
    """Draw ``n`` instances per level from one generator seeded by ``seed`` (levels in order)
    and score them with ``score(task, examples) -> list[bool]``; a level whose task cannot be
    built or whose rows do not fit the model is skipped, with the reason."""
    axis, found = levels(task_name, params, level)
    rng = np.random.default_rng(seed)
    results = []
    for lv in found:
        result = LevelResult(lv.value)
        try:
            task = sequence_task(task_name, lv.params)
            examples = task.draw(rng, n, lv.split)  # fresh draws, repeats allowed
            right = score(task, examples)
        except (UserError, ValueError) as err:
            result.skipped = str(err).splitlines()[0]
        else:
            result.n, result.correct = len(right), sum(right)
        results.append(result)
    return axis, results


def record(store, name: str, config: dict[str, Any], axis: str, results: list[LevelResult]) -> str:
    """The evaluation as a run of ``store`` (config ``kind: eval``), stored through
    :func:`learnscope.runner.record` (locked, events, summary): per level ``value`` the
    metrics ``eval/acc``, ``eval/acc_lo``, ``eval/acc_hi``, ``eval/n`` at step ``value``; the
    summary holds the accuracy over all levels (``acc``) and per level."""
    scored = [r for r in results if r.n]
    total, right = sum(r.n for r in scored), sum(r.correct for r in scored)
    rows = []
    for r in scored:
        lo, hi = r.interval
        rows.append(
            (r.value, {"eval/acc": r.acc, "eval/acc_lo": lo, "eval/acc_hi": hi, "eval/n": r.n})
        )
    summary = {
        "acc": right / total if total else None,
        "n": total,
        "seed": config.get("seed"),
        "axis": axis,
        "levels": {str(r.value): (r.acc if r.n else None) for r in results},
    }
    return record_run(store, name, {**config, "kind": "eval", "axis": axis}, rows, summary).run_id
