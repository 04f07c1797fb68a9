"""Seq-VCR at the paper's scale (Arefin et al. 2024, PAPERS.md 1), for a GPU: pretrain a
GPT-2-small-sized decoder on arithmetic text, then fine-tune it on 5x5-digit multiplication
with 2 ``<pause>`` tokens and Seq-VCR, and, from the same weights, without either (vanilla).
Printed: exact match on held-out products for both fine-tunes, their difference, token
accuracy and the lowest effective rank of the block outputs over fine-tuning.

The paper fine-tunes GPT-2 small (124M: 12 layers, d_model 768, 12 heads) pretrained on web
text and reports 5x5 exact match 99.5% with pause + Seq-VCR against 0% for vanilla. No
weights are downloaded here (the device machines have no internet): the decoder is
learnscope's GPT at GPT-2 small's sizes, built from its config with rotary positions (so the
pretraining rows may be longer or shorter than the fine-tuning ones), and "pretrained" means
trained first on ``--pretrain-digits`` x ``--pretrain-digits`` multiplication written with its
partial products and running sums (the ``cot`` format: the same vocabulary as the fine-tune).
Seq-VCR as in the paper's fork: a Xavier-initialised linear map of the final LayerNorm's
output to d' = 2048, lambda_var 1, lambda_cov 0.004, eps 1e-3, every position
(``learnscope.train.regularizers``).

Every training goes through ``learnscope.runner.execute`` (three runs in the store under
``--runs-dir``; default ``$OUT/runs`` when ``$OUT`` is set, else ``./runs``), on CUDA
when present (``--device auto``) with bf16 autocast. ``--smoke``: a 2-layer, width-32 model
and a few steps, to check the pipeline end to end on a CPU (tests/recipes/
test_seqvcr_finetune.py runs it).

    python scripts/seqvcr_device.py                      # the paper-scale run (GPU)
    python scripts/seqvcr_device.py --smoke --device cpu # the pipeline in seconds

Results also go to ``--json`` (default ``$OUT/seqvcr_device.json`` when ``$OUT`` is set).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from learnscope.runner import RunResult, execute
from learnscope.store import Store

SEQ_VCR = {
    "kind": "seq_vcr",
    "layers": ["ln_final.hook_normalized"],
    "positions": "all",
    "lambda_var": 1.0,
    "lambda_cov": 0.004,
    "eps": 0.001,
}
RANK = "effective_rank/blocks.*.hook_resid_post"


def sizes(smoke: bool) -> dict[str, Any]:
    """The model, Seq-VCR projector and schedule: GPT-2 small, or tiny for ``--smoke``."""
    if smoke:
        return {
            "model": {"n_layer": 2, "n_head": 2, "d_model": 32},
            "proj_dim": 64,
            "batch": 16,
            "n_test": 50,
            "eval_examples": 20,
        }
    return {
        "model": {"n_layer": 12, "n_head": 12, "d_model": 768},
        "proj_dim": 2048,
        "batch": 32,
        "n_test": 1000,
        "eval_examples": 1000,
    }


def configs(args: argparse.Namespace) -> tuple[dict, dict, dict]:
    """The run configs: pretraining, fine-tune with pause + Seq-VCR, vanilla fine-tune (the
    fine-tunes' ``train.init_from`` is filled in once the pretraining run exists)."""
    s = sizes(args.smoke)
    model = {"kind": "gpt", "pos": "rope", **s["model"]}
    train = {
        "optimizer": "adamw",
        "betas": [0.9, 0.98],
        "weight_decay": 0.01,
        "batch_size": s["batch"],
        "schedule": "warmup_cosine",
        "grad_clip": 1.0,
        "device": args.device,
        "precision": "auto",  # bf16 (or fp16) autocast on CUDA; fp32 on a CPU
        "eval_examples": s["eval_examples"],
    }
    common_task = {
        "name": "multiplication",
        "reverse": True,
        "fresh": True,
        "n_test": s["n_test"],
        "seed": args.seed,
    }
    pre = {
        "name": "seqvcr-device-pretrain",
        "seed": args.seed,
        "task": {
            **common_task,
            "n_digits": args.pretrain_digits,
            "m_digits": args.pretrain_digits,
            "format": "cot",
        },
        "model": model,
        "train": {
            **train,
            "lr": args.pretrain_lr,
            "steps": args.pretrain_steps,
            "warmup_steps": max(1, args.pretrain_steps // 20),
            "eval_every": args.pretrain_steps,
        },
        "probes": [],
    }
    fine_train = {
        **train,
        "lr": args.finetune_lr,
        "steps": args.finetune_steps,
        "warmup_steps": max(1, args.finetune_steps // 20),
        "eval_every": max(1, args.finetune_steps // 4),
    }
    size = {"n_digits": args.digits, "m_digits": args.digits}
    probes = [{"probe": "effective_rank", "sites": ["blocks.*.hook_resid_post"]}]
    seqvcr = {
        "name": f"seqvcr-device-{args.digits}x{args.digits}-pause-seqvcr",
        "seed": args.seed,
        "task": {**common_task, **size, "format": "pause", "n_pause": args.n_pause},
        "model": model,
        "train": {**fine_train, "regularizers": [{**SEQ_VCR, "proj_dim": s["proj_dim"]}]},
        "probes": probes,
    }
    vanilla = {
        "name": f"seqvcr-device-{args.digits}x{args.digits}-vanilla",
        "seed": args.seed,
        "task": {**common_task, **size, "format": "plain"},
        "model": model,
        "train": fine_train,
        "probes": probes,
    }
    return pre, seqvcr, vanilla


def lowest_rank(store: Store, result: RunResult) -> float:
    """The lowest effective rank of any block's output over the run's evaluations."""
    m = store.metrics(result.run_id)
    ranks = m[m["name"].str.match(r"effective_rank/blocks\.\d+\.hook_resid_post$")]
    return float(ranks["value"].min()) if len(ranks) else float("nan")


def train(cfg: dict, store: Store) -> tuple[RunResult, float]:
    start = time.perf_counter()
    result = execute(cfg, store)
    wall = time.perf_counter() - start
    if result.status != "finished":
        raise SystemExit(f"{cfg['name']}: run {result.run_id} ended {result.status}")
    return result, wall


def main(argv: list[str] | None = None) -> dict[str, Any]:
    out = os.environ.get("OUT")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny model, few steps (a CPU check)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--digits", type=int, default=5, help="fine-tune on DIGITS x DIGITS")
    p.add_argument("--pretrain-digits", type=int, default=3, help="CoT text of these products")
    p.add_argument("--n-pause", type=int, default=2, help="pause tokens (the paper: 2)")
    p.add_argument("--pretrain-steps", type=int, default=None)
    p.add_argument("--finetune-steps", type=int, default=None)
    p.add_argument("--pretrain-lr", type=float, default=3e-4)
    p.add_argument("--finetune-lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs-dir", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)
    if args.pretrain_steps is None:
        args.pretrain_steps = 30 if args.smoke else 2000
    if args.finetune_steps is None:
        args.finetune_steps = 20 if args.smoke else 2500
    for name in ("digits", "pretrain_digits", "n_pause", "pretrain_steps", "finetune_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}: must be >= 1 (got {getattr(args, name)})")
    runs = args.runs_dir or (Path(out) / "runs" if out else Path("runs"))
    store = Store(runs)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = args.device
    print(
        f"device: {device}"
        + (
            f" ({torch.cuda.get_device_name()})"
            if device.startswith("cuda") and torch.cuda.is_available()
            else ""
        ),
        flush=True,
    )

    pre, seqvcr, vanilla = configs(args)
    result, wall = train(pre, store)
    s = result.summary
    print(
        f"pretrain {args.pretrain_digits}x{args.pretrain_digits} CoT: {args.pretrain_steps} "
        f"steps, test exact match {s.get('test_acc', float('nan')):.3f}, token accuracy "
        f"{s.get('test_token_acc', float('nan')):.3f}, {wall:.0f} s",
        flush=True,
    )
    rows: dict[str, Any] = {"device": device, "pretrain": {**_row(s), "wall_s": wall}}
    for case, cfg in (("pause+seqvcr", seqvcr), ("vanilla", vanilla)):
        cfg["train"]["init_from"] = result.run_id
        res, wall = train(cfg, store)
        rows[case] = {
            **_row(res.summary),
            "lowest_rank": lowest_rank(store, res),
            "wall_s": wall,
            "run": res.run_id,
        }
        r = rows[case]
        print(
            f"{args.digits}x{args.digits} {case:13s} exact match {r['test_acc']:.3f}  "
            f"token accuracy {r['test_token_acc']:.3f}  lowest effective rank "
            f"{r['lowest_rank']:.1f}  {wall:.0f} s",
            flush=True,
        )
    diff = rows["pause+seqvcr"]["test_acc"] - rows["vanilla"]["test_acc"]
    rows["diff"] = diff
    print(
        f"exact match, pause + Seq-VCR minus vanilla: {diff:+.3f} (paper, GPT-2 small at "
        "5x5: 0.995 vs 0.000)",
        flush=True,
    )
    path = args.json or (Path(out) / "seqvcr_device.json" if out else None)
    if path is not None:
        path.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **rows}, indent=2)
        )
    return rows


def _row(summary: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(summary.get(k, float("nan"))) for k in ("test_acc", "test_token_acc", "train_acc")
    }


if __name__ == "__main__":
    main()
