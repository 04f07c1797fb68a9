"""Issue 30, "Must show: report panels": the double-descent curve (a sweep spec's
``show.curve``), the intrinsic-dimension curve (``learnscope intrinsic-dim`` records its search
as a sweep of the store) and the generalisation measures' taus (after ``learnscope sweep
correlate``), each built into the HTML report of a tiny store and found there by panel id and
title."""

from __future__ import annotations

import copy
import re

import pytest
from typer.testing import CliRunner

from learnscope.cli.app import app
from learnscope.config import load_yaml
from learnscope.errors import UserError
from learnscope.report import build_report
from learnscope.report.build import label_runs, load_runs
from learnscope.report.sweep_panels import curve_cells
from learnscope.store import Store
from learnscope.sweep import load_spec, run_sweep
from learnscope.sweep.spec import load_spec as load

runner = CliRunner()


def panels_of(html: str) -> dict[str, str]:
    """Panel id -> its title, from the page."""
    found = re.findall(r'data-panel="([^"]+)">\s*<h2>([^<]*)</h2>', html)
    return dict(found)


# -- 1. the double-descent curve ------------------------------------------------------------


def double_descent_spec() -> dict:
    """The built-in double-descent sweep (its show.curve as shipped), shrunk: 3 widths around
    n_train = 20, 2 seeds, 40 steps."""
    from importlib import resources

    text = (resources.files("learnscope.recipes") / "sweeps" / "double-descent.yaml").read_text()
    spec = load_yaml(text, "double-descent")
    spec["config"]["task"].update(d=5, n_train=20, n_test=50)
    spec["config"]["train"].update(steps=40, eval_every=20)
    spec["grid"] = {"model.width": [5, 20, 80], "train.weight_decay": [0.0, 1.0]}
    spec["seeds"] = 2
    return spec


def test_the_double_descent_spec_asks_for_the_curve():
    show = load("double-descent").show
    assert show["curve"] == {"x": "model.width", "y": "test_loss", "logx": True}


@pytest.fixture(scope="module")
def dd_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("dd")
    store = Store(root)
    sweep_id = run_sweep(load_spec(double_descent_spec()), store, workers=1, chunk=1)
    return root, sweep_id


def test_curve_panel_of_the_double_descent_sweep(dd_store, tmp_path):
    root, sweep_id = dd_store
    out = tmp_path / "dd.html"
    result = runner.invoke(
        app, ["report", "--sweep", sweep_id, "-o", str(out), "--runs-dir", str(root)]
    )
    assert result.exit_code == 0, result.output
    panels = panels_of(out.read_text())
    assert panels["curve"] == "Curve: test_loss against model.width"
    assert (tmp_path / "dd_files" / "curve.png").stat().st_size > 5000
    assert "taus" not in panels  # no member carries measures


def test_curve_cells_average_the_seeds_per_line(dd_store):
    from learnscope.report.build import final_value

    root, sweep_id = dd_store
    runs = load_runs(Store(root), [], sweep_id)
    label_runs(runs)
    cells, x = curve_cells(runs, "width", "test_loss", final_value)
    assert x == "model.width"  # named by its last dotted part
    assert len(cells) == 12 and sorted(cells["x"].unique()) == [5, 20, 80]
    assert set(cells["line"]) == {"weight_decay=0.0", "weight_decay=1.0"}
    assert cells.groupby(["line", "x"]).size().eq(2).all()  # two seeds at each point
    want = {r.summary["test_loss"] for r in runs}
    assert set(cells["y"]) == want


@pytest.mark.parametrize(
    ("curve", "message"),
    [
        (
            {"x": "model.depth", "y": "test_loss"},
            "sweep.show.curve.x: 'model.depth' is not an axis",
        ),
        ({"x": "model.width"}, "sweep.show.curve.y: give one value's name"),
        ({"x": "model.width", "y": "test_loss", "logx": "yes"}, "curve.logx: true or false"),
        ({"x": "model.width", "y": "test_loss", "colour": "red"}, "curve.colour: unknown field"),
        ({"x": "model.width", "y": "test_loss", "target": 2}, "curve.target: a fraction"),
        ("model.width", "sweep.show.curve: give {x: CONFIG PATH"),
    ],
)
def test_a_bad_curve_is_a_one_line_error(curve, message):
    spec = double_descent_spec()
    spec["show"] = {"curve": curve}
    with pytest.raises(UserError, match=re.escape(message)) as err:
        load(spec)
    assert "\n" not in str(err.value)


# -- 2. the intrinsic-dimension curve ---------------------------------------------------------


