"""Interventions: model -> model transforms, each a pure function of a model (and data it
reads): AutoInit, neuron pruning, layer removal. They import nothing from ``train/``; the
studies that train, evaluate or heal around them live in :mod:`learnscope.studies`."""

from learnscope.interventions.autoinit import AutoInitResult, autoinit
from learnscope.interventions.layers import most_similar_block, remove_blocks
from learnscope.interventions.pruning import memorizing_neurons, neuron_scores, prune_neurons

__all__ = [
    "AutoInitResult",
    "autoinit",
    "memorizing_neurons",
    "most_similar_block",
    "neuron_scores",
    "prune_neurons",
    "remove_blocks",
]
