"""Iterated fitting on generated data (model collapse): the data each generation trains on,
and sampling from the previous model."""

from __future__ import annotations

import pytest
import torch

from learnscope.config import validate_config
from learnscope.errors import UserError
from learnscope.runner import build
from learnscope.store import Store
from learnscope.studies.model_collapse import run_chain, sample_answers
from learnscope.tasks import Split
from tests.conftest import tiny

TINY = tiny(name="chain", task={"p": 7}, train={"steps": 20}, probes=[])


@pytest.mark.parametrize("mode, rows", [("replace", [1, 1]), ("accumulate", [2, 3])])
def test_each_generation_trains_on_the_data_its_mode_prescribes(tmp_path, mode, rows):
    store = Store(tmp_path)
    chain = run_chain(TINY, store, 2, mode)
    assert len(chain.runs) == 3 and {r.run_id for r in chain.runs} == set(store.runs()["id"])
    n = len(build(validate_config(TINY)).splits["train"])
    sizes = [len(torch.load(p, weights_only=True)["y"]) for p in chain.data]
    assert sizes == [k * n for k in rows]
    first = torch.load(chain.data[0], weights_only=True)
    real = build(validate_config(TINY)).splits["train"]
    assert torch.equal(first["x"][:n], real["x"])  # the same prompts: a fixed design
    last = store.run(chain.runs[-1].run_id)
    assert last["config"]["task"]["train_data"] == str(chain.data[-1])
    assert (
        "train_real_acc" in chain.runs[-1].summary and "train_real_acc" not in chain.runs[0].summary
    )


def test_sampling_a_confident_model_gives_its_argmax_and_a_flat_one_draws_all_classes():
    trainer = build(validate_config(TINY))
    split = trainer.splits["train"]
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.zero_()
        trainer.model.out.bias[3] = 50.0  # every row: class 3 with probability ~1
    got = sample_answers(trainer, split, torch.Generator().manual_seed(0))
    assert (got["y"] == 3).all() and torch.equal(got["x"], split["x"])
    with torch.no_grad():
        trainer.model.out.bias.zero_()  # uniform over the 7 classes
    many = Split({k: v.repeat(50, *[1] * (v.dim() - 1)) for k, v in split.tensors.items()})
    got = sample_answers(trainer, many, torch.Generator().manual_seed(0))
    share = torch.bincount(got["y"], minlength=7) / len(got["y"])  # 1 200 draws
    assert (share - 1 / 7).abs().max() < 0.04


def test_a_sequence_task_has_its_answer_token_resampled():
    cfg = validate_config(
        {
            "task": {"name": "modular_seq", "op": "add", "p": 5, "train_fraction": 0.5},
            "model": {"kind": "gpt", "n_layer": 1, "n_head": 2, "d_model": 16},
        }
    )
    trainer = build(cfg)
    split = trainer.splits["train"]
    got = sample_answers(trainer, split, torch.Generator().manual_seed(0))
    changed = (got["tokens"] != split["tokens"]).any(0)
    assert changed.nonzero().flatten().tolist() == [5]  # only <bos> a + b = [c] <eos>'s c


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="--mode"):
        run_chain(TINY, Store(tmp_path), 2, "mix")
    with pytest.raises(UserError, match="--generations"):
        run_chain(TINY, Store(tmp_path), 0, "replace")


@pytest.mark.slow
def test_model_collapse_recipe_replacing_degrades_faster_than_accumulating(tmp_path):
    """model-collapse, 3 generations each way. Measured (docs/phenomena.md): error against
    the true answers on the training prompts (train_real loss) 1.22, 1.47, 1.63 when
    replacing, 0.27, 0.41, 0.57 when accumulating."""
    from learnscope.config import load_config

    cfg = load_config("model-collapse")
    loss = {}
    for mode in ("replace", "accumulate"):
        chain = run_chain(cfg, Store(tmp_path / mode), 3, mode)
        loss[mode] = [r.summary["train_real_loss"] for r in chain.runs[1:]]
    assert loss["replace"] == sorted(loss["replace"]) and loss["replace"][-1] > 1.3, loss
    assert all(a < 0.5 * r for a, r in zip(loss["accumulate"], loss["replace"])), loss
