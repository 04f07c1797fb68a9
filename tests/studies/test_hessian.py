"""The Hessian-outliers study (Sagun et al. 2017): a trained run's top Hessian eigenvalues by
Lanczos against the exact Hessian, the study's options, and the built-in study specs."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from learnscope.errors import UserError
from learnscope.report.taus import taus_figure
from learnscope.runner import execute, restore
from learnscope.store import Store
from learnscope.studies import hessian as hs
from learnscope.studies.study import load_study

TINY = {
    "name": "hess-tiny",
    "seed": 0,
    "task": {
        "name": "prototypes",
        "n_classes": 3,
        "length": 2,
        "vocab": 3,
        "noise": 0.3,
        "n_per_class": 20,
        "n_test_per_class": 10,
    },
    "model": {"kind": "mlp", "width": 4, "depth": 2},
    "train": {"optimizer": "sgd", "lr": 0.1, "steps": 20, "eval_every": 10},
    "probes": [],
}


def test_top_eigenvalues_of_a_trained_run_match_the_exact_hessian(tmp_path):
    store = Store(tmp_path)
    run = execute(TINY, store)
    config = store.run(run.run_id)["config"]
    spec = hs.run_spectrum(config, run.dir, k=5)
    # the exact Hessian of the same loss, formed whole (43 parameters)
    trainer, _ = restore(config, run.dir)
    model = trainer.model.eval()
    split = trainer.task.split("train")
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()

    def loss(theta):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            parts[n] = theta[i : i + s.numel()].view(s).float()
            i += s.numel()
        logits = torch.func.functional_call(model, parts, (split["x"],))
        return trainer.objective.plain_loss(logits, split["y"]).double()

    h = torch.autograd.functional.hessian(loss, flat)
    exact = torch.linalg.eigvalsh(h).flip(0)[:5]
    assert spec.n_params == len(flat) == 43
    assert spec.top.tolist() == pytest.approx(exact.tolist(), rel=1e-3, abs=1e-5)


def test_measure_counts_outliers_per_class_count(tmp_path):
    out = hs.measure({"config": TINY, "classes": [2, 3], "k": 6}, 0, Store(tmp_path))
    for c in (2, 3):
        assert 1 <= out[f"outliers_c{c}"] <= 6
        assert out[f"outlier_error_c{c}"] == abs(out[f"outliers_c{c}"] - c)
        assert out[f"lambda1_c{c}"] >= out[f"lambda{c}_c{c}"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"config": TINY, "widths": [1]}, "hessian-outliers.options: unknown widths; allowed:"),
        ({}, "options.config: give the run config"),
        ({"config": TINY, "classes": [1]}, "options.classes: give a list of class counts >= 2"),
        ({"config": TINY, "classes": [3, 10], "k": 10}, "options.k: must be an integer above"),
    ],
)
def test_bad_options_are_named(tmp_path, options, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        hs.measure(options, 0, Store(tmp_path))


def test_the_built_in_study_specs_load():
    assert load_study("hessian-outliers").study == "hessian"
    assert load_study("gen-measures").options["sweep"] == "gen-measures-small"


def test_taus_figure_draws_a_bar_per_measure_and_skips_an_empty_table():
    table = pd.DataFrame(
        {
            "tau": [0.5, -0.2],
            "Psi": [0.3, float("nan")],
            "a": [0.1, -0.4],
            "same_sign": [True, False],
        },
        index=["m1", "m2"],
    )
    fig = taus_figure(table, ["a"], "gap")
    ax = fig.axes[0]
    assert len(ax.patches) == 4  # tau and Psi for each of the 2 measures
    assert [t.get_text() for t in ax.get_yticklabels()] == ["m1 *", "m2"]
    assert taus_figure(table.iloc[:0], ["a"]) is None
