"""The joint-embedding toy: known informative directions, labels from them, views that redraw
the nuisance."""

from __future__ import annotations

import pytest
import torch

from learnscope.errors import UserError
from learnscope.tasks import make_task


def task(**kw):
    base = dict(dim=12, informative=3, n_classes=3, n_views=4, n_train=500, n_test=50, seed=1)
    return make_task("views", **{**base, **kw})


def test_shapes_dims_and_determinism():
    t = task()
    train = t.split("train")
    assert train["x"].shape == (500, 12) and train["views"].shape == (500, 4, 12)
    assert train["y"].dtype == torch.long and set(train["y"].tolist()) == {0, 1, 2}
    assert t.model_dims() == {"n_inputs": 12, "embed": "none", "n_out": 3}
    assert task(embed_dim=7).model_dims()["n_out"] == 7
    assert torch.equal(task().split("test")["views"], t.split("test")["views"])
    assert not torch.equal(task(seed=2).split("train")["x"], train["x"])


def test_views_share_the_informative_part_and_redraw_the_nuisance():
    t = task(jitter=0.0, nuisance=2.0)
    u = torch.tensor(t.informative_basis, dtype=torch.float32)  # (dim, k)
    v = torch.tensor(t.nuisance_basis, dtype=torch.float32)
    train = t.split("train")
    inf = train["views"] @ u  # (n, V, k): the same in every view without jitter
    assert torch.allclose(inf, inf[:, :1].expand_as(inf), atol=1e-5)
    assert torch.allclose(train["x"] @ u, inf[:, 0], atol=1e-5)  # the sample's own s
    nuis = train["views"] @ v  # independent draws of std 2
    assert (nuis[:, 0] - nuis[:, 1]).std().item() == pytest.approx(2 * 2**0.5, rel=0.05)


def test_labels_are_a_linear_function_of_the_informative_directions():
    t = task(nuisance=5.0)
    train = t.split("train")
    s = train["x"].double() @ torch.tensor(t.informative_basis)
    pred = (s @ torch.tensor(t.teacher).T).argmax(1)
    assert t.score(pred, "train") == 1.0
    assert t.score(torch.zeros(500, dtype=torch.long), "train") < 0.6


def test_informative_must_be_below_dim():
    with pytest.raises(UserError, match="informative"):
        make_task("views", dim=4, informative=4)


def test_the_task_sets_real_valued_inputs_and_refuses_other_embeddings():
    from learnscope.models import build_model, model_config

    dims = task().model_dims()
    assert model_config("mlp", {}, dims).embed == "none"
    x = task().split("train")["x"][:5]
    assert build_model("mlp", {"width": 8}, dims)(x).shape == (5, 3)
    with pytest.raises(UserError, match="model.embed"):
        model_config("mlp", {"embed": "onehot"}, dims)
    with pytest.raises(UserError, match="model.kind"):
        model_config("gpt", {}, dims)
