"""Interventions: things that change a model, each a pure function ``model -> model`` (plus the
command that runs it), and the criticality scan of random networks they build on."""

from learnscope.interventions.autoinit import AutoInitResult, autoinit
from learnscope.interventions.criticality import critical_sigma_w2, mean_field_chi, scan
from learnscope.interventions.layers import most_similar_block, remove_blocks
from learnscope.interventions.pruning import memorizing_neurons, neuron_scores, prune_neurons

__all__ = [
    "AutoInitResult",
    "autoinit",
    "critical_sigma_w2",
    "mean_field_chi",
    "memorizing_neurons",
    "most_similar_block",
    "neuron_scores",
    "prune_neurons",
    "remove_blocks",
    "scan",
]
