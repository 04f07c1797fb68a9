"""The associative memory and the zipf_pairs task against their closed forms."""

from __future__ import annotations

import pytest
import torch

from learnscope.errors import UserError
from learnscope.models.assoc_memory import (
    AssocMemory,
    AssocMemoryConfig,
    embeddings,
    memory_matrix,
    predict,
    scores,
    store_weights,
    zipf_error,
)
from learnscope.tasks import make_task
from learnscope.tasks.zipf_pairs import unseen_mass, zipf_probs


@pytest.mark.parametrize("seed, t", [(0, 10), (1, 100), (2, 1000), (3, 5000)])
def test_orthogonal_memory_of_seen_tokens_errs_on_exactly_the_unseen_mass(seed, t):
    """d >= N, M and q = 1[x seen]: every seen token is recalled exactly (its score 1, every
    other 0) and an unseen one has all scores 0 (no answer), so E = the Zipf mass unseen."""
    task = make_task("zipf_pairs", n_tokens=200, n_outputs=50, alpha=1.5, n_samples=t, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    e, u = embeddings(200, 256, "orthogonal", gen), embeddings(50, 256, "orthogonal", gen)
    q = store_weights(task.counts, "seen")
    w = memory_matrix(e, u, task.targets, q)
    pred = predict(scores(e, w, u))
    unseen = float(task.probs[task.counts == 0].sum())
    assert zipf_error(pred, task.targets, task.probs) == pytest.approx(unseen, abs=1e-12)
    assert task.zipf_error(pred) == pytest.approx(unseen, abs=1e-12)
    assert task.seen_mass() == pytest.approx(1 - unseen, abs=1e-12)
    assert (pred[task.counts == 0] == -1).all()


def test_the_expected_unseen_mass_is_the_closed_form():
    p = zipf_probs(50, 2.0)
    draws = [
        float(p[make_task("zipf_pairs", n_tokens=50, n_outputs=5, n_samples=20, seed=s)
                .counts == 0].sum())
        for s in range(300)
    ]  # fmt: skip
    assert sum(draws) / len(draws) == pytest.approx(unseen_mass(p, 20), rel=0.05)


def test_store_weights_schemes():
    counts = torch.tensor([5, 0, 3, 3, 1])
    assert store_weights(counts, "seen").tolist() == [1, 0, 1, 1, 1]
    assert store_weights(counts, "frequency").tolist() == pytest.approx(
        [5 / 12, 0, 3 / 12, 3 / 12, 1 / 12]
    )
    assert store_weights(counts, "top", k=2).tolist() == [1, 0, 1, 0, 0]  # tie: smaller id
    assert store_weights(counts, "top", k=0).sum() == 0
    with pytest.raises(ValueError, match="allowed"):
        store_weights(counts, "all")


def test_the_model_scores_equal_the_closed_form_memory():
    torch.manual_seed(0)
    net = AssocMemory(AssocMemoryConfig(vocab=30, n_out=7, d=16))
    f = torch.randint(0, 7, (30,))
    w = memory_matrix(net.E.double(), net.U.double(), f, torch.ones(30, dtype=torch.float64))
    with torch.no_grad():
        net.W.copy_(w.float())
    got = net(torch.arange(30)[:, None])
    assert torch.allclose(got.double(), scores(net.E.double(), w, net.U.double()), atol=1e-5)


def test_a_gaussian_memory_recalls_few_tokens_in_a_large_dimension():
    gen = torch.Generator().manual_seed(0)
    e, u = embeddings(100, 512, "gaussian", gen), embeddings(20, 512, "gaussian", gen)
    f = torch.randint(0, 20, (100,), generator=gen)
    q = store_weights(torch.tensor([1] * 10 + [0] * 90), "seen")
    pred = predict(scores(e, memory_matrix(e, u, f, q), u))
    assert (pred[:10] == f[:10]).all()  # 10 memories in d = 512: no interference error


def test_trained_by_the_runner_the_memory_learns_the_frequent_tokens(tmp_path):
    from learnscope.runner import execute
    from learnscope.store import Store

    cfg = {
        "name": "memory",
        "task": {"name": "zipf_pairs", "n_tokens": 40, "n_outputs": 8, "n_samples": 400},
        "model": {"kind": "assoc_memory", "d": 32},
        "train": {"optimizer": "sgd", "lr": 5.0, "steps": 60, "eval_every": 30, "loss": "ce"},
        "probes": [],
    }
    before = execute({**cfg, "train": {**cfg["train"], "steps": 1}}, Store(tmp_path / "a"))
    after = execute(cfg, Store(tmp_path / "b"))
    assert after.summary["train_acc"] >= 0.9 > before.summary["train_acc"]


def test_bad_model_sizes_are_user_errors(tiny_config):
    from learnscope.config import validate_config
    from learnscope.runner import build

    base = {**tiny_config, "task": {"name": "zipf_pairs", "n_tokens": 50, "n_outputs": 5}}
    with pytest.raises(UserError, match="model"):
        build(validate_config({**base, "model": {"kind": "assoc_memory", "d": 8,
                                                 "embeddings": "orthogonal"}}))  # fmt: skip
    with pytest.raises(UserError, match="task.alpha"):
        make_task("zipf_pairs", alpha=0.5)


def test_the_cross_entropy_gradient_at_zero_is_the_frequency_memory_less_a_mean():
    """-grad_W CE at W = 0 = sum_t e_x_t (u_y_t - mean_y u_y)^T / T: one gradient step from
    W = 0 builds the frequency-weighted memory, less a mean term (docs/learning-over-time.md)."""
    task = make_task("zipf_pairs", n_tokens=30, n_outputs=6, n_samples=200, seed=2)
    torch.manual_seed(0)
    net = AssocMemory(AssocMemoryConfig(vocab=30, n_out=6, d=16)).double()
    x, y = task.split("train")["x"], task.split("train")["y"]
    torch.nn.functional.cross_entropy(net(x), y).backward()
    e, u = net.E.double(), net.U.double()
    q = store_weights(task.counts, "frequency")
    want = memory_matrix(e, u, task.targets, q) - (e * q[:, None]).sum(0)[:, None] * u.mean(0)
    assert torch.allclose(-net.W.grad, want, atol=1e-12)
