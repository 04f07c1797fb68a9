"""Two levers of "Simplifying neural network training under class imbalance" (Shwartz-Ziv et
al. 2023, PAPERS.md 22) as switches of the training step: input noise (data augmentation) and
sharpness-aware minimisation.

- **Input noise** (``train.input_noise: p``): every training batch's inputs are perturbed
  afresh at every step; token inputs (integer ``x``, e.g. ``prototypes``) have each token
  redrawn uniformly from the vocabulary with probability ``p``; real inputs get ``x + p
  epsilon``, ``epsilon ~ N(0, I)``. Evaluation sees the clean inputs.
- **SAM** (Foret, Kleiner, Mobahi & Neyshabur 2021, "Sharpness-aware minimization"):
  ``optimizer: sam`` steps ``sam_base`` (SGD as in the paper, or AdamW / Adam, with the run's
  ``lr``, ``momentum``, ``betas`` and ``weight_decay``) along the gradient at
  the worst nearby weights, ``g_SAM = grad L(w + e)``, ``e = rho g / ||g||`` (``g = grad
  L(w)``, ``||.||`` over all parameters, ``rho`` = ``train.sam_rho``): two forward and backward
  passes per step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def input_noise(
    batch: dict[str, torch.Tensor], p: float, vocab: int | None, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """``batch`` with its inputs ``x`` perturbed (module docstring); other tensors shared.

    >>> g = torch.Generator().manual_seed(0)
    >>> out = input_noise({"x": torch.zeros(1000, 8, dtype=torch.long)}, 0.5, 4, g)["x"]
    >>> round((out != 0).float().mean().item(), 1)  # redrawn half the time, to 1..3 3/4 of it
    0.4
    """
    x = batch["x"]
    if x.dtype.is_floating_point:
        noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
        return {**batch, "x": x + p * noise}
    if vocab is None:
        raise ValueError("train.input_noise: token inputs need the task's vocabulary size")
    redraw = (torch.rand(x.shape, generator=generator) < p).to(x.device)
    tokens = torch.randint(0, vocab, x.shape, generator=generator).to(x.device, x.dtype)
    return {**batch, "x": torch.where(redraw, tokens, x)}


def sharpness_aware(
    params: list[torch.nn.Parameter], loss_again: Callable[[], torch.Tensor], rho: float
) -> None:
    """Replace the gradients ``g`` in ``params`` (from ``L(w)``'s backward pass) by the
    gradient at ``w + rho g / ||g||``, the weights put back afterwards (SAM's ascent step).
    ``loss_again`` computes the loss on the same batch at the current weights.

    >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    >>> loss = lambda: (w ** 3).sum()
    >>> loss().backward()  # g = 3 w^2 = (27, 48); e = 0.5 g / ||g|| = (0.245, 0.436)
    >>> sharpness_aware([w], loss, rho=0.5)
    >>> [round(v, 2) for v in w.grad.tolist()], w.tolist()  # 3 (w + e)^2, w unchanged
    ([31.59, 59.03], [3.0, 4.0])
    """
    with torch.no_grad():
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        scale = rho / (norm + 1e-12)
        moved = []
        for p in params:
            if p.grad is not None:
                e = p.grad * scale
                p.add_(e)
                moved.append((p, e))
            p.grad = None
    loss_again().backward()
    with torch.no_grad():
        for p, e in moved:
            p.sub_(e)
