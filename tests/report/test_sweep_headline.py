"""A sweep shows the result it exists for: its spec's ``show.headline`` (any summary key, e.g.
``slingshots``) leads ``sweep show`` and the sweep's report (a pivot table and a phase diagram;
parallel coordinates of every member; the run cards folded below), every summary key is a
valid ``--value``, and an event is labelled by what happened."""

from __future__ import annotations

import pytest
import yaml

from learnscope.events import Event, label
from learnscope.report import build_report
from learnscope.store import Store
from tests.cli.test_output import invoke


@pytest.fixture
def swept(tiny_config, tmp_path):
    spec = {
        "name": "tiny-headline",
        "config": tiny_config,
        "grid": {"train.lr": [0.001, 0.01], "train.weight_decay": [0.0, 1.0]},
        "show": {"pivot": ["lr", "weight_decay"], "headline": "train_loss"},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    runs = tmp_path / "runs"
    res = invoke("sweep", "run", path, "--runs-dir", runs, "-q")
    assert res.exit_code == 0, res.output
    return runs, res.output


def test_sweep_show_leads_with_the_headline_and_takes_any_summary_key(swept):
    runs, output = swept
    first = output.index("train_loss (mean over")
    assert first < output.index("test_acc (mean over")  # the headline, then the values
    res = invoke("sweep", "show", "last", "--value", "steps_per_s", "--runs-dir", runs)
    assert res.exit_code == 0 and "steps_per_s (mean over" in res.output, res.output
    res = invoke("sweep", "show", "last", "--value", "nope", "--runs-dir", runs)
    assert res.exit_code == 2 and "unknown column 'nope'" in res.output


def test_the_sweep_report_leads_with_the_headline(swept, tmp_path):
    runs, _ = swept
    store = Store(runs)
    sweep_id = store.sweeps()["id"].iloc[-1]
    rep = build_report(store, [], tmp_path / "r.html", sweep=sweep_id)
    assert rep.panels[0] == "headline" and "parallel" in rep.panels
    assert rep.panels.index("parallel") < rep.panels.index("summary")
    page = (tmp_path / "r.html").read_text()
    assert "Headline: train_loss" in page and "lr \\ weight_decay" in page  # as sweep show
    assert "<details><summary>the 4 runs, one card each</summary>" in page


def test_a_bad_headline_is_refused_before_training(tiny_config, tmp_path):
    spec = {"config": tiny_config, "grid": {"train.lr": [0.01]}, "show": {"headline": [1, 2]}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    res = invoke("sweep", "run", path, "--runs-dir", tmp_path / "runs")
    assert res.exit_code == 2 and "sweep.show.headline" in res.output


def test_an_event_is_labelled_by_what_happened():
    fitted = Event("grokking", 56, {"train_step": 56, "test_step": None})
    grokked = Event("grokking", 80, {"train_step": 15, "test_step": 80, "ratio": 5.3})
    assert label(fitted) == "fitted" and label(grokked) == "grokking"
