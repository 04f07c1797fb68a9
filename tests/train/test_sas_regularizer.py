"""The SAS regulariser (Chen et al. 2024): its closed form, its schedule, and that training with
it suppresses attention along dependency edges."""

from __future__ import annotations

import pytest
import torch

from learnscope.config import RegularizerConfig, validate_config
from learnscope.errors import UserError
from learnscope.models.hooks import capture
from learnscope.runner import build
from learnscope.train.regularizers import syntactic_attention


def test_closed_form_on_gold_and_uniform_attention() -> None:
    parents = torch.tensor([[1, -1, 1, -1]])  # the last position is padding
    gold = torch.zeros(1, 2, 4, 4)
    gold[0, 0, [0, 2], 1] = 1.0  # head 0: child -> parent
    gold[0, 1, 1, [0, 2]] = 0.5  # head 1: parent -> children
    assert syntactic_attention(gold, parents).item() == pytest.approx((1 + 1 + 0.5 + 0.5) / 4)
    uniform = torch.full((1, 3, 4, 4), 0.25)
    assert syntactic_attention(uniform, parents).item() == pytest.approx(0.25)
    no_edges = torch.full((1, 4), -1)
    assert syntactic_attention(uniform, no_edges).item() == 0.0


def config(steps: int, lam: float, until: int | None) -> dict:
    reg = {"kind": "sas", "lambda_sas": lam} | ({"until_step": until} if until else {})
    return {
        "seed": 0,
        "task": {"name": "pcfg", "n_train": 128, "n_test": 32, "max_len": 10},
        "model": {"kind": "gpt", "causal": False, "n_layer": 1, "n_head": 2, "d_model": 16},
        "train": {
            "lr": 0.01,
            "batch_size": 32,
            "steps": steps,
            "eval_every": steps,
            "regularizers": [reg],
        },
        "probes": [],
    }


def reg_after(steps: int, lam: float, until: int | None = None) -> tuple[float, float]:
    """The raw term on the last batch, and the training loss, after ``steps`` steps."""
    trainer = build(validate_config(config(steps, lam, until)))
    trainer.fit()
    return trainer.last_terms["reg/sas"].item(), trainer.metrics["train/loss"]


def test_suppression_lowers_and_promotion_raises_syntactic_attention() -> None:
    suppressed, _ = reg_after(40, 10.0)
    promoted, _ = reg_after(40, -10.0)
    assert suppressed < 0.1 < 0.5 < promoted


def test_the_term_is_released_after_until_step() -> None:
    trainer = build(validate_config(config(4, 1e3, until=2)))
    regs, batch = trainer.regularizers, trainer.splits["train"].tensors
    with capture(trainer.model, regs.sites, False) as acts:
        trainer.objective.forward(trainer.model, batch)
    for step, weight in [(0, 1e3), (1, 1e3), (2, 0.0), (3, 0.0)]:
        loss, terms = regs(acts, batch, step)
        assert terms["sas"].item() > 0  # reported at every step
        assert loss.item() == pytest.approx(weight * terms["sas"].item())


def test_config_defaults_and_refusals() -> None:
    reg = RegularizerConfig(kind="sas")
    assert reg.layers == ["blocks.*.attn.hook_pattern"] and reg.until_step is None
    with pytest.raises(ValueError, match="until_step"):
        RegularizerConfig(kind="sas", until_step=0)
    bad = config(2, 1.0, None)
    bad["train"]["regularizers"][0]["layers"] = ["blocks.0.hook_resid_post"]
    with pytest.raises(UserError, match="attention patterns"):
        build(validate_config(bad))
    causal = config(2, 1.0, None)
    causal["model"]["causal"] = True
    with pytest.raises(UserError, match="model.causal"):
        build(validate_config(causal))
