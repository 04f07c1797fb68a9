from __future__ import annotations

import pytest
import torch

from learnscope.interventions import memorizing_neurons, neuron_scores, prune_neurons
from learnscope.models.analytic import analytic_mlp, table_accuracy
from learnscope.models.mlp import MLP, MLPConfig


def mixed(p: int = 23, extra: int = 40) -> tuple[MLP, int]:
    """The analytic network for (a + b) mod p, widened by ``extra`` random neurons (spread
    spectra, as memorising neurons have) with a small read-out."""
    exact = analytic_mlp("add", p, seed=0)
    width = exact.cfg.width
    net = MLP(
        MLPConfig(
            n_inputs=2, vocab=p, n_out=p, width=width + extra, activation="quadratic", bias=False
        )
    )
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        net.layers[0].linear.weight[:width] = exact.layers[0].linear.weight
        net.out.weight[:, :width] = exact.out.weight
        net.layers[0].linear.weight[width:] = torch.randn(extra, 2 * p, generator=g)
        net.out.weight[:, width:] = 0.01 * torch.randn(p, extra, generator=g)
    return net, width


def test_scores_separate_periodic_from_spread_neurons():
    net, width = mixed()
    scores = neuron_scores(net, 23)
    assert scores[:width].min() > 0.99  # single-frequency: IPR 1 in every block
    assert scores[width:].max() < 0.3  # random spectra: IPR ~ 2-4/p
    assert memorizing_neurons(net, 23, below=0.5) == list(range(width, width + 40))


def test_pruning_removes_exactly_those_neurons_and_keeps_the_solution():
    net, width = mixed()
    pruned = prune_neurons(net, memorizing_neurons(net, 23, below=0.5))
    assert pruned.layers[0].linear.weight[width:].abs().sum() == 0
    assert pruned.out.weight[:, width:].abs().sum() == 0
    assert torch.equal(pruned.layers[0].linear.weight[:width], net.layers[0].linear.weight[:width])
    assert table_accuracy(pruned, "add", 23) == 1.0
    assert net.layers[0].linear.weight[width:].abs().sum() > 0  # the original is untouched


def test_refuses_a_deeper_network():
    net = MLP(MLPConfig(n_inputs=2, vocab=5, n_out=5, width=8, depth=3))
    with pytest.raises(ValueError, match="two-layer"):
        neuron_scores(net, 5)
