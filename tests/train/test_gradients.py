"""The grokking accelerators against their formulas (Grokfast: Lee et al. 2024; ⊥Grad and
StableMax: Prieto et al. 2025, PAPERS.md 30-31): Grokfast's EMA and MA filters on a known
gradient sequence, ⊥Grad's projection, StableMax's values and its loss where float32 softmax
collapses; a run with each switch resumes exactly; the stacked engine leaves them to the loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from learnscope import checkpoint
from learnscope.config import TrainConfig, validate_config
from learnscope.runner import execute
from learnscope.store import Store
from learnscope.train.ensemble import ensemble_key
from learnscope.train.gradients import GradientSteps, stablemax, stablemax_cross_entropy
from learnscope.train.loop import Callback


def steps(cfg: TrainConfig, grads: list[float]) -> list[float]:
    """The transformed gradient of a one-weight parameter at each step, given its gradients."""
    w = torch.nn.Parameter(torch.tensor([3.0]))
    transform = GradientSteps(cfg, [w])
    out = []
    for g in grads:
        w.grad = torch.tensor([g])
        transform()
        out.append(float(w.grad))
    return out


def test_grokfast_ema_follows_its_formula():
    """``h = alpha h + (1 - alpha) g`` from ``h_0 = g_0``; ``g_hat = g + lamb h``."""
    cfg = TrainConfig(grad_filter={"kind": "ema", "alpha": 0.5, "lamb": 2.0})
    got = steps(cfg, [1.0, 3.0, -1.0])
    h = [1.0, 0.5 * 1 + 0.5 * 3, 0.5 * 2 + 0.5 * -1]  # 1, 2, 0.5
    assert got == pytest.approx([1 + 2 * h[0], 3 + 2 * h[1], -1 + 2 * h[2]])


def test_grokfast_ma_waits_for_a_full_window():
    cfg = TrainConfig(grad_filter={"kind": "ma", "window": 3})  # lamb 5 by default
    got = steps(cfg, [1.0, 2.0, 3.0, 7.0])
    assert got == pytest.approx([1.0, 2.0, 3 + 5 * 2.0, 7 + 5 * 4.0])


def test_orthogonal_gradient_drops_the_part_along_the_weights_and_keeps_the_norm():
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    w.grad = torch.tensor([3.0, 4.0]) + torch.tensor([4.0, -3.0])  # along w, and across it
    GradientSteps(TrainConfig(orthogonal=True), [w])()
    assert float(w.grad @ w.detach()) == pytest.approx(0.0, abs=1e-5)
    assert float(w.grad.norm()) == pytest.approx(math.sqrt(50))
    assert w.grad.tolist() == pytest.approx([4 * math.sqrt(2), -3 * math.sqrt(2)])


def test_stablemax_and_its_loss_where_softmax_collapses():
    """``s(x) = x + 1`` (x >= 0), ``1 / (1 - x)`` (x < 0). With a logit gap of 200, float32
    cross-entropy is exactly 0 and so is its gradient (softmax collapse); StableMax's is not."""
    z = torch.tensor([[2.0, 0.0, -3.0]])
    assert stablemax(z).tolist()[0] == pytest.approx([3 / 4.25, 1 / 4.25, 0.25 / 4.25])
    y = torch.tensor([0])
    big = torch.tensor([[200.0, 0.0]], requires_grad=True)
    ce = F.cross_entropy(big, y)
    ce.backward()
    assert ce.item() == 0.0 and big.grad.abs().max().item() == 0.0
    big.grad = None
    sm = stablemax_cross_entropy(big, y)
    sm.backward()
    assert sm.item() == pytest.approx(-math.log(201 / 202)) and big.grad.abs().max() > 0


@pytest.mark.parametrize(
    "switch",
    [
        {"grad_filter": {"kind": "ema"}},
        {"grad_filter": {"kind": "ma", "window": 5}},
        {"orthogonal": True},
        {"loss": "stablemax_ce"},
    ],
)
def test_a_run_with_each_switch_resumes_exactly(switch, tiny_config, tmp_path):
    tiny_config["train"].update(batch_size=16, steps=40, eval_every=10, checkpoint_every=20)
    tiny_config["train"].update(switch)
    tiny_config["probes"] = [{"probe": "softmax_collapse"}]
    cfg = validate_config(tiny_config)
    assert ensemble_key(cfg) is None  # the loop only
    straight = execute(cfg, Store(tmp_path / "a"))

    class Kill(Callback):
        def on_step_end(self, trainer, step, loss):
            if step == 30:
                trainer.should_stop = True

    store = Store(tmp_path / "b")
    first = execute(cfg, store, [Kill()])
    (first.dir / "checkpoints" / "step_00000030.pt").unlink()  # back to step 20
    assert checkpoint.steps(first.dir / "checkpoints") == [20]
    execute(cfg, store, resume=first.run_id)
    a = Store(tmp_path / "a").metric_table(straight.run_id)
    b = store.metric_table(first.run_id)
    assert list(a.columns) == list(b.columns) and "softmax_collapse/logits" in a.columns
    a, b = torch.tensor(a.values), torch.tensor(b.values)
    assert torch.allclose(a, b, rtol=0, atol=0, equal_nan=True)  # bit for bit


def test_a_bad_dtype_of_the_collapse_probe_is_refused(tiny_config):
    from learnscope.errors import UserError
    from learnscope.runner import build, probe_plan

    tiny_config["probes"] = [{"probe": "softmax_collapse", "dtype": "float8"}]
    cfg = validate_config(tiny_config)
    with pytest.raises(UserError, match="dtype: expected float16, float32 or float64"):
        probe_plan(cfg, build(cfg))
