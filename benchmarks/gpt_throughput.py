"""learnscope's GPT against a plain reference decoder of the same size, in one process.

Both sides are pre-LayerNorm decoders with learned positions, fused QKV, GELU MLP and
``F.scaled_dot_product_attention``; both get the same AdamW step on the same random batches.
learnscope's model has its hook points in place (identity modules, no hooks registered).
Printed: training tokens per second for each side (median of ``--repeats`` alternating timed
windows), their ratio ours / plain (target >= 1.0), and greedy-decoding examples per second on
the test split of a multiplication task (``SequenceObjective.decode_accuracy``).

    python benchmarks/gpt_throughput.py [--layers 4 --d-model 256 --seq 64 --batch 32]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed window")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

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
