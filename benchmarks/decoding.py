"""Greedy decoding with and without the GPT's KV cache, in one process.

What every sequence evaluation costs: ``SequenceObjective.decode_accuracy`` decodes the test
split in chunks of ``EVAL_ROWS`` rows with :func:`greedy_decode`. Uncached, step ``t`` runs the
whole prefix ``out[:, :t]`` through the model; cached, the shortest prompt is run once and then
one token per step. Models are the multiplication recipes' (4 layers, d_model 64, 4 heads,
``src/learnscope/recipes/multiplication-*.yaml``), randomly initialised: such a model rarely
emits ``<eos>``, so every row is decoded to the full width (the most steps there can be).
The UT rows (``--pvr-formats``) decode 6-hop PVR rows with the UT + ACT of the recipe
``pvr-hops-rope`` (its cache, :class:`~learnscope.models.ut.UTCache`, keeps every step's keys).
Printed per task: decoded examples per second for each side (median of ``--repeats``
alternating timed passes over the split, the first side rotating), their ratio, and whether
both gave the same tokens.

    python benchmarks/decoding.py [--threads 1] [--repeats 3] [--formats plain,cot]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from learnscope.models import build_model
from learnscope.models.gpt import GPT, GPTConfig
from learnscope.tasks import make_task
from learnscope.train.objectives import EVAL_ROWS, greedy_decode

#: the UT of the recipe pvr-hops-rope (UT + ACT, rotary positions)
UT_RECIPE = {"d_model": 64, "n_head": 4, "max_steps": 8, "act": True, "pos": "rope"}


def decode_split(net, split, eos: int | None, cache: bool) -> tuple[float, torch.Tensor]:
    """Seconds to decode every row of ``split`` as ``decode_accuracy`` does, and the rows."""
    tokens, prompt_len = split["tokens"], split["prompt_len"]
    out = torch.empty_like(tokens)
    t0 = time.perf_counter()
    for start in range(0, len(tokens), EVAL_ROWS):
        rows = slice(start, start + EVAL_ROWS)
        out[rows] = greedy_decode(net, tokens[rows], prompt_len[rows], eos, cache=cache)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--formats", default="plain,cot", help="multiplication formats, comma-separated"
    )
    ap.add_argument("--digits", type=int, default=3, help="n_digits = m_digits")
    ap.add_argument("--rows", type=int, default=500, help="test rows (the recipes' n_test)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument(
        "--pvr-formats", default="plain,cot", help="PVR formats for the UT rows ('' for none)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; GPT {args.layers} "
        f"layers, d_model {args.d_model}, {args.heads} heads; {args.rows} test rows, "
        f"chunks of {EVAL_ROWS}; median of {args.repeats}"
    )
    print(
        f"{'task':<22} {'T':>4} {'prompt':>6} {'uncached ex/s':>14} {'cached ex/s':>12} "
        f"{'ratio':>6}  same tokens"
    )
    for fmt in args.formats.split(","):
        task = make_task(
            "multiplication",
            n_digits=args.digits,
            m_digits=args.digits,
            format=fmt,
            reverse=True,
            n_train=10,
            n_test=args.rows,
            **({"n_pause": 2} if fmt == "pause" else {}),
        )
        torch.manual_seed(0)
        cfg = GPTConfig(
            **task.model_dims(), n_layer=args.layers, n_head=args.heads, d_model=args.d_model
        )
        net = GPT(cfg).eval()
        measure(f"mul {args.digits}x{args.digits} {fmt}", net, task, args.repeats)
    for fmt in args.pvr_formats.split(",") if args.pvr_formats else []:
        task = make_task(
            "pvr", n=8, max_hops=3, test_hops=[6], format=fmt, n_train=10, n_test=args.rows
        )
        torch.manual_seed(0)
        net = build_model("ut", UT_RECIPE, task.model_dims()).eval()
        measure(f"pvr 6 hops {fmt} (UT)", net, task, args.repeats, "test_hops_6")


def measure(name: str, net, task, repeats: int, split_name: str = "test") -> None:
    """Decode ``split_name`` with and without the cache, alternating; print the row."""
    split, eos = task.split(split_name), task.eos_id
    decode_split(net, split, eos, True)  # warm-up
    decode_split(net, split, eos, False)
    rates: dict[bool, list[float]] = {False: [], True: []}
    outs: dict[bool, torch.Tensor] = {}
    for r in range(repeats):  # alternate, first side rotating: load hits both
        for cache in (r % 2 == 0, r % 2 == 1):
            dt, outs[cache] = decode_split(net, split, eos, cache)
            rates[cache].append(len(split) / dt)
    before, after = statistics.median(rates[False]), statistics.median(rates[True])
    same = "yes" if torch.equal(outs[False], outs[True]) else "NO"
    print(
        f"{name:<22} {split['tokens'].shape[1]:>4} {int(split['prompt_len'].min()):>6} "
        f"{before:>14,.0f} {after:>12,.0f} {after / before:>6.1f}  {same}"
    )


if __name__ == "__main__":
    main()
