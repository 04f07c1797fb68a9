"""The Transformer recipes that compare two runs (slow: minutes on a 2-core CPU).

Single-run outcomes are the ``expect:`` of each recipe, checked by ``test_recipes.py``.
"""

from __future__ import annotations

import pytest
import torch

from learnscope.config import load_config
from learnscope.models.hooks import capture
from learnscope.runner import build


def attention_entropy(model, tokens) -> dict[str, float]:
    """Mean over rows, heads and queries of ``-sum_k A_qk log A_qk`` per layer (Zhai et al.)."""
    model.eval()
    with torch.no_grad(), capture(model, "blocks.*.attn.hook_pattern") as acts:
        model(tokens)
    return {k: -(a * a.clamp_min(1e-12).log()).sum(-1).mean().item() for k, a in acts.items()}


def train(name):
    trainer = build(load_config(name))
    metrics = trainer.fit()
    tokens = trainer.splits["test"]["tokens"][:64, :-1]
    return metrics, attention_entropy(trainer.model, tokens)


@pytest.mark.slow
def test_sigma_reparam_prevents_attention_entropy_collapse():
    base, base_ent = train("sigma-reparam-baseline")
    sr, sr_ent = train("sigma-reparam")
    assert min(base_ent.values()) < 0.1  # at least one layer's attention is one-hot
    assert min(sr_ent.values()) > 1.0
    assert sr["train/loss"] < base["train/loss"] - 0.2
