from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import torch

from learnscope.errors import UserError
from learnscope.store import Store
from learnscope.studies.evaluation import (
    evaluate_levels,
    fresh_seed,
    levels,
    record,
    score_gpt,
    sequence_task,
    wilson,
)


def test_wilson_interval_closed_form():
    # n = 100, k = 50: centre 0.5, half = z sqrt(0.0025 + z^2/40000) / (1 + z^2/100)
    z = 1.959963984540054
    half = z * np.sqrt(0.0025 + z * z / 40000) / (1 + z * z / 100)
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.5 - half) and hi == pytest.approx(0.5 + half)
    assert wilson(0, 20)[0] == 0.0 and 0.1 < wilson(0, 20)[1] < 0.2
    assert wilson(20, 20)[1] == 1.0 and 0.8 < wilson(20, 20)[0] < 0.9
    for n in range(1, 400):  # the ends are exact, the interval holds p
        assert wilson(0, n)[0] == 0.0 and wilson(n, n)[1] == 1.0
        lo, hi = wilson(n // 3, n)
        assert lo <= (n // 3) / n <= hi


def test_fresh_seed_differs_by_date():
    assert fresh_seed(dt.date(2026, 11, 30)) == 20261130
    assert fresh_seed(dt.date(2026, 12, 1)) != fresh_seed(dt.date(2026, 11, 30))


def test_levels_by_length_by_parameter_or_one():
    axis, found = levels("addition", {"lo": 1, "hi": 2, "test_lengths": [4]}, None)
    assert axis == "length" and [lv.value for lv in found] == [1, 2, 4]
    assert found[2].split == "test_len_4"
    axis, found = levels("multiplication", {}, "n_digits,m_digits=1,2")
    assert axis == "n_digits,m_digits" and found[1].params == {"n_digits": 2, "m_digits": 2}
    assert levels("lis", {}, None)[0] == "all"
    with pytest.raises(UserError, match="'modular_seq' has no generator.*allowed: addition"):
        levels("modular_seq", {}, None)
    with pytest.raises(UserError, match="--level"):
        levels("multiplication", {}, "n_digits=one")


def test_the_same_seed_draws_the_same_instances():
    seen = []

    def score(task, examples):
        seen.append([e.question for e in examples])
        return [True] * len(examples)

    for _ in range(2):
        evaluate_levels("multiplication", {}, "n_digits,m_digits=1,2", 5, 7, score)
    assert seen[:2] == seen[2:]
    evaluate_levels("multiplication", {}, "n_digits,m_digits=1,2", 5, 8, score)
    assert seen[4:] != seen[:2]


def test_a_perfect_decoder_scores_one_and_a_wrong_one_zero():
    """A GPT stand-in that emits the right next token: score_gpt's decoding and scoring."""
    task = sequence_task("multiplication", {"n_digits": 2, "m_digits": 1})
    examples = task.draw(np.random.default_rng(0), 6, "test")
    rows = task.rows(examples)

    class Oracle(torch.nn.Module):
        """Row i's logits favour row i's true next token (shifted by ``shift``)."""

        def __init__(self, shift: int = 0):
            super().__init__()
            self.shift = shift

        def forward(self, tokens):
            t = tokens.shape[1]
            target = (rows["tokens"][:, 1 : t + 1] + self.shift) % len(task.vocab)
            return torch.nn.functional.one_hot(target, len(task.vocab)).float()

    assert score_gpt(Oracle(), task, examples) == [True] * 6
    assert score_gpt(Oracle(shift=1), task, examples) == [False] * 6


def test_record_stores_an_eval_run(tmp_path):
    from learnscope.studies.evaluation import LevelResult

    results = [LevelResult(1, 10, 9), LevelResult(2, 10, 3), LevelResult(3, skipped="too long")]
    store = Store(tmp_path)
    run_id = record(store, "eval-x", {"seed": 5}, "n_digits", results)
    rec = store.run(run_id)
    assert rec["config"]["kind"] == "eval" and rec["status"] == "finished"
    assert rec["summary"]["acc"] == pytest.approx(0.6) and rec["summary"]["levels"]["3"] is None
    table = store.metric_table(run_id)
    assert table.loc[2, "eval/acc"] == pytest.approx(0.3)
    assert table.loc[1, "eval/acc_lo"] == pytest.approx(wilson(9, 10)[0])


KNOWN = {
    "name": "known",
    "seed": 0,
    "task": {
        "name": "addition",
        "lo": 1,
        "hi": 1,
        "test_lengths": [2],
        "n_train": 60,
        "n_test": 30,
    },
    "model": {"kind": "gpt", "n_layer": 1, "n_head": 2, "d_model": 32},
    "train": {"lr": 0.01, "steps": 150, "eval_every": 150, "batch_size": 32},
}


def test_a_trained_checkpoint_scores_its_known_accuracy():
    """eval's decoding and scoring give, on a split's own rows, the accuracy the trainer
    measured on them; on 400 fresh instances, an interval that holds the exact accuracy over
    all 100 one-digit sums."""
    from learnscope.config import validate_config
    from learnscope.runner import build
    from learnscope.studies.evaluation import score_rows

    trainer = build(validate_config(KNOWN))
    known = trainer.fit()
    assert 0.2 < known["test/acc"] < 1.0  # partly learnt: a score that could go wrong
    task = trainer.task
    for split in ("train", "test", "test_len_2"):
        rows = task.split(split).tensors
        right = score_rows(trainer.model, task, rows)
        assert sum(right) / len(right) == pytest.approx(known[f"{split}/acc"])
    # the whole distribution of 1-digit sums, enumerated: the exact accuracy eval estimates
    table = [task.example(a, b, 1) for a in range(10) for b in range(10)]
    exact = sum(score_gpt(trainer.model, task, table)) / 100
    right = score_gpt(trainer.model, task, task.draw(np.random.default_rng(5), 400, "train"))
    lo, hi = wilson(sum(right), len(right))
    assert lo <= exact <= hi


def test_report_draws_all_right_and_all_wrong_levels(tmp_path):
    from learnscope.report import build_report
    from learnscope.studies.evaluation import LevelResult

    store = Store(tmp_path)
    results = [LevelResult(1, 200, 200), LevelResult(2, 200, 0), LevelResult(3, 7, 3)]
    a = record(store, "eval-a", {"seed": 1, "model": {"ref": "a"}}, "length", results)
    b = record(store, "eval-b", {"seed": 1, "model": {"ref": "b"}}, "length", results[:2])
    report = build_report(store, [a, b], tmp_path / "r.html")
    assert "eval-difficulty" in report.panels and "loss" not in report.panels
