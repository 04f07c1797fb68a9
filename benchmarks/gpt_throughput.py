"""learnscope's GPT against a plain reference decoder of the same size, in one process.

Both sides are pre-LayerNorm decoders with learned positions, fused QKV, GELU MLP and
``F.scaled_dot_product_attention``; both get the same AdamW step on the same random batches.
learnscope's model has its hook points in place (identity modules, no hooks registered).
Printed: training tokens per second for each side (median of ``--repeats`` alternating timed
windows), their ratio ours / plain (target >= 1.0), and greedy-decoding examples per second on
the test split of a multiplication task (``SequenceObjective.decode_accuracy``).

    python benchmarks/gpt_throughput.py [--layers 4 --d-model 256 --seq 64 --batch 32]

``--options``: the CPU training options instead (issue 32 item 5), on the sequence recipes
(``--recipes``): for each recipe, trainers built by the pipeline (``learnscope.runner.build``,
the same seed, so the same initial weights) with ``train.precision: bf16`` (autocast on CPU)
and ``train.compile: true`` (torch.compile of the training forward), alone and together, take
the same training steps on the same batches. Printed per recipe and option: training steps/s
and tokens/s (median of ``--repeats`` alternating windows of ``--steps`` steps, cycling over
``--check-steps`` fixed batches), the ratio to fp32 eager, the warm-up seconds (the first
pass over those batches, torch.compile's compiling included) and the largest relative
difference of the training loss from fp32 eager over that first pass (same initial weights,
same batches).

    python benchmarks/gpt_throughput.py --options [--recipes grokking-transformer,...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from learnscope.models.gpt import GPT, GPTConfig
from learnscope.tasks import make_task
from learnscope.train.objectives import SequenceObjective


class PlainBlock(nn.Module):
    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (
            z.view(b, t, self.h, d // self.h).transpose(1, 2)
            for z in self.qkv(self.ln1(x)).split(d, 2)
        )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class PlainGPT(nn.Module):
    def __init__(self, vocab: int, block: int, layers: int, d: int, h: int) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(block, d)
        self.blocks = nn.ModuleList(PlainBlock(d, h) for _ in range(layers))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos.weight[: idx.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x))


def train_window(model, batches, steps: int) -> float:
    """Seconds for ``steps`` AdamW steps of next-token CE."""
    opt = model._bench_opt
    t0 = time.perf_counter()
    for i in range(steps):
        x = batches[i % len(batches)]
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


RECIPES = "grokking-transformer,multiplication-vanilla,length-gen-addition,length-gen-parity"
OPTIONS = {  # name -> overrides of the recipe
    "fp32 eager": [],
    "bf16": ["train.precision=bf16"],
    "compile": ["train.compile=true"],
    "compile+bf16": ["train.compile=true", "train.precision=bf16"],
}


def _trainer(recipe: str, extra: list[str]):
    from learnscope.config import load_config
    from learnscope.runner import build

    return build(load_config(recipe, ["probes=[]", *extra]))


def _batches(trainer, n: int) -> list[dict[str, torch.Tensor]]:
    """``n`` training batches of the recipe's batch size, drawn with a fixed generator."""
    g = torch.Generator().manual_seed(0)
    size = trainer.cfg.batch_size
    if trainer.fresh:
        return [trainer.task.sample(size, g) for _ in range(n)]
    train = trainer.splits["train"]
    size = size or len(train)
    return [train.rows(torch.randint(0, len(train), (size,), generator=g)) for _ in range(n)]


def _tokens(batch: dict[str, torch.Tensor]) -> int:
    """Input tokens of a sequence batch (rows x positions), else rows."""
    x = batch.get("tokens", batch.get("inputs", batch.get("x")))
    return int(x.numel())


def _step(trainer, batch: dict[str, torch.Tensor]) -> float:
    """One training step as the trainer's loop takes it (autocast, the training forward,
    AdamW); the loss."""
    trainer.model.train()
    with trainer.autocast():
        loss = trainer.objective.train_loss(trainer.train_model, batch)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.optimizer.step()
    return float(loss.item())


