"""K members trained at once (``learnscope.train.ensemble``) against a Python loop over them.

Members differ in seed, learning rate and weight decay. Sizes:

- ``tiny``:   p = 23, width 64, minibatch 64, 300 steps (K = 32, 128 by default),
- ``grok``:   the members of the sweep ``grokking-thousand-seeds`` (p = 17, width 48,
              minibatch 32, 1000 steps, eval every 20, no probes), which grok (K = 1000),
- ``medium``: p = 59, width 256, minibatch 512, 60 steps,
- ``full``:   the full ``grokking-mlp`` (p = 97, width 500, full batch of 2823 rows).

For each (size, K) this prints the wall time of

- loop:     ``runner.execute``, member after member (what ``learnscope run`` does K times);
            for K > ``--loop-sample`` (default 16 at K = 1000) only an even sample of the
            members is trained and the time is scaled by K / sample (the line says so),
- ensemble: ``runner.execute_ensemble``, all K members as one ensemble,
- choice:   (``--choice``) what the sweep runner does (``sweep.run_group``, calibration
            included),

the ratios and the peak resident memory of each side's process. Every side runs in a fresh
Python process (``resource.getrusage``'s ``ru_maxrss`` is the process's peak: the imports,
a warm-up run and the side), goes through the run pipeline as a sweep member does (each member
a run in a throw-away store: rows, events, summary, checkpoint) and keeps its fastest time over
``--repeats`` processes. Targets: loop / ensemble >= 10x for tiny members at K = 32 and 128,
>= 30x at K = 1000 grokking members, peak memory under 2 GB.

    python benchmarks/ensemble_speedup.py [--cells tiny:32 tiny:128 grok:1000]
                                          [--threads N] [--repeats R] [--choice]
                                          [--sides loop ens]

It prints the ``learnscope`` it imports (a tree on ``PYTHONPATH`` comes first: compare two
trees with the same script) and the load average when each cell ends. ``--sides ens`` times
only the ensemble (the loop is the same code in two trees of the ensemble's work).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

SIZES = {
    "tiny": dict(p=23, width=64, batch_size=64, steps=300),
    "grok": dict(p=17, width=48, batch_size=32, steps=1000, eval_every=20, probes=[]),
    "medium": dict(p=59, width=256, batch_size=512, steps=60),
    "full": dict(p=97, width=500, batch_size=None, steps=8),
}
FEW_STEPS = {("full", 128): 3}  # K = 128 full members: a few steps keep the run short
MLP = {"kind": "mlp", "depth": 2, "activation": "quadratic", "bias": False, "init_std": 0.05}


def members(size: str, k: int) -> list:
    from learnscope.config import load_recipe_dict, validate_config

    s = dict(SIZES[size], steps=FEW_STEPS.get((size, k), SIZES[size]["steps"]))
    base = load_recipe_dict("grokking-mlp")
    base.pop("expect", None)
    base["claims"] = []
    base["task"].update(p=s["p"], train_fraction=0.3 if size == "full" else 0.5)
    base["model"] = {**MLP, "width": s["width"]}
    if size == "grok":
        base["model"]["init_std"] = 0.1
        base["train"]["stop_when"] = []
        base["probes"] = s["probes"]
    eval_every = s.get("eval_every", s["steps"])
    base["train"].update(batch_size=s["batch_size"], steps=s["steps"], eval_every=eval_every)
    out = []
    for i in range(k):
        cfg = copy.deepcopy(base)
        cfg["seed"] = i
        cfg["train"]["lr"] = 0.01 * (0.5 + (i % 4) / 4)
        cfg["train"]["weight_decay"] = [0.5, 1.0, 2.0][i % 3] if size == "grok" else [
            0.0, 1.0, 5.0][i % 3]  # fmt: skip
        out.append(validate_config(cfg))
    return out


def sample(k: int, n: int) -> list[int]:
    """``n`` member indices spread evenly over ``0..k-1`` (every lr and weight decay)."""
    return (
        sorted({round(i * (k - 1) / max(1, n - 1)) for i in range(n)}) if n < k else list(range(k))
    )


def child(side: str, size: str, k: int, loop_sample: int) -> dict:
    """One side in this (fresh) process: seconds, members timed, peak RSS in MB."""
    from learnscope.runner import execute, execute_ensemble
    from learnscope.store import Store
    from learnscope.sweep import run_group

    cfgs = members(size, k)
    with tempfile.TemporaryDirectory() as root:  # warm-up (allocator, kernels, lazy imports)
        execute(cfgs[0], Store(root))
    timed = k
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        t0, c0 = time.perf_counter(), time.process_time()
        if side == "loop":
            picked = sample(k, loop_sample)
            timed = len(picked)
            for i in picked:
                execute(cfgs[i], store)
        elif side == "ens":
            execute_ensemble(cfgs, store)
        else:
            run_group([c.to_dict() for c in cfgs], store, "sw-bench")
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    scale = k / timed
    return {"seconds": seconds * scale, "cpu": cpu * scale, "timed": timed, "peak_mb": peak}


def run_side(side: str, size: str, k: int, loop_sample: int, threads: int | None) -> dict:
    cmd = [sys.executable, __file__, "--child", side, "--size", size, "--k", str(k)]
    cmd += ["--loop-sample", str(loop_sample)] + (["--threads", str(threads)] if threads else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if out.returncode != 0:
        raise SystemExit(f"{side} {size} K={k} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="+", default=["tiny:32", "tiny:128", "grok:1000"])
    ap.add_argument("--repeats", type=int, default=1, help="processes per side (fastest kept)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--loop-sample", type=int, default=None,
                    help="members the loop trains when K is larger (default: K up to 128, "
                         "else 16), its time scaled to K")  # fmt: skip
    ap.add_argument("--choice", action="store_true", help="also time the sweep runner's choice")
    ap.add_argument("--sides", nargs="+", default=["loop", "ens"], choices=["loop", "ens"],
                    help="which sides to time (default both)")  # fmt: skip
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--size", default="tiny", help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        res = child(args.child, args.size, args.k, args.loop_sample or args.k)
        print(json.dumps(res))
        return
    import learnscope

    print(f"torch {torch.__version__}, {args.threads or torch.get_num_threads()} threads, "
          f"learnscope from {os.path.dirname(learnscope.__file__)}")  # fmt: skip
    head = f"{'size':<7}{'K':>5}{'steps':>6}{'loop s':>9}{'ens s':>8}{'loop/ens':>9}"
    head += f"{'loop MB':>9}{'ens MB':>8}" + (f"{'choice s':>9}{'loop/choice':>12}" if
                                               args.choice else "")  # fmt: skip
    head += f"{'loop cpu':>10}{'ens cpu':>9}{'cpu ratio':>10}"
    print(head)
    print("(MB: peak RSS of the side's process; cpu: its CPU seconds, the ratio a busy machine")
    print(" distorts least; s: wall seconds)")
    for cell in args.cells:
        size, _, k = cell.partition(":")
        k = int(k)
        n = args.loop_sample or (k if k <= 128 else 16)
        sides = list(args.sides) + (["choice"] if args.choice else [])
        best: dict[str, dict] = {}
        for r in range(args.repeats):  # each repeat starts one side later
            for side in sides[r % len(sides) :] + sides[: r % len(sides)]:
                res = run_side(side, size, k, n, args.threads)
                if side not in best or res["seconds"] < best[side]["seconds"]:
                    best[side] = res
                best[side]["peak_mb"] = max(best[side]["peak_mb"], res["peak_mb"])
        none = {"seconds": math.nan, "cpu": math.nan, "peak_mb": math.nan, "timed": k}
        loop, ens = best.get("loop", none), best.get("ens", none)
        steps = SIZES[size]["steps"]
        line = f"{size:<7}{k:>5}{FEW_STEPS.get((size, k), steps):>6}{loop['seconds']:>9.2f}"
        line += f"{ens['seconds']:>8.2f}{loop['seconds'] / ens['seconds']:>8.2f}x"
        line += f"{loop['peak_mb']:>9.0f}{ens['peak_mb']:>8.0f}"
        if args.choice:
            ch = best["choice"]
            line += f"{ch['seconds']:>9.2f}{loop['seconds'] / ch['seconds']:>11.2f}x"
        line += f"{loop['cpu']:>10.2f}{ens['cpu']:>9.2f}{loop['cpu'] / ens['cpu']:>9.2f}x"
        if loop["timed"] < k:
            line += f"  (loop: {loop['timed']} of {k} members timed, x{k / loop['timed']:.1f})"
        line += "  load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
        print(line, flush=True)


if __name__ == "__main__":
    main()
