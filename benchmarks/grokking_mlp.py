"""learnscope's trainer against a bare PyTorch loop on the ``grokking-mlp`` recipe.

Both sides train the same network (Gromov's ``W2 (W1 x)^2``, one-hot operands, the same
initial weights), on the same split, with the same full-batch AdamW, for the same steps,
and both evaluate train and test loss and accuracy every ``eval_every`` steps (a bare loop
needs that too, to see grokking). learnscope adds its callbacks, weight norms and the SQLite
store. Printed: optimiser steps per second for each side, their ratio (target >= 0.95) and
the wall seconds until test accuracy first reached 0.99.

    python benchmarks/grokking_mlp.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
import torch.nn.functional as F

from learnscope.config import load_config
from learnscope.runner import build, execute
from learnscope.store import Store
from learnscope.train.loop import Callback


def bare_loop(cfg, init_state) -> tuple[float, float | None]:
    """The recipe written by hand: returns (steps/s, seconds to grok)."""
    task = build(cfg).task
    p = cfg.task.params["p"]
    w1 = init_state["layers.0.linear.weight"].clone().requires_grad_()
    w2 = init_state["out.weight"].clone().requires_grad_()
    opt = torch.optim.AdamW(
        [w1, w2],
        lr=cfg.train.lr,
        betas=cfg.train.betas,
        eps=cfg.train.eps,
        weight_decay=cfg.train.weight_decay,
    )

    def forward(x):
        return ((F.one_hot(x, p).flatten(1).float() @ w1.T) ** 2) @ w2.T

    def mse(logits, y):
        return (logits - F.one_hot(y, p).float()).pow(2).sum(-1).mean()

    xtr, ytr = task.split("train")["x"], task.split("train")["y"]
    xte, yte = task.split("test")["x"], task.split("test")["y"]
    grok_s, t0 = None, time.perf_counter()
    for step in range(cfg.train.steps + 1):
        if step % cfg.train.eval_every == 0 or step == cfg.train.steps:
            with torch.no_grad():
                log = {}
                for name, x, y in (("train", xtr, ytr), ("test", xte, yte)):
                    out = forward(x)
                    log[name] = (mse(out, y).item(), (out.argmax(-1) == y).float().mean().item())
            if grok_s is None and log["test"][1] >= 0.99:
                grok_s = time.perf_counter() - t0
        if step == cfg.train.steps:
            break
        loss = mse(forward(xtr), ytr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return cfg.train.steps / (time.perf_counter() - t0), grok_s


class GrokClock(Callback):
    def __init__(self) -> None:
        self.t0, self.grok_s = 0.0, None

    def on_train_start(self, trainer) -> None:
        self.t0 = time.perf_counter()

    def on_metrics(self, trainer, step, metrics) -> None:
        if self.grok_s is None and metrics.get("test/acc", 0.0) >= 0.99:
            self.grok_s = time.perf_counter() - self.t0


def learnscope_run(cfg) -> tuple[float, float | None]:
    clock = GrokClock()
    with tempfile.TemporaryDirectory() as root:
        result = execute(cfg, Store(root), [clock])
    return result.summary["steps"] / result.summary["wall_s"], clock.grok_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    # the recipe stops once it has grokked; both sides train the same number of steps
    steps = [f"train.steps={args.steps}"] if args.steps else []
    cfg = load_config("grokking-mlp", [*steps, "train.stop_when=[]"])
    torch.manual_seed(cfg.seed)
    init = {k: v.clone() for k, v in build(cfg).model.state_dict().items()}
    ours, bare = [], []
    for _ in range(args.repeats):  # interleaved, best of n: both sides see the same machine
        bare.append(bare_loop(cfg, init))
        ours.append(learnscope_run(cfg))
    best_bare, best_ours = max(bare), max(ours)
    print(
        f"grokking-mlp, {cfg.train.steps} full-batch steps, eval every "
        f"{cfg.train.eval_every}, torch threads {torch.get_num_threads()}"
    )
    print(f"{'':12}{'steps/s':>10}{'s to grok':>12}")
    for name, (sps, grok) in (("bare loop", best_bare), ("learnscope", best_ours)):
        print(f"{name:12}{sps:10.1f}{(grok if grok is not None else float('nan')):12.2f}")
    print(f"ratio learnscope / bare: {best_ours[0] / best_bare[0]:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
