"""``incremental_rank`` per row block (``parts``) and as a thresholded count (``threshold``)."""

from __future__ import annotations

import pytest
import torch

from learnscope.config import validate_config
from learnscope.errors import UserError
from learnscope.probes import incremental_rank
from learnscope.probes.rank import threshold_rank
from learnscope.runner import build, probe_plan

GPT = {
    "task": {"name": "modular_seq", "op": "add", "p": 5, "train_fraction": 0.5},
    "model": {"kind": "gpt", "n_layer": 1, "n_head": 2, "d_model": 8},
    "train": {"steps": 2},
}
SITE = "blocks.0.attn.qkv.weight"


def plan(**options):
    cfg = validate_config({**GPT, "probes": [{"probe": "incremental_rank", "sites": [SITE],
                                              **options}]})  # fmt: skip
    trainer = build(cfg)
    return trainer, probe_plan(cfg, trainer)


def test_threshold_rank_counts_singular_values_above_a_fraction_of_the_largest():
    d = torch.diag(torch.tensor([4.0, 2.0, 0.5, 0.0], dtype=torch.float64))
    assert [threshold_rank(d, t) for t in (0.1, 0.2, 0.6)] == [3.0, 2.0, 1.0]
    assert threshold_rank(torch.zeros(3, 3), 0.1) == 0.0
    assert incremental_rank(d, torch.zeros(4, 4), threshold=0.1) == 3.0


def test_parts_split_q_k_v_and_each_is_the_rank_of_its_update():
    trainer, p = plan(parts=3)
    w = trainer.model.get_parameter(SITE)
    with torch.no_grad():  # W_Q moves in rank 1, W_K in rank 2, W_V not at all
        w[:8] += torch.outer(torch.ones(8), torch.arange(8.0))
        w[8:16] += torch.diag(torch.tensor([3.0, 3.0, 0, 0, 0, 0, 0, 0]))
    values = p.compute(trainer.model, trainer.objective.forward, trainer.objective.loss)
    assert values[f"incremental_rank/{SITE}/part0"] == pytest.approx(1.0, abs=1e-6)
    assert values[f"incremental_rank/{SITE}/part1"] == pytest.approx(2.0, abs=1e-6)
    assert values[f"incremental_rank/{SITE}/part2"] == 0.0


@pytest.mark.parametrize(
    "options, field", [({"parts": 5}, "parts"), ({"threshold": 1.5}, "threshold")]
)
def test_bad_parts_or_threshold_name_the_field(options, field):
    with pytest.raises(UserError, match=f"probes.0.{field}"):
        plan(**options)


def test_a_threshold_records_the_count_beside_the_effective_rank():
    cfg = validate_config(
        {
            **GPT,
            "probes": [
                {"probe": "incremental_rank", "sites": [SITE]},
                {"probe": "incremental_rank", "sites": [SITE], "threshold": 0.1},
            ],
        }
    )
    trainer = build(cfg)
    p = probe_plan(cfg, trainer)
    with torch.no_grad():
        trainer.model.get_parameter(SITE)[:3, :3] += torch.diag(torch.tensor([1.0, 0.5, 0.01]))
    values = p.compute(trainer.model, trainer.objective.forward, trainer.objective.loss)
    assert values[f"incremental_rank/{SITE}/count"] == 2.0
    assert values[f"incremental_rank/{SITE}"] == pytest.approx(1.958, abs=1e-3)  # exp(H(p))
