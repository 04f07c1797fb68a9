"""What happens to the gradient between the backward pass and the optimiser's step, and the
StableMax loss: the grokking accelerators of Lee et al. 2024 and Prieto et al. 2025.

- **Grokfast** (Lee, Kang, Kim & Lee 2024; PAPERS.md 30), per parameter tensor: ``g_hat = g +
  lamb * h`` with ``h`` a low-pass filter of the gradients, ``ema``: ``h = alpha h + (1 - alpha)
  g`` (``h`` starts at the first gradient), or ``ma``: the mean of the last ``window``
  gradients (not applied until the window is full).
- **⊥Grad** (Prieto, Barsbey, Mediano & Birdal 2025; PAPERS.md 31), per parameter tensor ``w``:
  ``g_perp = g - (w.g) / (w.w + 1e-30) w``, rescaled to ``||g||``: the step can no longer grow
  the weights along themselves (the logit scaling that ends in softmax collapse).
- **StableMax** (the same paper): ``s(x) = x + 1`` for ``x >= 0``, ``1 / (1 - x)`` below;
  ``StableMax(z)_i = s(z_i) / sum_j s(z_j)``; the loss ``-log StableMax(z)_y`` in float64.

Softmax collapse, which StableMax and ⊥Grad avoid, is the probe ``softmax_collapse``
(:mod:`learnscope.probes.softmax`) and the event of that name.
"""

from __future__ import annotations

from typing import Any

import torch

from learnscope.config import TrainConfig


def stablemax(z: torch.Tensor) -> torch.Tensor:
    """StableMax over the last axis, in float64.

    >>> stablemax(torch.tensor([0.0, 1.0, -1.0])).tolist()  # s = 1, 2, 0.5
    [0.2857142857142857, 0.5714285714285714, 0.14285714285714285]
    """
    z = z.double()
    s = torch.where(z >= 0, z + 1, 1 / (1 - z.clamp(max=0)))
    return s / s.sum(-1, keepdim=True)


def stablemax_cross_entropy(
    logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """``-log StableMax(logits)_y`` (float64, returned in the logits' dtype); ``logits (..., C)``,
    ``y (...)``; ``reduction``: mean or none.

    >>> z = torch.tensor([[0.0, 1.0, -1.0]])
    >>> round(stablemax_cross_entropy(z, torch.tensor([1])).item(), 4)  # -log(4/7)
    0.5596
    """
    p = stablemax(logits).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    loss = -torch.log(p).to(logits.dtype)
    return loss.mean() if reduction == "mean" else loss


class GradientSteps:
    """The trainer's gradient transforms, in order: Grokfast's filter (``train.grad_filter``),
    then ⊥Grad (``train.orthogonal``); ``state_dict`` holds the filter's memory, so a resumed
    run continues exactly."""

    def __init__(self, cfg: TrainConfig, params: list[torch.nn.Parameter]) -> None:
        self.filter, self.orthogonal = cfg.grad_filter, cfg.orthogonal
        self.params = params
        self.memory: list[Any] = [None] * len(params)  # ema: h; ma: the last gradients

    @property
    def active(self) -> bool:
        return self.filter is not None or self.orthogonal

    @torch.no_grad()
    def __call__(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            if self.filter is not None:
                self._grokfast(i, p.grad)
            if self.orthogonal:
                _orthogonalise(p, p.grad)

    def _grokfast(self, i: int, g: torch.Tensor) -> None:
        f = self.filter
        if f.kind == "ema":
            h = self.memory[i]
            h = g.clone() if h is None else h.mul_(f.alpha).add_(g, alpha=1 - f.alpha)
            self.memory[i] = h
            g.add_(h, alpha=f.weight)
            return
        window = self.memory[i] if self.memory[i] is not None else []
        window = [*window[-(f.window - 1) :], g.clone()] if f.window > 1 else [g.clone()]
        self.memory[i] = window
        if len(window) == f.window:  # warm-up: not applied until the window is full
            g.add_(torch.stack(window).mean(0), alpha=f.weight)

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory} if self.filter is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("memory") is not None:
            self.memory = list(state["memory"])


def _orthogonalise(w: torch.Tensor, g: torch.Tensor) -> None:
    """``g`` in place: its component along ``w`` removed, its norm kept (⊥Grad)."""
    norm = g.norm()
    g.sub_(w, alpha=float((w * g).sum() / ((w * w).sum() + 1e-30)))
    g.mul_(norm / (g.norm() + 1e-30))
