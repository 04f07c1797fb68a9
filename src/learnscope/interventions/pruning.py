"""Pruning the neurons that memorise (Doshi, Das, He & Gromov 2024, "To grok or not to grok").

A network trained on modular arithmetic with corrupted labels can both generalise (periodic,
single-frequency neurons: the analytic solution's) and memorise the corrupted rows (neurons
with a flat, spread spectrum). Each hidden neuron ``k`` of the two-layer MLP is scored by the
inverse participation ratio of its weights read by residues: the mean of the IPR of its
first-layer blocks (one per operand, ``U[k, :]``, ``V[k, :]``) and of its read-out column
``W[:, k]`` (:func:`learnscope.probes.neuron_ipr`); high is periodic, low is memorising.
Zeroing the low-IPR neurons (their first-layer row and their read-out column) removes the
memorisation of the corrupted labels while the clean and test accuracy hold.

>>> import torch
>>> from learnscope.models.mlp import MLP, MLPConfig
>>> net = MLP(MLPConfig(n_inputs=2, vocab=5, n_out=5, width=4, bias=False))
>>> pruned = prune_neurons(net, [1, 3])
>>> first, out = pruned.layers[0].linear.weight, pruned.out.weight
>>> first[[1, 3]].abs().sum().item(), out[:, [1, 3]].abs().sum().item(), out[:, 0].abs().sum() > 0
(0.0, 0.0, tensor(True))
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from learnscope.probes.spectral import neuron_ipr


def _first_and_out(model: nn.Module) -> tuple[nn.Linear, nn.Linear]:
    layers = getattr(model, "layers", None)
    if layers is None or len(layers) != 1 or not hasattr(model, "out"):
        raise ValueError("memorising-neuron pruning needs a two-layer MLP (model.depth = 2)")
    return layers[0].linear, model.out


def neuron_scores(model: nn.Module, p: int, basis: str = "add") -> torch.Tensor:
    """Per hidden neuron ``(width,)``: the mean IPR of its operand blocks and its read-out
    column (Doshi et al. 2024); ``basis="mul"`` reads the residues by their discrete log
    (multiplication, division: :func:`learnscope.probes.spectral.basis_for`)."""
    first, out = _first_and_out(model)
    w1, w2 = first.weight.detach().double().cpu(), out.weight.detach().double().cpu()
    blocks = w1.shape[1] // p
    scores = neuron_ipr(w1, p, basis) * blocks + neuron_ipr(w2.T, p, basis)
    return (scores / (blocks + 1)).to(first.weight.dtype)


def memorizing_neurons(model: nn.Module, p: int, below: float, basis: str = "add") -> list[int]:
    """The hidden neurons whose score (:func:`neuron_scores`) is below ``below``."""
    return torch.nonzero(neuron_scores(model, p, basis) < below).flatten().tolist()


@torch.no_grad()
def prune_neurons(model: nn.Module, neurons: list[int]) -> nn.Module:
    """A copy of ``model`` with the given hidden neurons removed: their first-layer rows (and
    biases) and their read-out columns set to zero."""
    pruned = copy.deepcopy(model)
    first, out = _first_and_out(pruned)
    index = torch.tensor(neurons, dtype=torch.long)
    first.weight[index] = 0.0
    if first.bias is not None:
        first.bias[index] = 0.0
    out.weight[:, index] = 0.0
    return pruned
