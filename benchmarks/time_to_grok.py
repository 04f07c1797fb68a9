"""Wall seconds and steps to grokking, one run per setting, in one process.

For each setting (a recipe, plus overrides) the run trains through the pipeline
(``learnscope.runner.execute``, probes off, stopping once grokked) and the line printed says
the step at which train and test accuracy first reached the grokking threshold, the run's
training seconds (``wall_s``), the whole call's seconds (building, evaluation, store) and the
test step over the plain recipe's (run first).
The settings: ``grokking-mlp``, ``grokking-transformer``, and each of them with Grokfast's
EMA filter (Lee et al. 2024: alpha 0.98, lamb 2; ``train.grad_filter``); ``--only`` picks.
``--threshold`` is the accuracy counted as learned, for every setting
(``events.grok_threshold``; the issue asks for 0.99). (No ``grokfast-transformer`` recipe:
its search, ``recipes/sweeps/grokfast-search.yaml``, found no setting that learns within the
CPU's budget; see docs/accelerators.md.)

    python benchmarks/time_to_grok.py [--only grokking-mlp,grokking-mlp+grokfast] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from learnscope.config import load_config
from learnscope.runner import execute
from learnscope.store import Store

GROKFAST = ["train.grad_filter={kind: ema, alpha: 0.98, lamb: 2.0}"]
SETTINGS = {
    "grokking-mlp": ("grokking-mlp", []),
    "grokking-mlp+grokfast": ("grokking-mlp", GROKFAST),
    "grokking-transformer": ("grokking-transformer", []),
    "grokking-transformer+grokfast": ("grokking-transformer", GROKFAST),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(SETTINGS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--threshold", type=float, default=0.99, help="accuracy counted as learned")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads {args.threads}, seed {args.seed}, threshold {args.threshold}")
    print(f"{'setting':32} {'train at':>9} {'test at':>9} {'train s':>9} {'whole s':>9} "
          f"{'steps / plain':>13}")  # fmt: skip
    plain: dict[str, int] = {}  # the recipe's own grok step, for each variant's ratio
    for name in args.only.split(","):
        recipe, extra = SETTINGS[name]
        seeds = [f"seed={args.seed}", f"task.seed={args.seed}"]
        stop = ["train.stop_when=[grokked]", f"events.grok_threshold={args.threshold}"]
        cfg = load_config(recipe, ["probes=[]", *stop, *seeds, *extra])
        with tempfile.TemporaryDirectory() as root:
            t0 = time.perf_counter()
            result = execute(cfg, Store(root))
            whole = time.perf_counter() - t0
        s = result.summary
        fmt = lambda v: "-" if v is None else str(v)  # noqa: E731
        test = s.get("grok_test_step")
        if not extra and test:
            plain[recipe] = test
        ratio = f"{test / plain[recipe]:.2f}" if test and recipe in plain else "-"
        print(
            f"{name:32} {fmt(s.get('grok_train_step')):>9} {fmt(test):>9} "
            f"{s['wall_s']:>9.1f} {whole:>9.1f} {ratio:>13}"
        )


if __name__ == "__main__":
    main()
