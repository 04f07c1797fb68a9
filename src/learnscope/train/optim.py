"""Optimisers and learning-rate schedules named in ``TrainConfig``."""

from __future__ import annotations

import math

import torch
from torch import nn

from learnscope.config import TrainConfig


def stepping(cfg: TrainConfig) -> str:
    """The optimiser that takes the steps: ``cfg.optimizer``, or SAM's ``sam_base``."""
    return cfg.sam_base if cfg.optimizer == "sam" else cfg.optimizer


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict] | list[torch.Tensor]:
    """The trainable parameters; grouped by learning-rate factor when the model has per-layer
    factors (``model.lr_multipliers(optimizer)``: the μP / NTK tables of
    ``learnscope.models.param``, the lazy-training output scale), each group's ``lr`` =
    ``cfg.lr x factor`` and its ``lr_mult`` the factor. A model without factors: one plain list.
    """
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    mults = getattr(model, "lr_multipliers", lambda _: {})(stepping(cfg))
    if not mults:
        return [p for _, p in params]
    groups: dict[float, list[torch.Tensor]] = {}
    for name, p in params:
        groups.setdefault(mults.get(name, 1.0), []).append(p)
    return [{"params": ps, "lr": cfg.lr * m, "lr_mult": m} for m, ps in groups.items()]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay), Adam (L2 added to the gradient) or SGD with momentum
    (for SAM, ``sam_base``, stepping along the gradient the trainer computes), with the
    model's per-layer learning-rate groups (:func:`param_groups`)."""
    params = param_groups(model, cfg)
    kind = stepping(cfg)
    if kind == "adamw":
        return torch.optim.AdamW(
            params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
        )
    if kind == "adam":
        return torch.optim.Adam(
            params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
        )
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of ``cfg.lr`` at ``step``.

    Both start with a linear warmup, ``(step + 1) / warmup_steps``, when ``warmup_steps > 0``.
    ``constant`` then stays at 1; ``warmup_cosine`` follows a half cosine from 1 down to
    ``min_lr_ratio`` at ``steps``.

    >>> from learnscope.config import TrainConfig
    >>> c = TrainConfig(schedule="warmup_cosine", warmup_steps=10, steps=110, min_lr_ratio=0.1)
    >>> [round(lr_factor(s, c), 3) for s in (0, 5, 10, 60, 110)]
    [0.1, 0.6, 1.0, 0.55, 0.1]
    """
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, cfg))
