"""K members trained at once (``learnscope.train.ensemble``) against a Python loop over them.

For member sizes from tiny (p = 23, width 64, minibatch 64) through medium (p = 59, width 256,
minibatch 512) to the full ``grokking-mlp`` (p = 97, width 500, full batch of 2823 rows), and
K = 1, 8, 32, 128 members differing in seed, learning rate and weight decay, this prints the
wall time of

- loop:     ``runner.execute``, member after member (what ``learnscope run`` does K times),
- ensemble: ``runner.execute_ensemble``, all K members as one ensemble (``vmap`` of the
            model's forward),
- choice:   what the sweep runner does (``sweep.run_group``: calibration included),

and the ratios loop / ensemble and loop / choice. Every side goes through the run pipeline,
as a sweep member does: each member is a run in a throw-away store (rows, events, summary)
with a checkpoint at the end, and evaluates at step 0 and at the end. Targets: >= 10x for tiny
members at K >= 32; the choice never slower than the loop (>= 0.95x).

    python benchmarks/ensemble_speedup.py [--sizes tiny medium full] [--ks 1 8 32 128]
                                          [--threads N] [--repeats R]

Every member records its default probes (as ``learnscope run`` does) at step 0 and at the end.
The sides run in turn within each repeat and each keeps its fastest time (see ``measure``).
"MB" is the peak resident memory a side added while it ran (sampled, ``PeakRSS``); target:
K = 128 tiny members under 1 GB.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import threading
import time

import torch

from learnscope.config import load_recipe_dict, validate_config
from learnscope.runner import execute, execute_ensemble
from learnscope.store import Store
from learnscope.sweep import run_group

MLP = {"kind": "mlp", "depth": 2, "activation": "quadratic", "bias": False, "init_std": 0.05}
SIZES = {
    "tiny": dict(p=23, width=64, batch_size=64, steps=300),
    "medium": dict(p=59, width=256, batch_size=512, steps=60),
    "full": dict(p=97, width=500, batch_size=None, steps=8),
}
FEW_STEPS = {("full", 128): 3}  # K = 128 full members: a few steps keep the run short


def members(size: str, k: int) -> list:
    s = dict(SIZES[size], steps=FEW_STEPS.get((size, k), SIZES[size]["steps"]))
    base = load_recipe_dict("grokking-mlp")
    base["expect"] = {}
    base["task"].update(p=s["p"], train_fraction=0.3 if size == "full" else 0.5)
    base["model"] = {**MLP, "width": s["width"]}
    base["train"].update(batch_size=s["batch_size"], steps=s["steps"], eval_every=s["steps"])
    out = []
    for i in range(k):
        cfg = copy.deepcopy(base)
        cfg["seed"] = i
        cfg["train"]["lr"] = 0.01 * (0.5 + (i % 4) / 4)
        cfg["train"]["weight_decay"] = [0.0, 1.0, 5.0][i % 3]
        out.append(validate_config(cfg))
    return out


class PeakRSS:
    """The peak resident memory of this process while the block runs, sampled every 5 ms from
    ``/proc/self/statm`` (Linux), in bytes above what it held when the block started."""

    def __enter__(self) -> PeakRSS:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.start = self.peak = self.rss()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _sample(self) -> None:
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, self.rss())

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def grown(self) -> int:
        return self.peak - self.start


def seconds(fn) -> tuple[float, int]:
    """Wall time of ``fn(store)`` with a fresh store in a temporary directory, and the peak
    memory it added (bytes)."""
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            fn(store)
            elapsed = time.perf_counter() - t0
        store.close()
    return elapsed, mem.grown


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--ks", nargs="+", type=int, default=[1, 8, 32, 128])
    ap.add_argument("--repeats", type=int, default=3, help="for cells whose loop takes < 20 s")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"{'size':<7}{'K':>4}{'steps':>6}{'loop s':>9}{'ens s':>9}{'choice s':>9}"
        f"{'chosen':>8}{'loop/ens':>10}{'loop/choice':>12}{'ens MB':>8}{'choice MB':>10}"
    )
    for size in args.sizes:
        for k in args.ks:
            cfgs = members(size, k)
            t, mb, chosen = measure(cfgs, args.repeats)
            print(
                f"{size:<7}{k:>4}{cfgs[0].train.steps:>6}{t['loop']:>9.2f}{t['ens']:>9.2f}"
                f"{t['choice']:>9.2f}{chosen:>8}{t['loop'] / t['ens']:>9.2f}x"
                f"{t['loop'] / t['choice']:>11.2f}x{mb['ens']:>8.0f}{mb['choice']:>10.0f}",
                flush=True,
            )


def measure(cfgs: list, repeats: int) -> tuple[dict[str, float], dict[str, float], int]:
    """Seconds of the loop, the ensemble and the runner's choice, the peak memory each added
    (MB), and the chunk the runner chose.

    Each repeat runs every side once, one after the other, and each side keeps its fastest
    time: on a shared machine the fastest is the least disturbed, and interleaving the sides
    lets a burst of load from elsewhere hit all of them alike rather than one. The order
    rotates between repeats, since a side that runs right after an ensemble of large members
    can pay for the memory that ensemble left to the allocator.
    """
    dicts = [c.to_dict() for c in cfgs]
    chosen = {}

    def loop(store):
        for c in cfgs:
            execute(c, store)

    def choice(store):  # the sweep runner's path: calibration included
        ids = run_group(dicts, store, "sw-bench")
        runs = store.runs().set_index("id").loc[ids]
        chosen["k"] = max(s.get("ensemble_size", 1) for s in runs["summary"])

    sides = {"loop": loop, "ens": lambda store: execute_ensemble(cfgs, store), "choice": choice}
    seconds(lambda store: execute(cfgs[0], store))  # warm up (allocator, kernels)
    best, peak = {}, {}
    for name, fn in sides.items():
        best[name], peak[name] = seconds(fn)
    reps = repeats if best["loop"] < 20 else 1
    names = list(sides)
    for r in range(1, reps):  # each repeat starts one side later: no side always follows
        for name in names[r % len(names) :] + names[: r % len(names)]:  # the big ensembles
            s, m = seconds(sides[name])
            best[name], peak[name] = min(best[name], s), max(peak[name], m)
    return best, {k: v / 2**20 for k, v in peak.items()}, chosen["k"]


if __name__ == "__main__":
    main()
