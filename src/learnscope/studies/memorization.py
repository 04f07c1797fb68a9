"""Pruning the neurons that memorise (``learnscope prune-memorizing``; Doshi, He, Gromov et
al. 2024, "To grok or not to grok: disentangling generalization and memorization on corrupted
algorithmic datasets").

A modular-arithmetic MLP trained on partly corrupted labels splits its hidden neurons in two:
periodic ones (one Fourier frequency of the residues, inverse participation ratio near 1) that
generalise, and spread-out ones (low IPR) that memorise the corrupted examples. Removing the
neurons whose mean IPR over their input blocks is below a threshold
(:func:`~learnscope.interventions.pruning.memorizing_neurons`) should lower the accuracy on the
corrupted training labels and keep (or raise) the accuracy on the true labels.
"""

from __future__ import annotations

from dataclasses import dataclass

from learnscope.errors import UserError
from learnscope.interventions import memorizing_neurons, neuron_scores, prune_neurons
from learnscope.probes.spectral import basis_for
from learnscope.runner import evaluate


@dataclass
class MemorizingPruning:
    """The neurons removed (of ``width``), the median IPR, and the split metrics before and
    after."""

    neurons: list[int]
    width: int
    median_ipr: float
    before: dict[str, float]
    after: dict[str, float]


def prune_memorizing(trainer, config: dict, ipr_below: float) -> MemorizingPruning:
    """Remove the hidden neurons of ``trainer``'s model whose mean IPR is below ``ipr_below``
    and evaluate the model on every split before and after (the model is left as it was)."""
    task = config.get("task", {})
    p = task.get("p")
    if task.get("name") != "modular" or not p:
        raise UserError("prune-memorizing: the run's task must be modular (a modulus p)")
    basis = basis_for(task.get("op"))
    try:
        scores = neuron_scores(trainer.model, p, basis)
    except ValueError as err:
        raise UserError(f"prune-memorizing: {err}") from None
    neurons = memorizing_neurons(trainer.model, p, ipr_below, basis)
    before = evaluate(config, trainer.model)
    after = evaluate(config, prune_neurons(trainer.model, neurons))
    return MemorizingPruning(
        [int(i) for i in neurons], len(scores), float(scores.median()), before, after
    )
