"""The SAS probe (Chen et al. 2024): closed-form cases, and the registry entry on a real run."""

from __future__ import annotations

import pytest
import torch

from learnscope.errors import UserError
from learnscope.models import build_model
from learnscope.probes.attention import head_uas, sas
from learnscope.probes.plan import plan_probes
from learnscope.tasks import make_task
from learnscope.train.objectives import MLMObjective


def gold_pattern(parents: torch.Tensor, heads: int = 1) -> torch.Tensor:
    """Attention (b, h, T, T) putting all of each token's weight on its parent (the root and
    padding attend to themselves)."""
    b, t = parents.shape
    target = torch.where(parents >= 0, parents, torch.arange(t))
    return torch.nn.functional.one_hot(target, t).float()[:, None].expand(b, heads, t, t)


def test_gold_parent_map_scores_one_and_uniform_one_over_length() -> None:
    task = make_task("pcfg", n_train=64, n_test=4, seed=0)
    parents = task.split("train")["parents"]  # (64, 16), padded with -1
    value, per_head = sas([gold_pattern(parents, heads=3)], parents)
    assert value == 1.0 and torch.equal(per_head, torch.ones(1, 3))
    t = parents.shape[1]
    uniform = torch.full((64, 2, t, t), 1.0 / t)
    assert head_uas(uniform, parents).tolist() == pytest.approx([1 / t, 1 / t])


def test_the_best_head_over_layers_is_taken() -> None:
    parents = torch.tensor([[1, -1, 1, 2]])
    wrong = gold_pattern(torch.tensor([[2, -1, 3, 0]]))  # every edge wrong
    half = gold_pattern(torch.tensor([[1, -1, 0, 0]]))  # edge 0 right, 2 and 3 wrong
    value, per_head = sas([torch.cat([wrong, half], 1), torch.cat([half, wrong], 1)], parents)
    assert per_head.flatten().tolist() == pytest.approx([0.0, 1 / 3, 1 / 3, 0.0])
    assert value == pytest.approx(1 / 3)
    assert sas([torch.cat([wrong, half], 1), gold_pattern(parents, 2)], parents)[0] == 1.0


def test_ties_count_one_over_their_number() -> None:
    parents = torch.tensor([[1, -1]])
    pattern = torch.tensor([[[[0.5, 0.5], [0.5, 0.5]]]])
    assert head_uas(pattern, parents).item() == pytest.approx(0.5)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="expected pattern"):
        head_uas(torch.ones(2, 3, 3), torch.zeros(2, 3, dtype=torch.long))


def test_registry_records_sas_on_a_pcfg_probe_batch() -> None:
    task = make_task("pcfg", n_train=32, n_test=8, seed=0)
    torch.manual_seed(0)
    model = build_model("gpt", {"causal": False, "n_layer": 2, "d_model": 16}, task.model_dims())
    obj = MLMObjective()
    specs = [{"probe": "sas", "sites": ["blocks.*.attn.hook_pattern"]}]
    plan = plan_probes(specs, model, task, obj.forward, kind="gpt", eval_every=1, batch_size=32)
    values = plan.compute(model, obj.forward, obj.loss)
    heads = [k for k in values if k.startswith("sas/blocks.")]
    assert len(heads) == 2 * 4 and values["sas/max"] == max(values[k] for k in heads)
    assert 0 <= values["sas/max"] <= 1


def test_sas_needs_a_task_with_parents() -> None:
    task = make_task("modular", p=5, train_fraction=0.5)
    model = build_model("mlp", {"width": 8}, task.model_dims())
    with pytest.raises(UserError, match="parents"):
        specs = [{"probe": "sas", "sites": ["layers.*.hook_post"]}]
        plan_probes(specs, model, task, lambda m, b: m(b["x"]), kind="mlp", eval_every=1)