def test_intrinsic_dim_search_is_a_sweep_with_its_curve(tmp_path):
    root = tmp_path / "runs"
    result = runner.invoke(app, ["intrinsic-dim", "intrinsic-dim-linear", "--runs-dir", str(root)])
    assert result.exit_code == 0, result.output
    assert "d_int90 = 4" in result.output  # unchanged
    assert "learnscope report --sweep sw-" in result.output
    store = Store(root)
    sweeps = store.sweeps()
    assert len(sweeps) == 1 and sweeps["status"].iloc[0] == "finished"
    spec = load(sweeps["spec"].iloc[0])  # a valid spec
    assert spec.kind == "sweep" and spec.show["curve"]["x"] == "train.subspace.dim"
    runs = store.runs()
    assert (runs["sweep_id"] == sweeps["id"].iloc[0]).all() and len(runs) == 5  # full, d=1..4

    out = tmp_path / "id.html"
    result = runner.invoke(
        app, ["report", "--sweep", "last", "-o", str(out), "--runs-dir", str(root)]
    )
    assert result.exit_code == 0, result.output
    panels = panels_of(out.read_text())
    assert panels["curve"] == "Curve: test_acc against train.subspace.dim"
    assert "the full model" in out.read_text()  # the full run drawn as the reference line


def test_a_search_that_fails_leaves_a_failed_sweep_or_none(tmp_path):
    root = tmp_path / "runs"
    args = ["intrinsic-dim", "intrinsic-dim-linear", "--runs-dir", str(root)]
    result = runner.invoke(app, [*args, "--kind", "sparse"])  # refused before anything trains
    assert result.exit_code == 2 and "--kind: 'sparse'; allowed: dense, fastfood" in result.output
    assert not (root / "learnscope.db").exists() or not len(Store(root).sweeps())
    result = runner.invoke(app, [*args, "--metric", "no_such"])  # after the full run trained
    assert result.exit_code == 2 and "--metric: run" in result.output
    sweeps = Store(root).sweeps()
    assert list(sweeps["status"]) == ["failed"]
    assert (Store(root).runs()["sweep_id"] == sweeps["id"].iloc[0]).sum() == 1


# -- 3. the taus of the generalisation measures -------------------------------------------------

GM_SWEEP = {
    "name": "gm-tiny",
    "config": {
        "name": "gm-tiny",
        "seed": 0,
        "task": {"name": "prototypes", "n_classes": 3, "length": 4, "vocab": 4, "noise": 0.5,
                 "n_per_class": 10, "n_test_per_class": 20},
        "model": {"kind": "mlp", "width": 8, "depth": 2},
        "train": {"lr": 0.01, "steps": 20, "eval_every": 10},
        "probes": [],
    },
    "grid": {"model.width": [8, 16], "train.lr": [0.01, 0.03]},
}  # fmt: skip


def test_taus_panel_after_sweep_correlate(tmp_path):
    root = tmp_path / "runs"
    store = Store(root)
    sweep_id = run_sweep(load_spec(copy.deepcopy(GM_SWEEP)), store, workers=1, chunk=1)
    out = tmp_path / "gm.html"
    args = ["report", "--sweep", sweep_id, "-o", str(out), "--runs-dir", str(root)]
    assert runner.invoke(app, args).exit_code == 0
    assert "taus" not in panels_of(out.read_text())  # nothing cached yet: no panel

    result = runner.invoke(app, ["sweep", "correlate", sweep_id, "--runs-dir", str(root), "-q"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    panels = panels_of(out.read_text())
    assert panels["taus"] == "Generalisation measures: Kendall tau with the gap"
    assert "4 members with cached measures" in out.read_text()

    # the panel's taus are those `sweep correlate` prints, read from the cache
    from learnscope.studies.gen_measures import cached_taus, correlate

    table, axes, members = cached_taus(store, sweep_id, load_runs(store, [], sweep_id))
    want = correlate(store, sweep_id, "gap").table()
    assert members == 4 and axes == ["model.width", "train.lr"]
    assert table["tau"].to_dict() == pytest.approx(want["tau"].to_dict(), nan_ok=True)
    assert table["Psi"].to_dict() == pytest.approx(want["Psi"].to_dict(), nan_ok=True)


def test_build_report_lists_the_panels_in_order(dd_store, tmp_path):
    root, sweep_id = dd_store
    report = build_report(Store(root), [], tmp_path / "r.html", sweep=sweep_id)
    # the sweep's headline (test loss over width x weight decay), then its curve, then the rest
    assert report.panels[:2] == ["headline", "curve"]
    assert report.panels.index("curve") < report.panels.index("summary")


def test_curve_ticks_read_as_plain_numbers(dd_store):
    """Log axes with mathtext off (the report's rule: tests/report/test_ticks.py)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from learnscope.report.build import final_value
    from learnscope.report.sweep_panels import curve_figure
    from tests.report.test_ticks import check_ticks

    root, sweep_id = dd_store
    cells, x = curve_cells(load_runs(Store(root), [], sweep_id), "width", "test_loss", final_value)
    fig = curve_figure(cells, x, "test_loss", logx=True, logy=True)
    FigureCanvasAgg(fig)  # a Figure made without pyplot: give it a canvas to draw on
    texts = check_ticks(fig, "curve")
    assert "10" in texts and all(t.replace(".", "").isdigit() for t in texts)
    assert curve_figure(cells.iloc[:0], x, "test_loss") is None
