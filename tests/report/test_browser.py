"""The report as a person sees it: a real short run's report opened in headless Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from learnscope.config import load_config
from learnscope.report import build_report
from learnscope.runner import execute
from learnscope.store import Store
from tests.report.chromium import find_chromium, inspect_page

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)"
)

# the grokking-mlp recipe, made small enough for a test: p = 23, 64 neurons, 60 steps
SHORT = ["task.p=23", "model.width=64", "train.steps=60", "train.eval_every=5"]
EXPECTED = [
    "summary",
    "loss",
    "accuracy",
    "probe-effective_rank",  # the MLP's default probes
    "probe-ipr_frac",
    "probe-ipr_mean",
    "weight-norms",
    "fourier",
    "ipr",
    "notes",  # no attention in an MLP
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    pytest.importorskip(
        "websocket", reason="websocket-client is not installed (pip install -e .[dev])"
    )
    root = tmp_path_factory.mktemp("browser")
    store = Store(root / "runs")
    result = execute(load_config("grokking-mlp", SHORT), store)
    rep = build_report(store, [result.run_id], root / "report.html")
    shot = root / "report.png"
    return rep, inspect_page(rep.path, shot, CHROMIUM), shot


def test_page_loads_without_console_errors_or_network(report):
    rep, page, _ = report
    assert page["errors"] == []
    assert page["title"] == "learnscope report: grokking-mlp"
    assert [r for r in page["resources"] if not r.startswith("data:")] == []


def test_every_expected_panel_is_present(report):
    rep, page, _ = report
    assert page["panels"] == EXPECTED
    assert rep.panels + ["notes"] == EXPECTED


def test_every_image_decodes_and_is_not_blank(report):
    rep, page, _ = report
    images = page["images"]
    assert [i["panel"] for i in images] == [p for p in EXPECTED if p not in ("summary", "notes")]
    for img in images:
        assert img["width"] > 100 and img["height"] > 100, img
        assert img["std"] > 5.0, img  # grey-level spread on 0..255: something is drawn


REFERENCE = Path(__file__).parent / "reference" / "accuracy-panel.png"
#: the accuracy panel as the browser shows it, averaged over 48 x 96 blocks (grey 0..1);
#: regenerate with LEARNSCOPE_UPDATE_REFERENCE=1 after a deliberate change of the figure
GRID = (48, 96)


def blocks(shot: Path, box: list[float]) -> np.ndarray:
    """The screenshot's region ``box`` (left, top, width, height) in grey, averaged over
    :data:`GRID` blocks: coarse enough that resampling by another browser does not count."""
    grey = mpimg.imread(shot)[..., :3].mean(axis=-1)
    left, top, width, height = (int(round(v)) for v in box)
    crop = grey[top : top + height, left : left + width]
    rows = np.array_split(np.arange(crop.shape[0]), GRID[0])
    cols = np.array_split(np.arange(crop.shape[1]), GRID[1])
    return np.array([[crop[np.ix_(r, c)].mean() for c in cols] for r in rows])


def test_the_accuracy_panel_looks_like_its_reference(report):
    """The accuracy panel's region of the screenshot against a reference image: the same
    page on this machine and on PyTorch's plain CPU kernels differ by 0; the loss panel
    against the accuracy reference by 0.018 on average (0.39 at most), so the tolerance
    (mean 0.008, 99th percentile 0.08; the reference PNG is 8-bit: 0.002 on average) tells a
    changed figure from a resampled one."""
    _, page, shot = report
    [box] = [i["box"] for i in page["images"] if i["panel"] == "accuracy"]
    seen = blocks(shot, box)
    if os.environ.get("LEARNSCOPE_UPDATE_REFERENCE"):
        mpimg.imsave(REFERENCE, seen, cmap="gray", vmin=0, vmax=1)
    reference = mpimg.imread(REFERENCE)[..., :3].mean(axis=-1)
    diff = np.abs(seen - reference)
    assert diff.mean() < 0.008 and np.percentile(diff, 99) < 0.08, (
        f"accuracy panel differs from {REFERENCE.name}: mean {diff.mean():.4f}, "
        f"p99 {np.percentile(diff, 99):.4f}"
    )
    [loss] = [i["box"] for i in page["images"] if i["panel"] == "loss"]
    assert np.abs(blocks(shot, loss) - reference).mean() > 0.008  # another figure does not pass


def test_screenshot_is_saved_and_shows_the_page(report):
    _, page, shot = report
    pixels = mpimg.imread(shot)
    assert pixels.shape[1] == 1280 and pixels.shape[0] >= min(page["height"], 6000) - 1
    assert float(pixels[..., :3].std()) > 0.02


def test_a_comparison_page_shows_its_overlay(tmp_path):
    """``learnscope compare A B --html``: two real short runs (lr 0.01 and 0.003), the page
    loads with no error, its overlay image decodes and is drawn."""
    pytest.importorskip("websocket", reason="websocket-client is not installed")
    from learnscope.report.compare import compare, write_page

    store = Store(tmp_path / "runs")
    a = execute(load_config("grokking-mlp", SHORT), store).run_id
    b = execute(load_config("grokking-mlp", [*SHORT, "train.lr=0.003"]), store).run_id
    cmp = compare(store, [a, b])
    out = write_page(cmp, cmp.metric(None), tmp_path / "compare.html")
    page = inspect_page(out, tmp_path / "compare.png", CHROMIUM)
    assert page["errors"] == [] and page["title"] == f"compare {a} · {b}"
    assert page["panels"] == ["compare-config", "compare-overlay", "compare-summary"]
    [overlay] = page["images"]
    assert overlay["panel"] == "compare-overlay" and overlay["width"] > 100, overlay
    assert overlay["std"] > 5.0, overlay
