"""Reinforcement fine-tuning: the estimator against closed forms, and the objective in a run."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from learnscope import checkpoint
from learnscope.config import validate_config
from learnscope.errors import UserError
from learnscope.models.gpt import GPT, GPTConfig
from learnscope.runner import build
from learnscope.tasks import make_task
from learnscope.train.objectives import greedy_decode, sample_decode
from learnscope.train.rft import generated_mask, reinforce_loss


def test_reinforce_is_unbiased_on_a_bandit():
    """A softmax bandit ``p = softmax(z)``: ``grad_z E_p r = p (r - E_p r)`` exactly; the mean of
    the leave-one-out REINFORCE estimate over many batches converges to it."""
    torch.manual_seed(0)
    z = torch.tensor([0.5, -1.0, 0.2, 1.5], requires_grad=True)
    r = torch.tensor([1.0, 0.0, 0.3, -0.5])
    p = z.detach().softmax(0)
    exact = p * (r - (p * r).sum())
    n, k = 20000, 4
    actions = torch.multinomial(p.expand(n, -1), k, replacement=True)  # (n, k)
    logp = torch.log_softmax(z, 0)[actions]
    (-reinforce_loss(logp, r[actions])).backward()  # grad of the estimate of +V
    # each of n * k terms has std ~ 1; the mean's std ~ 1 / sqrt(n k) ~ 0.0035
    assert torch.allclose(z.grad, exact, atol=0.015), (z.grad, exact)
    assert not torch.allclose(exact, torch.zeros(4), atol=0.05)  # a gradient worth finding


def test_reinforce_is_zero_when_the_reward_is_constant():
    z = torch.randn(5, requires_grad=True)
    actions = torch.randint(0, 5, (3, 6))
    loss = reinforce_loss(torch.log_softmax(z, 0)[actions], torch.full((3, 6), 0.7))
    loss.backward()
    assert z.grad.abs().max().item() == 0.0


def test_reinforce_needs_two_answers():
    with pytest.raises(ValueError):
        reinforce_loss(torch.zeros(3, 1), torch.zeros(3, 1))


def test_generated_mask_stops_at_the_first_eos():
    samples = torch.tensor([[1, 4, 2, 2, 5], [1, 4, 5, 6, 7]])
    mask = generated_mask(samples, torch.tensor([1, 2]), eos_id=2)
    assert mask.tolist() == [[0, 1, 1, 0, 0], [0, 0, 1, 1, 1]]


def test_sampling_at_low_temperature_is_greedy_and_keeps_prompts():
    torch.manual_seed(0)
    net = GPT(GPTConfig(vocab_size=7, block_size=8, d_model=16, n_head=2, n_layer=1)).eval()
    tokens = torch.randint(1, 7, (6, 8))
    prompt = torch.tensor([3, 3, 4, 4, 5, 2])
    greedy = greedy_decode(net, tokens, prompt)
    cold = sample_decode(net, tokens, prompt, temperature=1e-4)
    assert torch.equal(cold, greedy)
    hot = sample_decode(net, tokens, prompt, temperature=5.0, generator=torch.Generator())
    keep = torch.arange(8) < prompt[:, None]
    assert torch.equal(hot[keep], tokens[keep])


def test_sampling_follows_the_model_distribution():
    """One generated position: the empirical frequencies match softmax(logits / tau)."""
    torch.manual_seed(1)
    net = GPT(GPTConfig(vocab_size=4, block_size=3, d_model=8, n_head=2, n_layer=1, init_std=1.0))
    net.eval()
    tokens = torch.tensor([[1, 2, 0]]).expand(40000, -1).contiguous()
    out = sample_decode(net, tokens, torch.full((40000,), 2), temperature=2.0)
    freq = torch.bincount(out[:, 2], minlength=4).float() / len(out)
    expected = (net(tokens[:1, :2])[0, -1] / 2.0).softmax(-1)
    assert torch.allclose(freq, expected, atol=0.01), (freq, expected)


def test_partial_reward_counts_target_tokens():
    task = make_task("addition", lo=2, hi=2, test_lengths=[3], n_train=4, n_test=3)
    rows = task.split("train").tensors
    pred = rows["tokens"].clone()
    assert task.row_scores(pred, rows).tolist() == [1.0] * 4
    first = int(rows["answer_mask"][0].nonzero()[0])
    pred[0, first] = 3 if pred[0, first] != 3 else 4  # a wrong digit (ids 4.. are digits)
    targets = rows["loss_mask"][0] & (torch.arange(pred.shape[1]) >= rows["prompt_len"][0])
    assert task.row_scores(pred, rows)[0].item() == 0.0
    partial = task.row_scores(pred, rows, partial=True)[0].item()
    assert partial == pytest.approx(1 - 1 / targets.sum().item())


def _rft_cfg(**train):
    return validate_config(
        {
            "task": {
                "name": "addition",
                "lo": 1,
                "hi": 2,
                "test_lengths": [3],
                "n_train": 16,
                "n_test": 8,
            },  # fmt: skip
            "model": {"kind": "gpt", "n_layer": 1, "n_head": 2, "d_model": 16},
            "train": {
                "objective": "rft",
                "batch_size": 4,
                "steps": 2,
                "eval_every": 1,
                "rft": {"samples": 3, "probe_inputs": 3, "probe_samples": 4},
                **train,
            },
            "probes": [],
        }  # fmt: skip
    )


def test_rft_loss_is_zero_for_constant_rewards_and_kl_starts_at_zero():
    trainer = build(_rft_cfg(rft={"samples": 3, "kl": 0.5, "probe_inputs": 3}))
    batch = trainer.splits["train"].rows(torch.arange(4))
    loss = trainer.objective.train_loss(trainer.model, batch)
    assert trainer.objective.last["rft/kl"] == pytest.approx(0.0, abs=1e-6)  # p == p_ref
    assert trainer.objective.last["rft/train_reward"] == 0.0  # an untrained model
    assert loss.item() == pytest.approx(0.0, abs=1e-6)  # every reward 0: r - b = 0


def test_per_input_grad_norm_is_zero_exactly_when_rewards_are_equal():
    trainer = build(_rft_cfg())
    obj, rows = trainer.objective, trainer.splits["train"].rows(torch.arange(4))
    stats = obj.input_stats(trainer.model, rows, 4, torch.Generator().manual_seed(0))
    assert stats["reward_std"].tolist() == [0.0] * 4
    assert stats["grad_norm"].tolist() == [0.0] * 4
    # a partial reward varies between answers: non-zero std, non-zero gradient
    obj.rft = obj.rft.model_copy(update={"reward": "partial", "temperature": 3.0})
    stats = obj.input_stats(trainer.model, rows, 8, torch.Generator().manual_seed(0))
    varied = stats["reward_std"] > 0
    assert varied.any()
    assert (stats["grad_norm"][varied] > 0).all()
    assert (stats["grad_norm"][~varied] == 0).all()


def test_rft_run_logs_per_input_statistics(tmp_path):
    from learnscope.runner import execute
    from learnscope.store import Store

    store = Store(tmp_path)
    result = execute(_rft_cfg(rft={"samples": 3, "reward": "partial", "probe_inputs": 3,
                                   "probe_samples": 4}), store)  # fmt: skip
    assert result.status == "finished"
    table = store.metric_table(result.run_id)
    for key in ("rft/reward_std", "rft/grad_norm", "rft/in2/reward_mean", "rft/train_reward"):
        assert key in table.columns, key
    assert sorted(table["rft/in0/grad_norm"].dropna().index.tolist()) == [0, 1, 2]


def test_rft_needs_a_sequence_task():
    cfg = validate_config(
        {"task": {"name": "modular", "p": 7}, "train": {"objective": "rft", "steps": 1}}
    )
    with pytest.raises(UserError, match="train.objective"):
        build(cfg)


def test_a_resumed_rft_run_keeps_its_kl_reference(tmp_path):
    """The KL term's reference policy and the last batch's reward are checkpointed: a run
    stopped at step 3 and resumed logs the same table as an uninterrupted one (before, the
    KL was measured against the step-3 weights, and the step-3 row lost its RFT values)."""
    from learnscope.runner import execute
    from learnscope.store import Store
    from learnscope.train.loop import Callback

    def cfg():
        return _rft_cfg(lr=0.03, steps=6, checkpoint_every=2, rft={"samples": 3, "kl": 0.5,
                        "reward": "partial", "probe_inputs": 2, "probe_samples": 3})  # fmt: skip

    straight_store = Store(tmp_path / "a")
    straight = execute(cfg(), straight_store)

    class Stop(Callback):
        def on_step_end(self, trainer, step, loss):
            if step == 3:
                trainer.should_stop = True

    store = Store(tmp_path / "b")
    first = execute(cfg(), store, [Stop()])
    assert first.status == "stopped" and checkpoint.steps(first.dir / "checkpoints")[-1] == 3
    assert (
        "reference" in checkpoint.load(first.dir / "checkpoints" / "step_00000003.pt")["objective"]
    )
    assert execute(cfg(), store, resume=first.run_id).status == "finished"
    a = straight_store.metric_table(straight.run_id)
    b = store.metric_table(first.run_id)
    assert list(a.index) == list(b.index) == list(range(7))
    assert a["train_step/loss"].abs().sum() > 0
    assert a["rft/kl"].iloc[-1] > 1e-4  # the policy moved away from its reference
    pd.testing.assert_frame_equal(a[sorted(a.columns)], b[sorted(b.columns)], rtol=1e-6)
