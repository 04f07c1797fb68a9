from __future__ import annotations

import pytest
import torch

from learnscope.config import validate_config
from learnscope.errors import UserError
from learnscope.models.gpt import GPT, GPTConfig
from learnscope.runner import build
from learnscope.tasks import make_task
from learnscope.train.objectives import SequenceObjective, greedy_decode

SEQ = {
    "name": "tiny-seq",
    "seed": 0,
    "task": {"name": "modular_seq", "op": "add", "p": 7, "train_fraction": 0.8},
    "model": {"kind": "gpt", "n_layer": 1, "d_model": 32, "n_head": 2},
    "train": {"lr": 3e-3, "steps": 400, "eval_every": 100},
}


def cfg(**train):
    import copy

    c = copy.deepcopy(SEQ)
    c["train"].update(train)
    return validate_config(c)


def test_a_tiny_gpt_learns_modular_addition_as_a_sequence():
    trainer = build(cfg())
    first = trainer.evaluate()
    final = trainer.fit()
    assert final["train/loss"] < 0.2 * first["train/loss"]
    assert final["train/acc"] == 1.0 and final["train/token_acc"] == 1.0
    assert {"test/acc", "test/token_acc", "test/loss", "weight_norm/unembed.weight"} <= set(final)


class Oracle(torch.nn.Module):
    """Predicts the next token of the row it was built from (a perfect model), or a fixed one."""

    def __init__(self, rows: torch.Tensor, vocab: int, wrong_at: int | None = None) -> None:
        super().__init__()
        self.rows, self.vocab, self.wrong_at = rows, vocab, wrong_at

    def forward(self, tokens):
        n, t = tokens.shape
        nxt = self.rows[:n, 1 : t + 1].clone()
        if self.wrong_at is not None and t - 1 == self.wrong_at:
            nxt[::2, -1] = (nxt[::2, -1] + 1) % self.vocab  # every other row wrong there
        return torch.nn.functional.one_hot(nxt, self.vocab).float() * 10


def test_loss_mask_shift_and_decoding_against_an_oracle():
    task = make_task("modular_seq", op="mul", p=5, train_fraction=0.5)
    split = task.split("test")
    rows = split["tokens"]
    oracle = Oracle(rows, len(task.vocab))
    obj = SequenceObjective()
    out = obj.evaluate_split(oracle, task, "test", split)
    assert out["token_acc"] == 1.0 and out["acc"] == 1.0 and out["loss"] < 1e-3
    decoded = greedy_decode(oracle, rows, split["prompt_len"], task.eos_id)
    assert torch.equal(decoded, rows)
    # the answer is at prompt_len: corrupt it in every other row -> acc 1/2 (rounded up)
    bad = Oracle(rows, len(task.vocab), wrong_at=task.prompt - 1)
    assert obj.evaluate_split(bad, task, "test", split)["acc"] == pytest.approx(
        (len(rows) // 2) / len(rows)
    )
    # decoding only the first 4 rows (2 of them wrong) gives exactly 1/2
    capped = SequenceObjective(eval_examples=4)
    assert capped.decode_accuracy(bad, task, "test", split) == 0.5


def test_decoding_keeps_the_prompt_and_stops_at_eos():
    net = GPT(GPTConfig(vocab_size=6, block_size=8, n_layer=1, d_model=8, n_head=2)).eval()
    with torch.no_grad():
        net.unembed.bias.copy_(torch.tensor([0, 0, 100.0, 0, 0, 0]))  # always <eos> = 2
    tokens = torch.tensor([[1, 4, 5, 3, 3, 3, 3, 3], [1, 4, 3, 3, 3, 3, 3, 3]])
    out = greedy_decode(net, tokens, torch.tensor([3, 2]), eos_id=2)
    assert out.tolist() == [[1, 4, 5, 2, 0, 0, 0, 0], [1, 4, 2, 2, 0, 0, 0, 0]]


def test_sequence_tasks_refuse_mse():
    with pytest.raises(UserError, match="train.loss"):
        build(cfg(loss="mse"))


def test_modular_seq_rows_match_the_modular_family():
    seq = make_task("modular_seq", op="sub", p=7, train_fraction=0.4, noise=0.2, seed=3)
    table = make_task("modular", op="sub", p=7, train_fraction=0.4, noise=0.2, seed=3)
    assert (
        seq.eval_splits == table.eval_splits == ["train", "test", "train_clean", "train_corrupted"]
    )
    for name in seq.eval_splits:
        tokens, x, y = seq.split(name)["tokens"], table.split(name)["x"], table.split(name)["y"]
        assert [seq.decode(r) for r in tokens[:3]] == [
            f"<bos> {a} - {b} = {c} <eos>" for (a, b), c in zip(x[:3].tolist(), y[:3].tolist())
        ]
        assert (seq.split(name)["loss_mask"].sum(1) == 2).all()
        assert seq.split(name)["answer_mask"][:, 5].all()
    train = {tuple(r) for r in seq.split("train")["tokens"][:, 1:4].tolist()}
    assert not train & {tuple(r) for r in seq.split("test")["tokens"][:, 1:4].tolist()}
    batch = seq.sample(10, torch.Generator().manual_seed(0))
    rows = {tuple(r) for r in seq.split("train")["tokens"].tolist()}
    assert {tuple(r) for r in batch["tokens"].tolist()} <= rows


def test_modular_seq_bad_params_are_user_errors():
    with pytest.raises(UserError, match="task.p"):
        make_task("modular_seq", p=1)
    with pytest.raises(UserError, match="task.op"):
        make_task("modular_seq", op="pow")


def test_fresh_tasks_draw_every_batch_with_task_sample():
    import copy

    c = copy.deepcopy(SEQ)
    c["task"] = {"name": "multiplication", "n_digits": 2, "m_digits": 1, "fresh": True}
    c["task"].update(n_train=20, n_test=10)
    c["train"].update(steps=3, eval_every=3, batch_size=8, eval_examples=4)
    trainer = build(validate_config(c))
    drawn = []
    sample = trainer.task.sample
    trainer.task.sample = lambda n, g: drawn.append(n) or sample(n, g)
    metrics = trainer.fit()
    assert drawn == [8, 8, 8] and 0 <= metrics["test/acc"] <= 1
    c["train"]["batch_size"] = None
    with pytest.raises(UserError, match="train.batch_size"):
        build(validate_config(c))


def test_mixed_precision_is_a_no_op_on_cpu():
    trainer = build(cfg(precision="auto", steps=2, eval_every=2, device="cpu"))
    assert not trainer.scaler.is_enabled()
    with trainer.autocast():
        assert trainer.model(torch.zeros(1, 3, dtype=torch.long)).dtype == torch.float32
