"""The Python API of notebooks (``learnscope.run``, ``runs``, ``metrics``) and the example
notebook ``examples/grokking.ipynb``, executed cell by cell (nbclient)."""

from __future__ import annotations

from pathlib import Path

import pytest

import learnscope as ls

EXAMPLE = Path(__file__).parents[1] / "examples" / "grokking.ipynb"


def test_run_from_python_matches_the_pipeline(tmp_path, tiny_config, capsys):
    """``ls.run`` trains through the store (as ``learnscope run`` does), overrides given as a
    dict or as keywords with ``__`` for the dots; ``runs`` flattens; ``metrics`` is long."""
    result = ls.run(tiny_config, {"train.lr": 0.02}, runs_dir=tmp_path, train__steps=20)
    assert result.status == "finished" and result.summary["steps"] == 20
    assert "20/20" in capsys.readouterr().err  # the progress bar
    table = ls.runs(tmp_path)
    row = table.iloc[0]
    assert row["id"] == result.run_id and row["config.train.lr"] == 0.02
    assert row["summary.train_acc"] == result.summary["train_acc"]
    assert "summary" not in table.columns and "config" not in table.columns
    long = ls.metrics("last", tmp_path, names=["train/acc"])
    assert list(long.columns) == ["step", "name", "value"] and set(long["name"]) == {"train/acc"}
    assert long["step"].max() == 20
    quiet = ls.run(tiny_config, runs_dir=tmp_path, progress=False, train__steps=5)
    assert "5/5" not in capsys.readouterr().err and quiet.summary["steps"] == 5
    assert len(ls.runs(tmp_path)) == 2


def test_an_empty_store_is_an_empty_table(tmp_path):
    assert ls.runs(tmp_path).empty


def test_the_example_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(EXAMPLE, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    # the recipe stops once it has grokked; its claims were checked on the run
    assert "('stopped', " in text and "'groks': {'value': 1.0, 'holds': True" in text
