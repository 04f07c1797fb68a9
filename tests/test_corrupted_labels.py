"""Doshi et al. (2024), "To grok or not to grok": the ``corrupted-labels`` recipe memorises its
corrupted labels and generalises; pruning its low-IPR neurons removes the memorisation and
keeps the generalisation (slow: the recipe trains ~1 minute)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.config import load_config
from learnscope.measures import holds, measure
from learnscope.runner import execute
from learnscope.store import Store


@pytest.mark.slow
def test_pruning_the_memorising_neurons_of_corrupted_labels(tmp_path):
    cfg = load_config("corrupted-labels")
    result = execute(cfg, Store(tmp_path))
    # its claims at seed 0: memorises the corrupted labels and generalises
    claims = [c for c in cfg.claims if c.kind == "reproduces"]
    unmet = [c.name for c in claims if not holds(c, measure(c, result.summary, []))]
    assert not unmet, (unmet, result.summary)
    res = CliRunner().invoke(app, ["prune-memorizing", result.run_id, "--runs-dir", tmp_path])
    assert res.exit_code == 0, res.output

    def row(metric):
        found = re.search(rf"{re.escape(metric)}\s*│\s*([\d.]+)\s*│\s*([\d.]+)", res.output)
        return float(found[1]), float(found[2])

    memorised, after = row("train_corrupted/acc")
    assert memorised >= 0.6 and after <= 0.05  # the memorisation is gone
    assert row("train_corrupted/true_acc")[1] >= 0.95  # replaced by the true function
    assert row("test/acc")[1] >= 0.99 and row("train_clean/acc")[1] >= 0.99
