from __future__ import annotations

import torch

from learnscope import checkpoint
from learnscope.config import validate_config
from learnscope.runner import build, execute
from learnscope.store import Store
from learnscope.train.loop import Callback


def test_loss_goes_down_on_a_tiny_task(tiny_config):
    tiny_config["train"].update(steps=60, eval_every=20)
    trainer = build(validate_config(tiny_config))
    first = trainer.evaluate()["train/loss"]
    final = trainer.fit()
    assert final["train/loss"] < 0.5 * first
    assert final["train/acc"] > 0.9
    assert trainer.step == 60 and trainer.status == "finished"


def _history(cfg):
    seen = []

    class Keep(Callback):
        def on_metrics(self, trainer, step, metrics):
            seen.append((step, dict(metrics)))

    trainer = build(validate_config(cfg))
    trainer.add_callback(Keep())
    trainer.fit()
    return seen


def test_same_seed_same_metrics_on_cpu(tiny_config):
    tiny_config["train"].update(batch_size=16, steps=25, eval_every=5, optimizer="adam")
    a, b = _history(tiny_config), _history(tiny_config)
    assert [s for s, _ in a] == [0, 5, 10, 15, 20, 25]
    assert a == b
    tiny_config["seed"] = 1
    assert _history(tiny_config) != a


def test_mse_sgd_cosine_and_clipping_run(tiny_config):
    tiny_config["train"].update(
        optimizer="sgd",
        momentum=0.9,
        loss="mse",
        lr=0.05,
        schedule="warmup_cosine",
        warmup_steps=5,
        grad_clip=1.0,
        steps=20,
        eval_every=20,
    )
    trainer = build(validate_config(tiny_config))
    metrics = trainer.fit()
    assert metrics["lr"] < 0.05 and torch.isfinite(torch.tensor(metrics["train/loss"]))


def test_noise_logs_clean_and_corrupted_accuracy(tiny_config, runs_dir):
    tiny_config["task"]["noise"] = 0.2
    result = execute(validate_config(tiny_config), Store(runs_dir))
    assert {"train_clean_acc", "train_corrupted_acc"} <= set(result.summary)
    names = set(Store(runs_dir).metric_table(result.run_id).columns)
    assert {
        "train_clean/acc",
        "train_corrupted/acc",
        "weight_norm/out.weight",
        "weight_norm/layers.0.linear.weight",
    } <= names


def test_resume_continues_exactly(tiny_config, runs_dir):
    tiny_config["train"].update(batch_size=16, steps=40, eval_every=10, checkpoint_every=20)
    straight = execute(validate_config(tiny_config), Store(runs_dir / "a"))

    store = Store(runs_dir / "b")

    class Kill(Callback):
        def on_step_end(self, trainer, step, loss):
            if step == 30:  # after the step-20 checkpoint, as if the process died here
                trainer.should_stop = True

    first = execute(validate_config(tiny_config), store, [Kill()])
    assert first.status == "stopped"
    ckpt_dir = first.dir / "checkpoints"
    assert checkpoint.steps(ckpt_dir) == [20, 30]
    (ckpt_dir / "step_00000030.pt").write_bytes(b"torn")  # an unreadable last checkpoint
    resumed = execute(validate_config(tiny_config), store, resume=first.run_id)
    assert resumed.status == "finished"
    a = Store(runs_dir / "a").metric_table(straight.run_id)
    b = store.metric_table(first.run_id)
    assert list(a.index) == list(b.index) == [0, 10, 20, 30, 40]
    assert torch.allclose(torch.tensor(a.values), torch.tensor(b.values), equal_nan=True)
