"""Transfer by a linear probe on frozen features: how useful a pre-trained representation is
for a held-out task (the evaluation of Zhu et al. 2023, "Variance-covariance regularization
improves representation learning", there on images; here on another operation over the same
inputs, e.g. pre-train on ``(a + b) mod p``, probe ``(a - b) mod p``).

A run's checkpoint is restored (:func:`learnscope.runner.restore`), the activations at one
site are read for the held-out task's inputs (``features``), and a ridge-regression probe to
one-hot labels is fitted in closed form on its train split and scored on its test split
(``ridge_probe``). The representation's effective rank (Roy & Vetterli 2007,
:func:`learnscope.probes.rank.effective_rank`, on the centred features of every row) says how
many directions it keeps alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from learnscope.errors import UserError
from learnscope.models.hooks import capture, match_sites
from learnscope.probes.rank import effective_rank
from learnscope.runner import restore
from learnscope.tasks import make_task


@torch.no_grad()
def features(model: torch.nn.Module, x: torch.Tensor, site: str) -> torch.Tensor:
    """Activations of ``model`` at ``site`` for inputs ``x``, flattened to ``(n, d)``."""
    model.eval()
    with capture(model, [site]) as acts:
        model(x)
    return acts[site].reshape(len(x), -1).double()


def ridge_probe(
    f_train: torch.Tensor,
    y_train: torch.Tensor,
    f_test: torch.Tensor,
    y_test: torch.Tensor,
    n_classes: int,
    ridge: float = 1e-3,
) -> float:
    """Test accuracy of a linear probe fitted in closed form.

    Features are standardised with the training mean and standard deviation, a bias column
    is added, and ``W = (F^T F + ridge n I)^-1 F^T Y`` is the ridge regression of the one-hot
    labels ``Y: (n, n_classes)``; the prediction is ``argmax(f W)``.

    >>> f = torch.eye(4).repeat(3, 1)  # each class its own feature: perfectly decodable
    >>> y = torch.arange(4).repeat(3)
    >>> ridge_probe(f, y, f, y, 4)
    1.0
    """
    mean, std = f_train.mean(0), f_train.std(0).clamp_min(1e-8)

    def design(f: torch.Tensor) -> torch.Tensor:
        z = (f.double() - mean) / std
        return torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], 1)

    a = design(f_train)
    target = torch.nn.functional.one_hot(y_train, n_classes).double()
    gram = a.T @ a + ridge * len(a) * torch.eye(a.shape[1], dtype=a.dtype)
    w = torch.linalg.solve(gram, a.T @ target)
    return (design(f_test) @ w).argmax(1).eq(y_test).double().mean().item()


@dataclass
class Transfer:
    """What a run's representation at ``site`` gives on the held-out task."""

    site: str
    step: int
    effective_rank: float
    probe_train_acc: float
    probe_test_acc: float


def transfer(
    config: dict[str, Any],
    run_dir: Path,
    held_out: dict[str, Any],
    site: str,
    ridge: float = 1e-3,
    step: int | None = None,
) -> Transfer:
    """Linear-probe transfer of a run's checkpoint (module docstring). ``held_out``: task
    parameters replacing the run's own (e.g. ``{"op": "sub"}``); the task must be a
    classification task (inputs ``x``, labels ``y``)."""
    trainer, at = restore(config, run_dir, step)
    params = {**config["task"], **held_out}
    name = params.pop("name")
    task = make_task(name, **params)
    if task.kind != "classification":
        raise UserError(f"transfer: task {name!r} is not a classification task")
    sites = match_sites(trainer.model, [site])
    if len(sites) != 1:
        raise UserError(f"--site: {site!r} matches {sites or 'no site'}; give exactly one")
    model = trainer.model.cpu()
    train, test = task.split("train"), task.split("test")
    f_train, f_test = features(model, train["x"], sites[0]), features(model, test["x"], sites[0])
    every = torch.cat([f_train, f_test])
    n_classes = task.model_dims()["n_out"]
    return Transfer(
        site=sites[0],
        step=at,
        effective_rank=effective_rank(every - every.mean(0)),
        probe_train_acc=ridge_probe(f_train, train["y"], f_train, train["y"], n_classes, ridge),
        probe_test_acc=ridge_probe(f_train, train["y"], f_test, test["y"], n_classes, ridge),
    )
