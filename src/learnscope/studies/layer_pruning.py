"""Layer pruning of a trained run (``learnscope prune-layers RUN --n K [--heal STEPS]``).

For each ``K``: the block of ``K`` layers whose input and output are closest at the last prompt
token (the position that predicts the first answer token), over the first ``rows`` rows of the
``test`` split (:func:`~learnscope.interventions.layers.most_similar_block`), is removed; the
pruned model is evaluated on every split of the run's task, and, with ``heal > 0``, fine-tuned
for ``heal`` steps with the run's own training settings but a constant learning rate (default:
a tenth of the run's peak rate; at the full rate the fine-tuning undoes more than it heals) and
no warmup, by the ordinary :class:`~learnscope.train.loop.Trainer` and evaluated again. The
paper's baseline, removing the deepest ``K`` layers but the last (Gromov et al. 2024), is
evaluated beside it (and healed the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from learnscope.interventions.layers import most_similar_block, remove_blocks, residual_stream
from learnscope.train.callbacks import Callback
from learnscope.train.loop import Trainer


@dataclass
class LayerPruning:
    """One ``K``: the block removed, its distance, and the metrics of each model."""

    n: int
    start: int
    distance: float
    distances: list[float]
    pruned: dict[str, float]
    healed: dict[str, float] | None = None
    baseline: dict[str, float] | None = None  # the deepest K layers but the last removed
    baseline_start: int | None = None
    baseline_healed: dict[str, float] | None = None
    heal_steps: int = 0
    extra: dict[str, float] = field(default_factory=dict)


class _First(Callback):
    """Keeps the metrics measured at step 0 (the pruned model, before healing)."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] | None = None

    def on_metrics(self, trainer, step: int, values: dict[str, float]) -> None:
        if step == 0 and self.metrics is None and any(k.endswith("/acc") for k in values):
            self.metrics = dict(values)


def stream_batch(trainer: Trainer, rows: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """``tokens: (b, T)`` and the last prompt position ``(b,)`` of the first ``rows`` test rows."""
    split = trainer.task.split("test").to("cpu")
    n = min(rows, len(split))
    return split["tokens"][:n], split["prompt_len"][:n] - 1


def _trainer_for(
    trainer: Trainer, model: torch.nn.Module, steps: int, lr: float | None = None
) -> Trainer:
    cfg = trainer.cfg.model_copy(
        update={
            "lr": lr if lr is not None else trainer.cfg.lr,
            "steps": max(steps, 1),
            "eval_every": max(steps, 1),
            "schedule": "constant",
            "warmup_steps": 0,
            "stop_when": [],
            "device": "cpu",
        }
    )
    return Trainer(model, trainer.task, cfg, seed=trainer.seed)


def evaluate(trainer: Trainer, model: torch.nn.Module) -> dict[str, float]:
    """The split metrics of ``model`` on ``trainer``'s task (as the trainer evaluates)."""
    return _trainer_for(trainer, model, 1).evaluate()


def heal(
    trainer: Trainer, model: torch.nn.Module, steps: int, lr: float
) -> tuple[dict, dict, torch.nn.Module]:
    """Metrics before and after ``steps`` fine-tuning steps of ``model`` at the constant
    learning rate ``lr`` (a copy is trained)."""
    import copy

    healer = _trainer_for(trainer, copy.deepcopy(model), steps, lr)
    first = _First()
    healer.add_callback(first)
    after = healer.fit()
    return first.metrics or {}, after, healer.model


def prune_layers(
    trainer: Trainer,
    ns: list[int],
    heal_steps: int = 0,
    rows: int = 256,
    baseline: bool = True,
    heal_lr: float | None = None,
) -> list[LayerPruning]:
    """Remove the most similar block of each ``K`` in ``ns`` from ``trainer.model`` (left as it
    is) and measure; see the module docstring."""
    model = trainer.model.to("cpu").eval()
    tokens, positions = stream_batch(trainer, rows)
    stream = residual_stream(model, tokens, positions)
    layers = len(stream) - 1
    out = []
    for n in ns:
        if not 1 <= n < layers:
            raise ValueError(f"--n: must be in 1..{layers - 1} (the model has {layers} layers)")
        start, dist, dists = most_similar_block(stream, n)
        pruned = remove_blocks(model, start, n)
        if heal_steps:
            lr = heal_lr if heal_lr is not None else trainer.cfg.lr / 10
            metrics, healed, _ = heal(trainer, pruned, heal_steps, lr)
        else:
            metrics, healed = evaluate(trainer, pruned), None
        result = LayerPruning(n, start, dist, dists, metrics, healed, heal_steps=heal_steps)
        if baseline:  # Gromov et al.'s baseline: the deepest n layers except the last
            result.baseline_start = max(layers - 1 - n, 0)
            cut = remove_blocks(model, result.baseline_start, n)
            if heal_steps:
                result.baseline, result.baseline_healed, _ = heal(trainer, cut, heal_steps, lr)
            else:
                result.baseline = evaluate(trainer, cut)
        out.append(result)
    return out
