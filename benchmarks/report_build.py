"""How long ``learnscope report`` takes, against the run it reports on.

Trains the ``grokking-mlp`` recipe (300 full-batch steps, p = 97, 500 neurons) once per seed,
then builds the report of one run and of all runs overlaid, timing each build (loading the
store and the checkpoint, drawing every panel, encoding the PNGs, writing the files). Printed:
seconds per report, and the ratio of the one-run report's time to the run's own training time.

    python benchmarks/report_build.py [--runs 3] [--repeats 3] [--steps 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from learnscope.config import load_config
from learnscope.report import build_report
from learnscope.runner import execute
from learnscope.store import Store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300, help="training steps of each run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "runs")
        ids, train_s = [], []
        for seed in range(args.runs):
            t0 = time.perf_counter()
            ids.append(
                execute(
                    load_config("grokking-mlp", [f"seed={seed}", f"train.steps={args.steps}"]),
                    store,
                ).run_id
            )
            train_s.append(time.perf_counter() - t0)
        build_report(store, ids[:1], Path(tmp) / "warm.html")  # imports (matplotlib, torch)
        medians = {}
        for name, refs in (("1 run", ids[:1]), (f"{len(ids)} runs overlaid", ids)):
            times = [
                build_report(store, refs, Path(tmp) / f"r{i}.html").seconds
                for i in range(args.repeats)
            ]
            medians[name] = statistics.median(times)
            print(f"report of {name}: median {medians[name]:.2f} s, min {min(times):.2f} s")
        train = statistics.median(train_s)
        print(
            f"training one run: median {train:.2f} s; "
            f"one-run report / training = {medians['1 run'] / train:.2f}"
        )


if __name__ == "__main__":
    main()
