"""learnscope prune-layers and learnscope eval on a small GPT run (a few training steps)."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.store import Store

runner = CliRunner()

GPT_RUN = {
    "name": "tiny-gpt",
    "seed": 0,
    "task": {
        "name": "addition",
        "lo": 1,
        "hi": 2,
        "test_lengths": [3],
        "n_train": 64,
        "n_test": 16,
    },
    "model": {"kind": "gpt", "n_layer": 3, "n_head": 2, "d_model": 16},
    "train": {"lr": 0.01, "steps": 4, "eval_every": 4, "batch_size": 16},
}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("layers")
    path = root / "gpt.yaml"
    path.write_text(yaml.safe_dump(GPT_RUN))
    res = invoke("run", path, "--runs-dir", root / "runs", "--quiet")
    assert res.exit_code == 0, res.output
    return root / "runs", Store(root / "runs").runs()["id"][0]


def test_prune_layers_on_a_run(trained, tmp_path):
    runs, run_id = trained
    plot = tmp_path / "curve.png"
    res = invoke(
        "prune-layers", run_id, "--n", 1, "--n", 2, "--heal", 2, "--plot", plot, "--runs-dir", runs
    )
    assert res.exit_code == 0, res.output
    assert "3 layers" in res.output and "test_len_3" in res.output and "deep" in res.output
    assert plot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", 3], "--n: must be in 1..2"),
        ([], "--n: give the number"),
        (["--n", 0], "--n: must be >= 1"),
        (["--n", 1, "--hf", "x"], "give a RUN or --hf MODEL"),
        (["--n", 1, "--plot", "/nonexistent/dir/x.png"], "--plot: directory"),
    ],
)
def test_prune_layers_refuses_bad_input(trained, args, message):
    runs, run_id = trained
    res = invoke("prune-layers", run_id, *args, "--runs-dir", runs)
    assert res.exit_code == 2 and message in res.output, res.output


def test_eval_a_run_per_length_and_report(trained, tmp_path):
    runs, run_id = trained
    res = invoke("eval", run_id, "--n", 8, "--seed", 3, "--runs-dir", runs)
    assert res.exit_code == 0, res.output
    assert "seed 3" in res.output and "Wilson" in res.output
    store = Store(runs)
    evals = store.runs()
    eval_id = evals[evals["name"] == "eval-addition"]["id"].iloc[0]
    rec = store.run(eval_id)
    assert rec["config"]["kind"] == "eval" and rec["config"]["axis"] == "length"
    assert sorted(store.metric_table(eval_id).index) == [1, 2, 3]
    assert invoke("show", eval_id, "--runs-dir", runs).exit_code == 0
    assert invoke("ls", "--runs-dir", runs).exit_code == 0
    out = tmp_path / "r.html"
    res = invoke("report", eval_id, run_id, "-o", out, "--runs-dir", runs)
    assert res.exit_code == 0, res.output
    assert 'data-panel="eval-difficulty"' in out.read_text()
    res = invoke("eval", run_id, "--task", "parity", "--runs-dir", runs)
    assert res.exit_code == 2 and "trained on 'addition'" in res.output
    res = invoke("eval", run_id, "--seed", 1, "--fresh", "--runs-dir", runs)
    assert res.exit_code == 2 and "one of them" in res.output


def test_a_missing_transformers_says_how_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers fails
    text = tmp_path / "t.txt"
    text.write_text("hello world")
    res = invoke("probe-hf", "gpt2", "--text", text)
    assert res.exit_code == 2 and "pip install 'learnscope[hf]'" in res.output
