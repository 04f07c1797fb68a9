"""Gradual rank increase (learnscope.studies.gradual_rank, PAPERS.md 26): the attention model
and its teacher in closed form, the stage detector on hand-made spectra, and (slow) the study
spec's claims at a seed never used to set them."""

from __future__ import annotations

import pytest
import torch

from learnscope.models.attention import Attention, AttentionConfig
from learnscope.studies.gradual_rank import stages
from learnscope.tasks import make_task
from learnscope.tasks.attention_teacher import teacher_attention


def test_the_model_with_the_teachers_weights_is_the_teacher():
    task = make_task("attention_teacher", d=6, T=5, rank=2, scale=4.0, ratio=2.0, n_train=7)
    assert torch.allclose(torch.linalg.svdvals(task.w_star)[:3], torch.tensor([4.0, 2.0, 0.0]),
                          atol=1e-5)  # fmt: skip
    net = Attention(AttentionConfig(d=6))
    with torch.no_grad():  # W_Q W_K^T = W*: W_Q = W*, W_K = I
        net.w_q.copy_(task.w_star)
        net.w_k.copy_(torch.eye(6))
    x, y = task.split("train")["x"], task.split("train")["y"]
    assert torch.allclose(net(x), y, atol=1e-5)
    assert torch.allclose(
        teacher_attention(x, torch.zeros(6, 6)), x.mean(1, keepdim=True).expand_as(x)
    )


def test_stages_read_rank_steps_and_overlap():
    teacher = torch.tensor([8.0, 4.0, 2.0])
    steps = [0, 100, 200, 300]
    one_at_a_time = [torch.tensor(v) for v in
                     ([0, 0, 0], [5, 0.1, 0], [8, 3, 0.05], [8, 4, 1.5])]  # fmt: skip
    out = stages(steps, one_at_a_time, teacher)
    assert out == {"rank": 3.0, "t1": 100.0, "t2": 200.0, "t3": 300.0, "overlap": 0.025}
    together = [torch.tensor(v) for v in ([0, 0, 0], [5, 3, 1.5], [8, 4, 2])]  # fmt: skip
    out = stages([0, 1, 2], together, teacher)
    assert out["t1"] == out["t2"] == out["t3"] == 1 and out["overlap"] == 0.75
    assert stages([0], [torch.zeros(3)], teacher) == {"rank": 0.0}  # untrained: nothing


@pytest.mark.slow
def test_the_study_claims_hold_at_a_new_seed(tmp_path):
    from learnscope.store import Store
    from learnscope.studies.study import verify_study

    v = verify_study("gradual-rank-init", Store(tmp_path), seeds=1, seed_start=12)
    failed = [r.line() for r in v.results if not r.passed]
    assert not failed, failed
