"""Gradual rank increase (Boix-Adsera, Littwin, Abbe, Bengio & Susskind 2023, "Transformers learn
through gradual rank increase"; PAPERS.md 26): from a small initialisation, the update
``W_t - W_0`` of an attention layer's query-key matrix gains rank one direction at a time, each
after a plateau of the loss, and the plateaus lengthen as the initialisation shrinks.

The design is the paper's small-scale plan: the recipe ``gradual-rank`` (one attention layer,
``d = 16``, learning the rank-3 teacher of ``learnscope.tasks.attention_teacher`` with
singular values 8, 4, 2 by full-batch SGD), trained at each ``init_scale`` of ``inits``
through the runner, with a checkpoint every ``every`` steps. From the checkpoints, the
singular values ``sigma_k(t)`` of ``Delta(t) = W_Q W_K^T (t) - W_Q W_K^T (0)`` and, per run:

- ``rank``: the number of ``sigma_k`` above a tenth of the largest at the end;
- ``t{k}``: the first step at which ``sigma_k`` reached half of the teacher's ``s_k`` (the
  ``k``-th direction learned);
- ``overlap``: the most, over ``k < rank``, of ``sigma_{k+1}(t_k) / s_{k+1}``: how much of the
  next direction had been learned when the ``k``-th was half learned. Directions learned one
  at a time give an overlap near 0; learned together, near 1.

:func:`measure` (the study spec ``gradual-rank-init``) returns them for each init, named
``{key}_{init}`` (``rank_0.001``, ``t1_0.1``, ...), and the ratios the claims read.
"""

from __future__ import annotations

from typing import Any

import torch

from learnscope import checkpoint
from learnscope.errors import UserError
from learnscope.runner import build, checkpoint_at, execute
from learnscope.store import Store


def singular_values(run_dir, steps: list[int], qk0: torch.Tensor) -> list[torch.Tensor]:
    """``sigma(Delta(t))`` at each checkpoint step of a run of the ``attention`` model whose
    initial query-key matrix is ``qk0``."""
    out = []
    for step in steps:
        _, state = checkpoint_at(run_dir, step)
        w = state["model"]
        out.append(torch.linalg.svdvals(w["w_q"] @ w["w_k"].T - qk0))
    return out


def stages(
    steps: list[int], sv: list[torch.Tensor], teacher: torch.Tensor, threshold: float = 0.1
) -> dict[str, float]:
    """``rank``, ``t1 .. t_r`` and ``overlap`` (module docstring) of one run's singular values
    ``sv`` at ``steps`` against the teacher's singular values.

    >>> t = torch.tensor([8.0, 4.0])
    >>> sv = [torch.tensor(x) for x in ([0.0, 0.0], [5.0, 0.2], [7.0, 1.0], [8.0, 3.9])]
    >>> stages([0, 10, 20, 30], sv, t)
    {'rank': 2.0, 't1': 10.0, 't2': 30.0, 'overlap': 0.05}
    """
    last = sv[-1]
    out: dict[str, float] = {"rank": float((last > threshold * last[0]).sum()) if last[0] else 0.0}
    overlaps = []
    for k in range(len(teacher)):
        hit = next((i for i, s in enumerate(sv) if s[k] >= teacher[k] / 2), None)
        if hit is None:
            break
        out[f"t{k + 1}"] = float(steps[hit])
        if k + 1 < len(teacher):
            overlaps.append(round(float(sv[hit][k + 1] / teacher[k + 1]), 6))
    if overlaps:
        out["overlap"] = max(overlaps[: max(int(out["rank"]) - 1, 1)])
    return out


def measure(
    options: dict[str, Any], seed: int, store: Store, progress: Any = None
) -> dict[str, float]:
    """The study spec ``gradual-rank-init`` at one seed (module docstring). Options:
    ``recipe``, ``inits`` (init scales, the first the smallest), ``every`` (steps between
    checkpoints), ``set`` (dotted overrides of the recipe)."""
    from learnscope.studies.study import check_options, recipe_at_seed

    opts = check_options(
        options,
        {"recipe": "gradual-rank", "inits": [0.001, 0.1], "every": 50, "set": {}},
        "gradual-rank",
    )
    inits = [float(x) for x in opts["inits"]]
    if len(inits) < 2 or any(not 0 < x <= 10 for x in inits):
        raise UserError(f"gradual-rank.options.inits: two or more scales in (0, 10] (got {inits})")
    out: dict[str, float] = {}
    for i, init in enumerate(inits):
        over = {
            "model.init_scale": init,
            "train.checkpoint_every": int(opts["every"]),
            "claims": [],
            **dict(opts["set"]),
        }
        cfg = recipe_at_seed(opts["recipe"], seed, over)
        if cfg.model.kind != "attention":
            raise UserError("gradual-rank.options.recipe: needs model.kind attention")
        run = execute(cfg, store)
        if run.status not in ("finished", "stopped"):
            raise UserError(f"gradual-rank: the run {run.run_id} ended {run.status}")
        start = build(cfg)  # the run's initial weights and its teacher, as seeded
        qk0 = start.model.qk().detach()
        teacher = start.task.singular_values
        steps = [0, *checkpoint.steps(run.dir / "checkpoints")]
        sv = [torch.zeros_like(teacher[:1]).expand(len(qk0))] + singular_values(
            run.dir, steps[1:], qk0
        )
        found = stages(steps, sv, teacher)
        out.update({f"{k}_{init:g}": v for k, v in found.items()})
        if progress is not None:
            progress((i + 1) / len(inits))
    small, large = f"{inits[0]:g}", f"{inits[-1]:g}"
    if f"t1_{small}" in out and f"t1_{large}" in out:
        out["plateau_ratio"] = out[f"t1_{small}"] / out[f"t1_{large}"]
    if f"overlap_{small}" in out and f"overlap_{large}" in out:
        out["overlap_ratio"] = out[f"overlap_{large}"] / max(out[f"overlap_{small}"], 1e-6)
    return out
