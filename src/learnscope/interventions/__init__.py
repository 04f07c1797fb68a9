"""Interventions: things that change a trained model, each a pure function ``model -> model``
(plus the command that runs it on a stored run)."""

from learnscope.interventions.layers import most_similar_block, remove_blocks
from learnscope.interventions.pruning import memorizing_neurons, neuron_scores, prune_neurons

__all__ = [
    "memorizing_neurons",
    "most_similar_block",
    "neuron_scores",
    "prune_neurons",
    "remove_blocks",
]
