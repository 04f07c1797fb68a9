"""The ``hessian_spectrum`` probe (issue 30, item 7; Sagun et al. 2017) on linear regression,
whose Hessian is known in closed form: ``L(w) = mean((X w - y)^2)`` has ``H = 2 X^T X / n``
at every ``w``, with as many nonzero eigenvalues as ``X`` has rank."""

from __future__ import annotations

import copy

import pytest
import torch

from learnscope.config import load_recipe_dict, validate_config
from learnscope.errors import UserError
from learnscope.runner import build, execute, probe_plan
from learnscope.store import Store

# y = w . x on inputs spanning 4 of 16 dimensions (the intrinsic-dimension recipe's task)
LINEAR = load_recipe_dict("intrinsic-dim-linear") | {"claims": []}


def linear(rank: int, **probe) -> dict:
    cfg = copy.deepcopy(LINEAR)
    cfg["task"]["rank"] = rank
    cfg["probes"] = [{"probe": "hessian_spectrum", **probe}]
    return cfg


def spectrum(cfg: dict) -> tuple[dict[str, float], torch.Tensor]:
    """The probe's values on the untrained model, and the closed-form Hessian's eigenvalues
    (descending) on the rows it reads."""
    cfg = validate_config(cfg)
    trainer = build(cfg)
    plan = probe_plan(cfg, trainer)
    values = plan.compute(trainer.model, trainer.objective.forward, trainer.objective.loss)
    x = plan.batch["x"][: plan.items[0].options["rows"]].double()
    exact = torch.linalg.eigvalsh(2 * x.T @ x / len(x)).flip(0)
    return values, exact


@pytest.mark.parametrize("rank", [2, 4, 7])
def test_top_eigenvalues_and_outliers_of_linear_regression(rank):
    values, exact = spectrum(linear(rank, k=10, iters=16))
    got = torch.tensor([values[f"hessian_spectrum/eig{i}"] for i in range(1, 11)])
    assert got.double() == pytest.approx(exact[:10], rel=1e-4, abs=1e-5)
    assert exact[rank - 1] > 0.05 and abs(exact[rank]) < 1e-5  # the rank of X^T X
    # the rank's nonzero eigenvalues stand apart from the zeros: as many outliers
    assert values["hessian_spectrum/outliers"] == rank


def test_full_rank_inputs_have_no_bulk_of_zeros():
    """On inputs of full rank 16 with k = 16 every eigenvalue is exact (16 Lanczos steps on a
    16-dimensional Hessian), and the outlier count is no longer the rank."""
    values, exact = spectrum(linear(16, k=16, iters=16))
    got = torch.tensor([values[f"hessian_spectrum/eig{i}"] for i in range(1, 17)]).double()
    assert got == pytest.approx(exact, rel=1e-4)
    assert values["hessian_spectrum/outliers"] < 16


def test_fewer_names_than_k_when_the_model_has_fewer_parameters():
    values, _ = spectrum(linear(4, k=20, iters=30))
    assert sorted(values) == sorted(
        [f"hessian_spectrum/eig{i}" for i in range(1, 17)] + ["hessian_spectrum/outliers"]
    )


def test_recorded_every_n_steps_during_training(tmp_path):
    cfg = linear(4, k=5, every=20)
    cfg["train"].update(steps=60, eval_every=30)
    result = execute(cfg, Store(tmp_path))
    table = Store(tmp_path).metric_table(result.run_id)
    eig1 = table["hessian_spectrum/eig1"].dropna()
    assert list(eig1.index) == [0, 20, 40, 60]
    assert (table["hessian_spectrum/outliers"].dropna() == 4).all()  # H does not move


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("k", 0, r"probes\.0\.k: expected 1\.\.10000"),
        ("iters", "many", r"probes\.0\.iters: expected int"),
        ("topk", 3, r"probes\.0\.topk: unknown option of hessian_spectrum; allowed: k, iters"),
    ],
)
def test_bad_options_are_one_line_errors(option, value, message):
    cfg = validate_config(linear(4, **{option: value}))
    with pytest.raises(UserError, match=message):
        probe_plan(cfg, build(cfg))


PROTOTYPES = {
    "name": "hessian-spectrum-prototypes",
    "seed": 0,
    "task": {"name": "prototypes", "n_classes": 5, "length": 16, "vocab": 8, "noise": 0.5,
             "n_per_class": 100, "n_test_per_class": 100},
    "model": {"kind": "mlp", "width": 32, "depth": 2, "activation": "relu"},
    "train": {"optimizer": "sgd", "lr": 0.1, "batch_size": 64, "steps": 500, "eval_every": 250},
    "probes": [{"probe": "hessian_spectrum", "every": 500, "k": 12, "iters": 40}],
}  # fmt: skip


@pytest.mark.parametrize("classes", [5, 8])
def test_outliers_of_a_trained_classifier_number_the_classes_less_one(tmp_path, classes):
    """Sagun et al. 2017 (about C outliers above the bulk; Papyan 2019: C - 1), read off
    during training (seed 0, the hessian-outliers study's model): C - 1 after 500 SGD steps
    (measured at seeds 0, 1, 2, 10: 4/4 for C = 5 and 8, 3/4 for C = 3), not at step 0
    (there 1 to 11: no class structure yet)."""
    cfg = copy.deepcopy(PROTOTYPES)
    cfg["task"]["n_classes"] = classes
    result = execute(cfg, Store(tmp_path))
    outliers = Store(tmp_path).metric_table(result.run_id)["hessian_spectrum/outliers"].dropna()
    assert result.summary["test_acc"] > 0.95
    assert outliers.loc[500] == classes - 1
    assert outliers.loc[0] != classes - 1
