"""What the default probes cost: ``grokking-mlp`` with and without them, in one process.

Both sides run the same recipe through ``learnscope.runner.execute`` (same seed, same eval
cadence, the same store); one has ``probes: []``, the other the MLP defaults (effective rank
of the hidden layer, IPR mean and fraction of the first-layer weights), recorded at the
default cadence (every ``eval_every`` steps on a probe batch of 256 training rows). The sides
alternate, starting side swapped each repeat, and the ratio of the best training wall times
is printed (target <= 1.10), with the median of the per-pair ratios, and the cost of one
probe record measured alone, which gives an estimate that is robust to a busy machine:
``1 + records * record cost / run time without probes``.

    python benchmarks/probe_overhead.py [--repeats 3] [--steps 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from learnscope.config import load_config
from learnscope.runner import build, execute, probe_plan
from learnscope.store import Store


def timed_run(cfg) -> float:
    with tempfile.TemporaryDirectory() as root:
        return execute(cfg, Store(root)).summary["wall_s"]


def record_cost(cfg, n: int = 20) -> float:
    """Seconds for one record of the default probes (forward pass + SVD + IPR)."""
    trainer = build(cfg)
    plan = probe_plan(cfg, trainer, None)
    obj = trainer.objective
    plan.compute(trainer.model, obj.forward, obj.loss)  # warm-up
    t0 = time.perf_counter()
    for _ in range(n):
        plan.compute(trainer.model, obj.forward, obj.loss)
    return (time.perf_counter() - t0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    extra = [f"train.steps={args.steps}"] if args.steps else []
    extra.append("train.stop_when=[]")  # the recipe stops once grokked: time every step
    bare = load_config("grokking-mlp", [*extra, "probes=[]"])
    probed = load_config("grokking-mlp", extra)  # no probes key: the model kind's defaults
    timed_run(bare)  # warm-up (allocator, lazy imports)
    times: dict[str, list[float]] = {"without": [], "with": []}
    for r in range(args.repeats):
        order = [("without", bare), ("with", probed)]
        for name, cfg in order if r % 2 == 0 else order[::-1]:
            times[name].append(timed_run(cfg))
    pairs = [w / b for w, b in zip(times["with"], times["without"])]
    steps, every = bare.train.steps, bare.train.eval_every
    records = steps // every + 1
    cost = record_cost(probed)
    print(
        f"grokking-mlp, {steps} full-batch steps, probes every {every} steps ({records} records)"
        f", probe batch {probed.probe_batch.size}, torch threads {torch.get_num_threads()}"
    )
    for name in ("without", "with"):
        print(f"{name + ' probes':16}" + "  ".join(f"{t:7.2f}s" for t in times[name]))
    print(f"one probe record: {cost * 1e3:.1f} ms; x {records} = {cost * records:.2f} s")
    print(f"median per-pair ratio with / without: {statistics.median(pairs):.3f}")
    estimate = 1 + cost * records / min(times["without"])
    print(f"overhead estimated from the record cost: {estimate:.3f}")
    ratio = min(times["with"]) / min(times["without"])
    print(f"ratio with / without (best of {args.repeats}): {ratio:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