def options(args: argparse.Namespace) -> None:
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; median of "
          f"{args.repeats} windows of {args.steps} steps; loss diff over {args.check_steps} "
          "steps vs fp32 eager")  # fmt: skip
    print(f"{'recipe':26} {'option':13} {'warm-up s':>9} {'steps/s':>8} {'tokens/s':>9} "
          f"{'x fp32':>7} {'max rel loss diff':>17}")  # fmt: skip
    for recipe in args.recipes.split(","):
        trainers, warm, curves = {}, {}, {}
        for name, extra in OPTIONS.items():
            trainers[name] = t = _trainer(recipe, extra)  # the same seed: the same init
            if name == "fp32 eager":
                batches = _batches(t, args.check_steps)
                tokens = statistics.mean(_tokens(b) for b in batches)
            t0 = time.perf_counter()  # the curve's steps are the warm-up: torch.compile
            curves[name] = [_step(t, b) for b in batches]  # compiles (per shape) here
            warm[name] = time.perf_counter() - t0
        ref = curves["fp32 eager"]
        diffs = {
            name: max(abs(a - b) / abs(a) for a, b in zip(ref, got, strict=True))
            for name, got in curves.items()
        }
        rates: dict[str, list[float]] = {name: [] for name in OPTIONS}
        for _ in range(args.repeats):  # alternate so that load changes hit every option
            for name, t in trainers.items():
                t0 = time.perf_counter()
                for i in range(args.steps):
                    _step(t, batches[i % len(batches)])
                rates[name].append(args.steps / (time.perf_counter() - t0))
        med = {name: statistics.median(v) for name, v in rates.items()}
        for name in OPTIONS:
            print(
                f"{recipe:26} {name:13} {warm[name]:>9.1f} {med[name]:>8.1f} "
                f"{med[name] * tokens:>9,.0f} {med[name] / med['fp32 eager']:>7.2f} "
                f"{diffs[name]:>17.2e}",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--options", action="store_true", help="the CPU options (bf16, compile)")
    ap.add_argument("--recipes", default=RECIPES, help="with --options: sequence recipes")
    ap.add_argument("--check-steps", type=int, default=8, help="with --options: batches")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed window")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.options:
        options(args)
        return

    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=args.vocab,
        block_size=args.seq,
        n_layer=args.layers,
        n_head=args.heads,
        d_model=args.d_model,
    )
    ours = GPT(cfg)
    plain = PlainGPT(args.vocab, args.seq, args.layers, args.d_model, args.heads)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_plain = sum(p.numel() for p in plain.parameters())
    for m in (ours, plain):
        m._bench_opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        m.train()
    batches = [torch.randint(0, args.vocab, (args.batch, args.seq)) for _ in range(4)]
    tokens = args.steps * args.batch * (args.seq - 1)
    for m in (ours, plain):  # warm-up
        train_window(m, batches, 2)
    rates: dict[str, list[float]] = {"ours": [], "plain": []}
    for _ in range(args.repeats):  # alternate so that load changes hit both sides
        rates["ours"].append(tokens / train_window(ours, batches, args.steps))
        rates["plain"].append(tokens / train_window(plain, batches, args.steps))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(
        f"model: {args.layers} layers, d_model {args.d_model}, {args.heads} heads, "
        f"seq {args.seq}, batch {args.batch}; params ours {n_ours:,} plain {n_plain:,}; "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"train tokens/s  ours {med['ours']:,.0f}  plain {med['plain']:,.0f}")
    print(f"ratio ours/plain {med['ours'] / med['plain']:.3f} (target >= 1.0)")

    task = make_task("multiplication", n_digits=3, m_digits=3, n_train=10, n_test=512)
    dims = task.model_dims()
    net = GPT(GPTConfig(**dims, n_layer=args.layers, n_head=args.heads, d_model=args.d_model))
    net.eval()
    split = task.split("test")
    obj = SequenceObjective()
    t0 = time.perf_counter()
    obj.decode_accuracy(net, task, "test", split)
    dt = time.perf_counter() - t0
    print(
        f"greedy decoding (multiplication 3x3, {len(split)} rows of {dims['block_size']} "
        f"tokens): {len(split) / dt:,.0f} examples/s"
    )


if __name__ == "__main__":
    main()
