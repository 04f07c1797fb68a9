"""Training steps per second of the recipes at 1, 2, ... torch threads, in one process.

Which thread count trains the small models of the recipes fastest: each recipe is built once
(``learnscope.runner.build``: task, model, trainer, no probes, no store), then trained for
``--steps`` steps at each thread count in turn, the order rotating over ``--repeats`` rounds;
printed per recipe: its parameter count, the median steps/s at each thread count, and each
against one thread. The default of ``learnscope run`` (``--threads``) comes from these figures.

    python benchmarks/threads.py [--steps 60] [--repeats 3] [--threads 1,2,4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from learnscope.config import load_config
from learnscope.runner import build

RECIPES = ["grokking-mlp", "slingshot", "corrupted-labels", "multiplication-vanilla",
           "grokking-transformer", "sigma-reparam-baseline"]  # fmt: skip


def fit_s(trainer, steps: int) -> float:
    """Seconds to train ``steps`` more steps of ``trainer`` (``fit`` evaluates once, at the
    end: a call with 0 steps times that evaluation alone)."""
    trainer.cfg.steps = trainer.step + steps
    trainer.cfg.eval_every = 10**9
    t0 = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - t0


def steps_per_s(trainer, steps: int) -> float:
    """Training steps per second, the end-of-fit evaluation taken out."""
    return steps / max(1e-9, fit_s(trainer, steps) - fit_s(trainer, 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default=",".join(map(str, sorted({1, 2, os.cpu_count() or 1}))))
    ap.add_argument("--recipes", default=",".join(RECIPES))
    args = ap.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    print(f"{os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}; threads {counts}")
    print(f"{'recipe':26} {'params':>9} " + " ".join(f"{f'{t} thr':>9}" for t in counts)
          + "   " + " ".join(f"{f'{t}/1':>6}" for t in counts[1:]))  # fmt: skip
    for name in args.recipes.split(","):
        cfg = load_config(name, ["probes=[]"])
        trainer = build(cfg)
        params = sum(p.numel() for p in trainer.model.parameters())
        torch.set_num_threads(1)
        steps_per_s(trainer, 5)  # warm-up
        rates: dict[int, list[float]] = {t: [] for t in counts}
        for r in range(args.repeats):
            for t in counts[r % len(counts) :] + counts[: r % len(counts)]:
                torch.set_num_threads(t)
                rates[t].append(steps_per_s(trainer, args.steps))
        med = {t: statistics.median(v) for t, v in rates.items()}
        ratios = " ".join(f"{med[t] / med[counts[0]]:>6.2f}" for t in counts[1:])
        print(f"{name:26} {params:>9,} " + " ".join(f"{med[t]:>9.1f}" for t in counts), ratios)


if __name__ == "__main__":
    main()
