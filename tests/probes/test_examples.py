"""Per-example records (learnscope.probes.examples): EL2N, per-example loss and GraNd against
closed forms and a reference computed row by row; forgetting events on hand-made correctness
sequences (Toneva et al. 2019)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from learnscope.probes.examples import (
    el2n,
    forgetting_events,
    forgetting_score,
    grand,
    learned,
    per_example_loss,
    records,
    unforgettable,
)


def ce(out, batch):
    return F.cross_entropy(out, batch["y"])


def test_el2n_of_a_known_softmax():
    # softmax of log(p) is p: rows with known probabilities
    p = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    y = torch.tensor([0, 0, 2])
    want = [
        math.sqrt(0.5**2 + 0.25**2 + 0.25**2),
        math.sqrt(0.9**2 + 0.8**2 + 0.1**2),
        math.sqrt(2 * (1 / 3) ** 2 + (2 / 3) ** 2),
    ]
    assert el2n(p.log(), y).tolist() == pytest.approx(want, rel=1e-6)


def test_el2n_bounds():
    z = torch.randn(50, 7, generator=torch.Generator().manual_seed(0)) * 10
    e = el2n(z, torch.randint(0, 7, (50,), generator=torch.Generator().manual_seed(1)))
    assert (e >= 0).all() and (e <= math.sqrt(2) + 1e-6).all()


def test_per_example_loss_is_cross_entropy_per_row():
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(20, 5, generator=g), torch.randint(0, 5, (20,), generator=g)
    got = per_example_loss(z, y, ce)
    assert torch.allclose(got, F.cross_entropy(z, y, reduction="none"), atol=1e-6)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def test_grand_equals_a_backward_pass_per_row():
    model = _mlp()
    g = torch.Generator().manual_seed(1)
    batch = {"x": torch.randn(12, 4, generator=g), "y": torch.randint(0, 3, (12,), generator=g)}

    def forward(m, b):
        return m(b["x"])

    want = []
    for i in range(12):
        model.zero_grad()
        row = {k: v[i : i + 1] for k, v in batch.items()}
        ce(forward(model, row), row).backward()
        want.append(math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters())))
    got = grand(model, forward, ce, batch)
    assert got.tolist() == pytest.approx(want, rel=1e-5)


def test_grand_closed_form_linear_squared_error():
    # loss ||W x - y||^2 / 2: gradient (W x - y) x^T, norm ||W x - y|| ||x||
    lin = nn.Linear(3, 2, bias=False)
    w = torch.tensor([[1.0, 0.0, 2.0], [0.0, -1.0, 1.0]])
    lin.weight.data.copy_(w)
    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])
    y = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    want = ((x @ w.T - y).norm(dim=1) * x.norm(dim=1)).tolist()
    got = grand(
        lin, lambda m, b: m(b["x"]), lambda o, b: 0.5 * (o - b["y"]).pow(2).sum(), {"x": x, "y": y}
    )
    assert got.tolist() == pytest.approx(want, rel=1e-6)


def test_records_arrays():
    model = _mlp().eval()
    g = torch.Generator().manual_seed(2)
    batch = {"x": torch.randn(9, 4, generator=g), "y": torch.randint(0, 3, (9,), generator=g)}
    r = records(model, lambda m, b: m(b["x"]), ce, batch, with_grand=True)
    assert set(r) == {"loss", "correct", "el2n", "grand"}
    assert all(v.shape == (9,) for v in r.values())
    assert r["correct"].dtype == bool and r["loss"].dtype == np.float32
    with torch.no_grad():
        logits = model(batch["x"])
    assert r["correct"].tolist() == (logits.argmax(1) == batch["y"]).tolist()
    assert r["loss"].mean() == pytest.approx(float(ce(logits, batch)), rel=1e-5)


# -- forgetting ----------------------------------------------------------------------------


def test_forgetting_count_on_a_hand_made_sequence():
    # columns: examples; rows: records in time order
    correct = np.array(
        [
            [0, 1, 1, 0, 1],
            [1, 0, 1, 0, 1],
            [1, 1, 1, 0, 0],
            [0, 0, 1, 0, 1],
            [1, 1, 1, 0, 1],
        ],
        dtype=bool,
    )
    # example 0: 1->0 at t2->t3: one event; example 1: t0->t1 and t2->t3: two;
    # example 2: never forgotten; 3: never learned; 4: t1->t2: one
    assert forgetting_events(correct).tolist() == [1, 2, 0, 0, 1]
    assert learned(correct).tolist() == [True, True, True, False, True]
    assert unforgettable(correct).tolist() == [False, False, True, False, False]
    assert forgetting_score(correct).tolist() == [1.0, 2.0, 0.0, math.inf, 1.0]


def test_alternating_correctness_counts_every_drop():
    seq = np.array([1, 0] * 5, dtype=bool)[:, None]  # correct, wrong, ... : 5 drops
    assert forgetting_events(seq).tolist() == [5]
    assert not unforgettable(seq)[0]


def test_one_record_has_no_events():
    assert forgetting_events(np.ones((1, 3), bool)).tolist() == [0, 0, 0]
    assert unforgettable(np.array([[1, 0, 1]], bool)).tolist() == [True, False, True]
