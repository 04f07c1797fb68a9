"""Label-free accuracy estimation by entropy minimisation (Press et al. 2024)."""

from __future__ import annotations

import copy

import pytest
import torch
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.models.gpt import GPT, GPTConfig
from learnscope.runner import execute
from learnscope.store import Store
from learnscope.studies.entropy import (
    _entropy,
    entropy_minimise,
    estimate_shifts,
    fit_quadratic,
    mae,
    paper_estimate,
)
from learnscope.tasks import make_task


@pytest.fixture(scope="module")
def task():
    return make_task("addition", lo=1, hi=2, test_lengths=[3], n_train=64, n_test=16)


@pytest.fixture(scope="module")
def model(task):
    torch.manual_seed(0)
    dims = task.model_dims()
    return GPT(GPTConfig(n_layer=1, n_head=2, d_model=16, **dims))


def test_entropy_is_log_v_for_a_uniform_model():
    net = GPT(GPTConfig(vocab_size=6, block_size=5, d_model=8, n_head=2, n_layer=1))
    with torch.no_grad():
        net.unembed.weight.zero_()
        net.unembed.bias.zero_()
    pred = torch.tensor([[1, 3, 4, 2, 0]])
    mask = torch.tensor([[False, False, True, True, False]])
    assert _entropy(net, pred, mask).item() == pytest.approx(torch.log(torch.tensor(6.0)).item())


def test_paper_fit_at_its_ends():
    assert paper_estimate(0.0) == pytest.approx(0.75662)
    assert paper_estimate(0.5005) == pytest.approx(0.0384, abs=1e-3)  # every image flips
    assert paper_estimate(10.0) == 1.0  # far outside its range: clipped to [0, 1]


def test_quadratic_fit_recovers_a_quadratic_and_mae():
    coef = fit_quadratic([0.0, 0.1, 0.2, 0.3], [0.8, 0.6, 0.44, 0.32])
    assert coef.tolist() == pytest.approx([2.0, -2.2, 0.8], abs=1e-9)
    assert mae([{"acc": 0.5, "x": 0.7}, {"acc": 0.1, "x": 0.0}], "x") == pytest.approx(0.15)


def test_no_step_no_move_and_train_inputs_sit_on_the_train_embeddings(model, task):
    trace = entropy_minimise(model, task, "train", steps=0, rows=8, train_rows=32)
    assert trace.steps == [0]
    assert trace.flips == [0.0] and trace.wf == [0.0] and trace.drift == [0.0]
    # the 8 inputs are among the 32 training inputs
    assert trace.dist_to_train[0] == pytest.approx(0.0, abs=1e-5)
    assert 0 < trace.confidence <= 1


def test_em_lowers_the_entropy_and_counts_flips(model, task):
    confident = copy.deepcopy(model)  # below the paper's entropy threshold 0.4 ln V
    with torch.no_grad():
        confident.unembed.weight.mul_(300.0)
    trace = entropy_minimise(confident, task, "test", steps=6, lr=0.5, rows=16, record_every=3)
    assert trace.steps == [0, 3, 6]
    assert trace.entropy[-1] < trace.entropy[0]
    assert trace.drift[-1] > 0
    for flips, wf in zip(trace.flips, trace.wf):
        assert 0 <= wf <= flips <= 1  # each weight is a percentile rank in (0, 1]


def test_noise_shifts_the_inputs(model, task):
    clean = entropy_minimise(model, task, "test", steps=0, rows=16)
    noisy = entropy_minimise(model, task, "test", steps=0, rows=16, noise=5.0)
    assert noisy.dist_to_train[0] > clean.dist_to_train[0]
    again = entropy_minimise(model, task, "test", steps=0, rows=16, noise=5.0)
    assert again.confidence == noisy.confidence  # the noise is fixed by the seed


def test_estimate_shifts_leaves_one_shift_out(model, task):
    shifts = [("test", 0.0), ("test", 1.0), ("test_len_3", 0.0), ("train", 0.0)]
    rows, traces = estimate_shifts(model, task, shifts, steps=2, lr=0.1, rows=8, record_every=1)
    assert [(r["split"], r["noise"]) for r in rows] == shifts
    assert all(r["loo"] is not None and 0 <= r["loo"] <= 1 for r in rows)
    assert all(r["acc"] == t.acc[0] for r, t in zip(rows, traces))


def test_cli(tmp_path):
    store = Store(tmp_path)
    cfg = {
        "task": {
            "name": "addition",
            "lo": 1,
            "hi": 2,
            "test_lengths": [3],
            "n_train": 32,
            "n_test": 8,
        },  # fmt: skip
        "model": {"kind": "gpt", "n_layer": 1, "n_head": 2, "d_model": 16},
        "train": {"steps": 2, "eval_every": 2},
        "probes": [],
    }
    execute(cfg, store)
    base = ["estimate-accuracy", "last", "--runs-dir", str(tmp_path)]
    out = CliRunner().invoke(
        app,
        [
            *base,
            "--split",
            "test",
            "--split",
            "test_len_3",
            "--noise",
            "0",
            "--noise",
            "1",
            "--steps",
            "2",
            "--rows",
            "8",
            "--record-every",
            "1",
            "--trace",
        ],  # fmt: skip
    )
    assert out.exit_code == 0, out.output
    assert "MAE naive" in out.output and "leave-one-shift-out" in out.output
    bad = CliRunner().invoke(app, [*base, "--split", "nope"])
    assert bad.exit_code == 2 and "unknown split" in bad.output
    bad = CliRunner().invoke(app, [*base, "--split", "test", "--params", "x"])
    assert bad.exit_code == 2 and "--params" in bad.output
