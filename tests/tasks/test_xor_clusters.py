"""XOR clusters (Xu et al. 2024): the data, the flipped labels, and the Bayes accuracy in
closed form against the Bayes rule on samples."""

from __future__ import annotations

import math

import pytest
import torch

from learnscope.errors import UserError
from learnscope.tasks import make_task
from learnscope.tasks.xor_clusters import bayes_accuracy


def test_shapes_means_and_clean_test_split():
    task = make_task("xor_clusters", dim=64, mu=5.0, n_train=40, n_test=30, seed=3)
    train, test = task.split("train"), task.split("test")
    assert train["x"].shape == (40, 64) and train["x"].dtype == torch.float32
    assert test["y"].shape == (30,) and set(test["y"].tolist()) <= {0, 1}
    mu1, mu2 = task.means.double()
    assert math.isclose(mu1.norm().item(), 5.0, rel_tol=1e-5)
    assert abs(mu1 @ mu2) < 1e-4  # orthogonal means of equal norm
    assert "train_noisy" not in task.splits  # no label noise asked


def test_label_noise_flips_exactly_round_eta_n_and_keeps_the_truth():
    task = make_task("xor_clusters", dim=32, n_train=200, n_test=10, label_noise=0.15, seed=1)
    noisy = task.split("train_noisy")
    assert len(noisy) == 30  # round(0.15 * 200)
    assert bool((noisy["y"] == 1 - noisy["y_true"]).all())  # two classes: flipped = the other
    clean = make_task("xor_clusters", dim=32, n_train=200, n_test=10, seed=1)
    changed = (task.split("train")["y"] != clean.split("train")["y"]).sum().item()
    assert changed == 30
    assert torch.equal(task.split("test")["y"], clean.split("test")["y"])  # test stays clean


def test_seeded():
    a = make_task("xor_clusters", dim=16, n_train=8, n_test=4, seed=5)
    b = make_task("xor_clusters", dim=16, n_train=8, n_test=4, seed=5)
    c = make_task("xor_clusters", dim=16, n_train=8, n_test=4, seed=6)
    assert torch.equal(a.split("train")["x"], b.split("train")["x"])
    assert not torch.equal(a.split("train")["x"], c.split("train")["x"])


def test_bayes_closed_form_limits():
    assert bayes_accuracy(0.0) == 0.5  # no signal: chance
    assert bayes_accuracy(50.0) == 1.0
    assert math.isclose(bayes_accuracy(50.0, 0.1), 0.9)  # flipped labels cap it at 1 - eta
    a = 1.3
    phi = 0.5 * (1 + math.erf(a / 2))
    assert math.isclose(bayes_accuracy(a), phi**2 + (1 - phi) ** 2)


