"""Would stacking pay for sequence members? One training step (forward + backward) of K GPTs
as one ``vmap`` computation (``learnscope.train.ensemble.stacked_forward``, the engine's
forward) against a Python loop over the K models.

The stacked ensemble engine trains classification members only; sequence members (the GPT on
multiplication, addition, PVR) run one after another. This measures the most that stacking
them could gain: the step alone, without the engine's optimiser, data or evaluation (greedy
decoding, per member either way). Both attention paths are timed: the fused
``scaled_dot_product_attention`` (PyTorch has no ``vmap`` batching rule for its CPU kernel
and loops over the members) and the explicit softmax (``attn.explicit``: plain batched
matmuls). Sizes are the recipes' own: ``multiplication-2x2-vanilla`` (2 layers x 64),
``seqvcr-3x3``'s model (4 x 128 on 3x3 products) and ``length-gen-addition`` (4 x 64).
Each side keeps its fastest of ``--repeats`` rounds; the ratio is loop / stacked (> 1: the
stacked step is faster).

    python benchmarks/ensemble_gpt.py [--ks 4 8] [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch
from torch.func import stack_module_state

from learnscope.config import load_config
from learnscope.models import build_model
from learnscope.tasks import make_task
from learnscope.train.ensemble import stacked_forward

SETTINGS = {
    "mult-2x2 (2x64)": ("multiplication-2x2-vanilla", {}, {}),
    "mult-3x3 (4x128)": (
        "multiplication-2x2-vanilla",
        {"n_digits": 3, "m_digits": 3},
        {"n_layer": 4, "d_model": 128},
    ),
    "addition (4x64)": ("length-gen-addition", {}, {}),
}


def setup(recipe: str, task_set: dict, model_set: dict, k: int, explicit: bool, device):
    cfg = load_config(recipe)
    task = make_task(cfg.task.name, **{**cfg.task.params, **task_set})
    models = []
    for i in range(k):
        torch.manual_seed(i)
        model = build_model(cfg.model.kind, {**cfg.model.params, **model_set}, task.model_dims())
        for m in model.modules():
            if hasattr(m, "explicit"):
                m.explicit = explicit
        models.append(model.to(device))
    gens = [torch.Generator().manual_seed(i) for i in range(k)]
    batches = [task.sample(cfg.train.batch_size, g) for g in gens]
    cols = max(int(b["loss_mask"].any(0).nonzero().max()) + 1 for b in batches)
    x = torch.stack([b["tokens"][:, : cols - 1] for b in batches]).to(device)
    return models, x


def stacked_step(forward, params, buffers, x) -> None:
    """Forward and backward of the K stacked models (one computation)."""
    forward(params, buffers, x).float().logsumexp(-1).sum().backward()


def loop_step(models, x) -> None:
    """Forward and backward of the K models one after another."""
    for i, m in enumerate(models):
        m(x[i]).float().logsumexp(-1).sum().backward()


def measure(fn, device, repeats: int, steps: int = 10) -> float:
    best = float("inf")
    for _ in range(repeats):
        fn()  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, {torch.get_num_threads()} thread(s); ms per training step of K models")
    print(
        f"{'setting':<18} {'K':>3} {'attention':<9} {'loop':>8} {'stacked':>8} {'loop/stacked':>13}"
    )
    for label, (recipe, task_set, model_set) in SETTINGS.items():
        for k in args.ks:
            for explicit in (False, True):
                models, x = setup(recipe, task_set, model_set, k, explicit, device)
                params, buffers = stack_module_state(models)
                for p in params.values():
                    p.requires_grad_()
                forward = stacked_forward(models[0])
                t_loop = measure(partial(loop_step, models, x), device, args.repeats)
                stacked = partial(stacked_step, forward, params, buffers, x)
                t_stack = measure(stacked, device, args.repeats)
                attn = "explicit" if explicit else "fused"
                print(
                    f"{label:<18} {k:>3} {attn:<9} {t_loop * 1e3:>8.1f} {t_stack * 1e3:>8.1f} "
                    f"{t_loop / t_stack:>12.2f}x"
                )


if __name__ == "__main__":
    main()
