"""Runs side by side and labelled: ``learnscope tag``, ``note``, ``ls --tag``, ``show`` and
``compare`` (only the differing config, both summaries, one metric over training, ``--html``)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from matplotlib import image as mpimg

from learnscope.store import Store
from tests.cli.test_output import fake_run, invoke


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "runs")
    fake_run(store, "base", wd=0.0, summary={"test_acc": 0.9, "steps": 10})
    fake_run(store, "decayed", wd=1.0, summary={"test_acc": 0.5, "steps": 10})
    return store


def ids(store):
    return list(store.runs()["id"])


def test_tags_and_notes_are_stored_and_shown(store):
    a, b = ids(store)
    res = invoke("tag", a, "baseline", "wd0", "baseline", "--runs-dir", store.root)
    assert res.exit_code == 0 and "tags baseline, wd0" in res.output  # a repeated tag once
    assert invoke("tag", b, "wd1", "--runs-dir", store.root).exit_code == 0
    assert invoke("note", a, "the [bold]reference[/] run", "--runs-dir", store.root).exit_code == 0
    assert store.labels(a) == {"tag": ["baseline", "wd0"], "note": ["the [bold]reference[/] run"]}
    listed = invoke("ls", "--tag", "baseline", "--runs-dir", store.root).output
    assert a in listed and b not in listed
    assert "no run has the tag(s) nothing" in invoke("ls", "--tag", "nothing", "--runs-dir",
                                                    store.root).output  # fmt: skip
    shown = invoke("show", a, "--runs-dir", store.root).output
    assert "tags: baseline, wd0" in shown and "note: the [bold]reference[/] run" in shown
    res = invoke("tag", a, "wd0", "--remove", "--runs-dir", store.root)
    assert res.exit_code == 0 and store.labels(a)["tag"] == ["baseline"]
    assert list(store.runs()["tags"]) == [["baseline"], ["wd1"]]


@pytest.mark.parametrize(
    "args, message",
    [
        (["tag", "RUN", "two words"], "is not a tag"),
        (["tag", "nope", "x"], "matches no run"),
        (["note", "RUN", " "], "note: give 1 to 2000 characters"),
        (["compare", "RUN"], "at least two runs"),
        (["compare", "RUN", "RUN"], "one run"),
        (["compare", "RUN", "OTHER", "--metric", "test/nope"], "no run logged 'test/nope'"),
    ],
)
def test_bad_labels_and_comparisons_are_refused(store, args, message, tmp_path):
    a, b = ids(store)
    args = [{"RUN": a, "OTHER": b}.get(x, x) for x in args]
    res = invoke(*args, "--runs-dir", store.root)
    assert res.exit_code == 2 and message in res.output, res.output
    assert store.labels(a) == {"tag": [], "note": []}


def test_compare_prints_what_differs_the_summaries_and_a_metric(store, tmp_path):
    a, b = ids(store)
    store.tag(b, ["decay"])
    res = invoke("compare", a, b, "--runs-dir", store.root, "--html", tmp_path / "c.html")
    assert res.exit_code == 0, res.output
    out = res.output
    differs = out[out.index("differs") : out.index("summary")]
    assert "train.weight_decay" in differs and "name" in differs and "decay" in differs
    assert "train.lr" not in differs and "task.p" not in differs  # the same in both: left out
    assert re.search(r"test_acc\s*│\s*0\.9\s*│\s*0\.5", out)
    assert "test/acc over training" in out and re.search(r"10\s*│\s*0\.9\s*│\s*0\.9", out)
    page = (tmp_path / "c.html").read_text()
    assert 'data-panel="compare-overlay"' in page and "train.weight_decay" in page
    # the overlay draws both runs: the first two colours of the palette are on the image
    data = re.search(
        r'data-panel-image="compare-overlay" src="data:image/png;base64,([^"]+)"', page
    )
    pixels = mpimg.imread(io.BytesIO(base64.b64decode(data.group(1))), format="png")[..., :3]
    for colour in ((31, 119, 180), (255, 127, 14)):  # tab:blue, tab:orange
        near = np.abs(pixels * 255 - np.array(colour)).max(axis=-1) < 30
        assert near.sum() > 20, colour


def test_show_says_what_it_leaves_out_and_when_the_summary_is_stale(tmp_path):
    """``show`` names how many metric rows it printed of how many, and says so when a resumed
    run's metrics go beyond its summary (the summary of its earlier end)."""
    store = Store(tmp_path / "runs")
    run_id = fake_run(store, "long", summary={"test_acc": 0.9, "steps": 10})
    for step in range(20, 130, 10):  # resumed and trained on, not ended since
        store.log(run_id, step, {"train/loss": 0.05, "test/acc": 0.95})
    store.flush()
    out = invoke("show", run_id, "--rows", "5", "--runs-dir", store.root).output
    assert "5 of 13 evaluation rows, evenly spaced (--rows N)" in out
    assert "the summary is from step 10; metrics go on to step 120" in out
    whole = invoke("show", run_id, "--rows", "50", "--runs-dir", store.root).output
    assert "evaluation rows" not in whole
