"""Layer pruning of a trained run (``learnscope prune-layers RUN --n K [--heal STEPS]``;
Gromov, Tirumala, Shapourian, Glorioso & Roberts 2024, "The unreasonable ineffectiveness of
the deeper layers").

For each ``K``: the block of ``K`` layers whose input and output are closest at the last prompt
token (the position that predicts the first answer token), over the first ``rows`` rows of the
``test`` split (:func:`~learnscope.interventions.layers.most_similar_block`), is removed and
the pruned model is evaluated on every split of the run's task
(:func:`learnscope.runner.evaluate`). With ``heal > 0`` the pruned model is fine-tuned as a run
of its own (:func:`learnscope.runner.execute`, started from the pruned weights; named
``<run>-prune<K>-<block>``): the run's settings with ``model.n_layer`` lowered by ``K``,
``heal`` steps at a constant learning rate (default: a tenth of the run's peak rate; at the
full rate the fine-tuning undoes more than it heals), no warmup, no stopping rule; its step-0
eval is the pruned model, its last the healed one. The paper's baseline, removing the deepest
``K`` layers but the last, is evaluated beside it (and healed the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from learnscope.config import RunConfig, validate_config
from learnscope.errors import UserError
from learnscope.interventions.layers import most_similar_block, remove_blocks, residual_stream
from learnscope.runner import evaluate, execute, restore
from learnscope.store import Store


@dataclass
class LayerPruning:
    """One ``K``: the block removed, its distance, and the metrics of each model (with the
    healing runs' ids)."""

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
    heal_runs: list[str] = field(default_factory=list)


@dataclass
class PruningStudy:
    """The run pruned (its name, id, checkpoint step, layers), the test rows that scored the
    blocks, the metrics before pruning, and one :class:`LayerPruning` per ``K``."""

    name: str
    run_id: str
    step: int
    layers: int
    rows: int
    before: dict[str, float]
    heal_lr: float | None
    results: list[LayerPruning]


def stream_batch(task, rows: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """``tokens: (b, T)`` and the last prompt position ``(b,)`` of the first ``rows`` test rows."""
    split = task.split("test").to("cpu")
    n = min(rows, len(split))
    return split["tokens"][:n], split["prompt_len"][:n] - 1


def heal_config(cfg: RunConfig, layers: int, steps: int, lr: float, name: str) -> RunConfig:
    """``cfg`` for fine-tuning its model with ``layers`` layers: ``steps`` steps at the
    constant rate ``lr``, evaluated before and after, on the CPU."""
    data = cfg.to_dict()
    data["name"] = name
    data["model"]["n_layer"] = layers
    data["train"].update(
        lr=lr,
        steps=steps,
        eval_every=steps,
        schedule="constant",
        warmup_steps=0,
        stop_when=[],
        device="cpu",
        checkpoint_every=0,
        init_from=None,
    )
    data["claims"] = []  # the recipe's claims are about the recipe, not the pruned model
    return validate_config(data)


def _heal(
    store: Store,
    cfg: RunConfig,
    model: torch.nn.Module,
    steps: int,
    lr: float,
    name: str,
    origin: str,
) -> tuple[dict[str, float], dict[str, float], str]:
    """Metrics before and after healing ``model`` as a run of ``store``: (pruned, healed,
    run id)."""
    run_cfg = heal_config(cfg, model.cfg.n_layer, steps, lr, name)
    result = execute(run_cfg, store, weights=model.state_dict(), extra={"pruned_from": origin})
    table = store.metric_table(result.run_id)
    first, last = table.iloc[0].dropna().to_dict(), table.iloc[-1].dropna().to_dict()
    return first, last, result.run_id


def prune_layers(
    store: Store,
    run_id: str,
    ns: list[int],
    heal_steps: int = 0,
    rows: int = 256,
    baseline: bool = True,
    heal_lr: float | None = None,
    step: int | None = None,
) -> PruningStudy:
    """Remove the most similar block of each ``K`` in ``ns`` from the run's model (at its
    checkpoint ``step``, default the latest) and measure; see the module docstring."""
    rec = store.run(run_id)
    if rec["config"].get("model", {}).get("kind") != "gpt":
        raise UserError("prune-layers: the run's model must be a GPT (model.kind gpt)")
    trainer, at = restore(rec["config"], rec["dir"], step)
    cfg = validate_config(rec["config"], stored=True)
    model = trainer.model.to("cpu").eval()
    before = evaluate(cfg, model)
    tokens, positions = stream_batch(trainer.task, rows)
    stream = residual_stream(model, tokens, positions)
    layers = len(stream) - 1
    lr = heal_lr if heal_lr is not None else cfg.train.lr / 10
    out = []
    for n in ns:
        if not 1 <= n < layers:
            raise UserError(f"--n: must be in 1..{layers - 1} (the model has {layers} layers)")
        start, dist, dists = most_similar_block(stream, n)
        result = LayerPruning(n, start, dist, dists, {}, heal_steps=heal_steps)
        cuts = [("pruned", "healed", start)]
        if baseline:  # Gromov et al.'s baseline: the deepest n layers except the last
            result.baseline_start = max(layers - 1 - n, 0)
            cuts.append(("baseline", "baseline_healed", result.baseline_start))
        for key, healed_key, first in cuts:
            cut = remove_blocks(model, first, n)
            if heal_steps:
                name = f"{rec['name']}-prune{n}-{first}..{first + n - 1}"
                origin = f"{run_id}@{at} without layers {first}..{first + n - 1}"
                metrics, healed, heal_id = _heal(store, cfg, cut, heal_steps, lr, name, origin)
                setattr(result, healed_key, healed)
                result.heal_runs.append(heal_id)
            else:
                metrics = evaluate(cfg, cut)
            setattr(result, key, metrics)
        out.append(result)
    shown = min(rows, len(trainer.task.split("test")))
    return PruningStudy(
        rec["name"], run_id, at, layers, shown, before, lr if heal_steps else None, out
    )


def curve(study: PruningStudy, metric: str = "test/acc") -> list[dict[str, Any]]:
    """The points of the pruning plot: ``n`` (0: the unpruned model) and the metric of the
    pruned, healed, baseline and baseline-healed models."""
    healed = study.before[metric] if study.heal_lr is not None else None
    points: list[dict[str, Any]] = [
        {
            "n": 0,
            "pruned": study.before[metric],
            "healed": healed,
            "baseline": study.before[metric],
            "baseline_healed": healed,
        }
    ]
    for r in study.results:
        point = {"n": r.n, "pruned": r.pruned.get(metric)}
        point["baseline"] = r.baseline.get(metric) if r.baseline else None
        if r.healed is not None:
            point["healed"] = r.healed.get(metric)
            point["baseline_healed"] = (r.baseline_healed or {}).get(metric)
        points.append(point)
    return points


#: test accuracy a cut must lose for the fraction healing wins back to be measured
MIN_LOSS = 0.05


def measure(
    options: dict[str, Any], seed: int, store: Store, progress: Any = None
) -> dict[str, float]:
    """The study spec ``layer-pruning-healed`` at one seed (:mod:`learnscope.studies.study`):
    the recipe trained at ``seed``, then its most similar block of ``n`` layers removed and
    healed (:func:`prune_layers`, with the paper's baseline). Returns the test accuracy
    ``before``, ``pruned``, ``healed``, ``baseline`` (the deepest ``n`` but the last removed)
    and ``baseline_healed``, with ``healed_over_pruned`` and ``healing_gain`` (healed minus
    pruned), ``recovered`` (that gain over what the cut lost, ``before - pruned``; left out
    when the cut lost less than :data:`MIN_LOSS`, e.g. an untrained model) and
    ``pruned_over_baseline`` (the most similar block against the deepest). Options: ``recipe``,
    ``n``, ``heal`` (steps), ``set`` (dotted overrides of the recipe)."""
    from learnscope.studies.study import check_options, recipe_at_seed

    opts = check_options(
        options, {"recipe": "layer-pruning", "n": 3, "heal": 100, "set": {}}, "layer-pruning"
    )
    cfg = recipe_at_seed(opts["recipe"], seed, {"claims": [], **dict(opts["set"])})
    run = execute(cfg, store)
    if run.status not in ("finished", "stopped"):
        raise UserError(f"layer-pruning: the run {run.run_id} ended {run.status}")
    if progress is not None:
        progress(0.5)
    study = prune_layers(store, run.run_id, [int(opts["n"])], heal_steps=int(opts["heal"]))
    r = study.results[0]
    out = {
        "before": study.before["test/acc"],
        "pruned": r.pruned["test/acc"],
        "baseline": r.baseline["test/acc"],
        "block_start": float(r.start),
    }
    if r.healed is not None:
        out["healed"] = r.healed["test/acc"]
        out["baseline_healed"] = r.baseline_healed["test/acc"]
        out["healed_over_pruned"] = out["healed"] / max(out["pruned"], 1e-9)
        out["healing_gain"] = out["healed"] - out["pruned"]
        lost = out["before"] - out["pruned"]
        if lost >= MIN_LOSS:  # what healing won back of what the cut lost (else: undefined)
            out["recovered"] = out["healing_gain"] / lost
    out["pruned_over_baseline"] = out["pruned"] / max(out["baseline"], 1e-9)
    return out
