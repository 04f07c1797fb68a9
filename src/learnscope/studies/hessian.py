"""The Hessian's bulk and outliers (Sagun, Evci, Güney, Dauphin & Bottou 2017, "Empirical
analysis of the Hessian of over-parametrized neural networks"): at the end of training the
spectrum of the training loss's Hessian is a bulk near zero plus a few large outliers, about as
many as the classes (later work, Papyan 2019/2020: ``C`` or ``C - 1``, from the class means of
the logit gradients).

:func:`run_spectrum` reads a run's latest checkpoint (:func:`learnscope.runner.restore`) and
gives the top ``k`` eigenvalues of the Hessian of its training loss (Lanczos with full
reorthogonalisation on Hessian-vector products, :func:`learnscope.probes.lanczos.top_eigenvalues`),
the number of outliers (the largest gap of ``log lambda`` among them,
:func:`learnscope.probes.lanczos.count_outliers`) and, on request, the spectral density by
stochastic Lanczos quadrature (:func:`learnscope.probes.lanczos.slq_density`).

:func:`measure` (the study spec ``hessian-outliers``) trains one run per number of classes
``C`` (the run config of ``options["config"]``, its task's ``n_classes`` set to ``C``) at the
seed and returns ``outliers_c{C}``, ``outlier_error_c{C} = |outliers - C|``, the ratio
``gap_ratio_c{C} = lambda_n / lambda_{n+1}`` at the gap the count was read at, and the
eigenvalues ``lambda1_c{C}``, ``lambda{C-1}_c{C}``, ``lambda{C}_c{C}`` (with ``C - 1``
outliers, Papyan's count, the last outlier and the first of the bulk).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from learnscope.errors import UserError
from learnscope.probes.lanczos import count_outliers, hessian_matvec, slq_density, top_eigenvalues
from learnscope.store import Store

#: the study's options and their defaults (``config`` has none: the spec gives it)
DEFAULTS: dict[str, Any] = {
    "config": None,
    "classes": [3, 5, 10],
    "k": 20,
    "rows": 4096,
    "bulk_from": None,
}


@dataclass
class Spectrum:
    step: int
    n_params: int
    top: torch.Tensor  # (k,) descending
    outliers: int


def loss_matvec(config: dict[str, Any], run_dir: Path, rows: int = 4096):
    """``(v -> H v, n, step)`` for the Hessian of a classification run's training loss (the
    loss it evaluates) at its latest checkpoint, on its first ``rows`` training rows."""
    from learnscope import runner

    trainer, step = runner.restore(config, run_dir)
    if trainer.task.kind != "classification":
        raise UserError(
            f"hessian: run of task {trainer.task.name!r} ({trainer.task.kind}); allowed: "
            "classification tasks"
        )
    model = trainer.model.eval()
    split = trainer.task.split("train")
    x, y = split["x"][:rows], split["y"][:rows]
    params = [p for p in model.parameters() if p.requires_grad]
    matvec, n = hessian_matvec(lambda: trainer.objective.plain_loss(model(x), y), params)
    return matvec, n, step


def run_spectrum(
    config: dict[str, Any],
    run_dir: Path,
    k: int = 20,
    rows: int = 4096,
    bulk_from: int | None = None,
    seed: int = 0,
) -> Spectrum:
    """The top ``k`` Hessian eigenvalues of a run's training loss and its outlier count."""
    matvec, n, step = loss_matvec(config, run_dir, rows)
    top = top_eigenvalues(matvec, n, k, generator=torch.Generator().manual_seed(seed))
    return Spectrum(step, n, top, count_outliers(top, bulk_from))


def run_density(
    config: dict[str, Any],
    run_dir: Path,
    grid: torch.Tensor,
    sigma: float,
    n_vectors: int = 4,
    steps: int = 60,
    rows: int = 4096,
    seed: int = 0,
) -> torch.Tensor:
    """The Hessian's spectral density on ``grid`` (stochastic Lanczos quadrature, Gaussian
    broadening ``sigma``; :func:`learnscope.probes.lanczos.slq_density`)."""
    matvec, n, _ = loss_matvec(config, run_dir, rows)
    g = torch.Generator().manual_seed(seed)
    return slq_density(matvec, n, grid, sigma, n_vectors, steps, g)


def measure(options: dict[str, Any], seed: int, store: Store, progress=None) -> dict[str, float]:
    """One run per number of classes in ``options["classes"]`` (each through
    :func:`learnscope.runner.execute`, the run config ``options["config"]`` with its seed and
    its task's seed set to ``seed``), and its Hessian's top ``k`` eigenvalues and outliers."""
    from learnscope.runner import execute
    from learnscope.studies.study import check_options

    opts = check_options(options, DEFAULTS, "hessian-outliers")
    if not isinstance(opts["config"], dict) or "task" not in opts["config"]:
        raise UserError("options.config: give the run config (a mapping with a task) to train")
    classes = opts["classes"]
    if not (
        isinstance(classes, list)
        and classes
        and all(isinstance(c, int) and c >= 2 for c in classes)
    ):
        raise UserError(f"options.classes: give a list of class counts >= 2 (got {classes!r})")
    k = opts["k"]
    if not isinstance(k, int) or k <= max(classes):
        raise UserError(
            f"options.k: must be an integer above the largest class count {max(classes)} "
            f"(got {k!r})"
        )
    out: dict[str, float] = {}
    for i, c in enumerate(classes):
        cfg = copy.deepcopy(opts["config"])
        cfg["seed"] = seed
        cfg["task"] = {**cfg["task"], "n_classes": c, "seed": seed}
        cfg["name"] = f"{cfg.get('name', 'hessian-outliers')}-c{c}"
        result = execute(cfg, store)
        spec = run_spectrum(
            store.run(result.run_id)["config"],
            result.dir,
            k,
            int(opts["rows"]),
            opts["bulk_from"],
            seed,
        )
        lam = spec.top.tolist()
        out[f"outliers_c{c}"] = float(spec.outliers)
        out[f"outlier_error_c{c}"] = float(abs(spec.outliers - c))
        out[f"lambda1_c{c}"] = lam[0]
        out[f"lambda{c - 1}_c{c}"] = lam[c - 2]
        out[f"lambda{c}_c{c}"] = lam[c - 1]
        n = spec.outliers  # the gap the count was read at: lambda_n / lambda_{n+1}
        out[f"gap_ratio_c{c}"] = (
            lam[n - 1] / lam[n] if 0 < n < len(lam) and lam[n] > 0 else math.nan
        )
        out[f"train_acc_c{c}"] = float(result.summary.get("train_acc", math.nan))
        out[f"test_acc_c{c}"] = float(result.summary.get("test_acc", math.nan))
        if progress:
            progress((i + 1) / len(classes))
    return out