def test_bayes_closed_form_matches_monte_carlo_of_the_two_gaussians():
    """P(|a + z1| > |z2|), z1, z2 ~ N(0, 1), estimated from 400k draws."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 400_000, generator=g, dtype=torch.float64)
    for a in (0.5, 1.5, 3.0):
        mc = ((a + z[0]).abs() > z[1].abs()).double().mean().item()
        assert abs(mc - bayes_accuracy(a)) < 4 * math.sqrt(0.25 / 400_000)


@pytest.mark.parametrize("mu,sigma", [(1.0, 1.0), (3.0, 2.0), (4.0, 1.0)])
def test_bayes_rule_on_the_test_split_scores_the_closed_form(mu, sigma):
    n = 20_000
    task = make_task("xor_clusters", dim=20, mu=mu, sigma=sigma, n_train=2, n_test=n, seed=2)
    test = task.split("test")
    acc = (task.bayes_rule(test["x"]) == test["y"]).double().mean().item()
    b = task.bayes_accuracy()
    assert abs(acc - b) < 4 * math.sqrt(b * (1 - b) / n) + 1e-3


def test_no_linear_classifier_beats_chance():
    """XOR: the least-squares linear classifier on many clean rows is at chance on the test."""
    task = make_task("xor_clusters", dim=8, mu=4.0, n_train=4000, n_test=4000, seed=0)
    x, y = task.split("train")["x"].double(), task.split("train")["y"].double() * 2 - 1
    xb = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    w = torch.linalg.lstsq(xb, y[:, None]).solution
    t = task.split("test")
    xt = torch.cat([t["x"].double(), torch.ones(len(t["x"]), 1, dtype=torch.float64)], 1)
    acc = (((xt @ w)[:, 0] > 0).long() == t["y"]).double().mean().item()
    assert abs(acc - 0.5) < 0.05
    assert task.bayes_accuracy() > 0.99


@pytest.mark.parametrize(
    "params,field",
    [({"dim": 1}, "dim"), ({"sigma": 0.0}, "sigma"), ({"noise": 0.1}, "noise")],
)
def test_bad_params_name_the_field(params, field):
    with pytest.raises(UserError, match=field):
        make_task("xor_clusters", **params)


def test_recipe_and_study_specs_load():
    from learnscope.config import load_recipe_dict, validate_config
    from learnscope.studies.study import load_study

    cfg = validate_config(load_recipe_dict("xor-benign-overfitting"))
    assert cfg.task.name == "xor_clusters" and cfg.train.optimizer == "sgd"
    assert {c.name for c in load_study("redshift").claims} >= {"relu-low-frequency"}
    assert {c.name for c in load_study("max-lr").claims} == {
        "falls-with-depth-width",
        "power-law-fit",
    }


def test_recipe_claims_fail_for_an_untrained_model(tmp_path):
    """At a tiny learning rate nothing is fitted: the claims read off one run fail."""
    from learnscope.config import load_recipe_dict
    from learnscope.runner import execute
    from learnscope.store import Store

    data = load_recipe_dict("xor-benign-overfitting")
    data["train"] = {**data["train"], "lr": 1e-6, "steps": 4, "eval_every": 2}
    result = execute(data, Store(tmp_path))
    claims = result.summary["claims"]
    for name in (
        "fits-noisy-labels-after-one-step",
        "flipped-still-fitted",
        "test-near-bayes-late",
    ):
        assert claims[name]["holds"] is False, name
    data["train"] = {**data["train"], "steps": 1, "eval_every": 1}  # the paired control
    at_fit = execute(data, Store(tmp_path))
    assert result.summary["test_acc"] - at_fit.summary["test_acc"] < 0.25  # no climb


def test_two_layer_is_the_papers_network():
    """f(x) = sum_j a_j relu(<w_j, x>), a fixed at +-1/sqrt(m); CE on (-f/2, f/2) is the
    logistic loss log(1 + exp(-y f))."""
    from learnscope.models import build_model

    task = make_task("xor_clusters", dim=12, n_train=16, n_test=4, seed=0)
    net = build_model("two_layer", {"width": 6, "init_std": 0.3}, task.model_dims())
    assert [n for n, _ in net.named_parameters()] == ["layers.0.linear.weight"]
    assert torch.allclose(net.a.abs(), torch.full((6,), 6**-0.5)) and net.a.sum() == 0
    x, y = task.split("train")["x"], task.split("train")["y"]
    w = net.layers[0].linear.weight
    f = torch.relu(x @ w.T) @ net.a
    logits = net(x)
    assert torch.allclose(logits[:, 1] - logits[:, 0], f, atol=1e-6)
    ce = torch.nn.functional.cross_entropy(logits, y)
    logistic = torch.nn.functional.softplus(-(2 * y - 1) * f).mean()
    assert torch.allclose(ce, logistic, atol=1e-6)


@pytest.mark.parametrize("params,field", [({"width": 5}, "width"), ({"init_std": 0.0}, "init_std")])
def test_two_layer_bad_config_names_the_field(params, field):
    from learnscope.models import model_config

    dims = make_task("xor_clusters", dim=4, n_train=4, n_test=2).model_dims()
    with pytest.raises(UserError, match=field):
        model_config("two_layer", params, dims)
    with pytest.raises(UserError, match="n_out"):
        model_config("two_layer", {}, {**dims, "n_out": 3})
