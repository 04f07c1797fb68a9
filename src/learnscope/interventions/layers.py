"""Layer pruning (Gromov, Tirumala, Shapourian, Glorioso & Roberts 2024, "The unreasonable
ineffectiveness of the deeper layers").

With ``x^l`` the residual stream entering layer ``l`` at the last token (``x^L`` the output of
the last layer), the block of ``n`` consecutive layers ``l .. l+n-1`` is scored by the angular
distance between its input and its output,

    d(x^l, x^{l+n}) = (1/pi) arccos(x^l . x^{l+n} / (|x^l| |x^{l+n}|)),

averaged over a batch of sequences (:func:`learnscope.probes.distance.layer_distances`). The
paper removes the block ``l* = argmin_l d(x^l, x^{l+n})`` (its input and output point the same
way: the block barely changes the stream) and heals the pruned model with a little fine-tuning.

:func:`remove_blocks` works on learnscope's GPT (``model.blocks``) and on Hugging Face causal
LMs whose layers are a ``ModuleList`` (GPT-2 ``transformer.h``, Llama ``model.layers``, ...).

>>> import torch
>>> h = [torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.1]]), torch.tensor([[0.0, 1.0]])]
>>> start, dist, _ = most_similar_block(h, 1)
>>> start, round(dist, 4)
(0, 0.0317)
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from learnscope.probes.distance import layer_distances

#: Where the list of layers of a model lives, tried in order (ours, GPT-2, Llama and kin).
LAYER_LISTS = ("blocks", "transformer.h", "model.layers", "gpt_neox.layers", "model.decoder.layers")
#: Config fields holding the number of layers (ours, GPT-2, Llama and most others).
LAYER_COUNTS = ("n_layer", "num_hidden_layers", "num_layers")


def most_similar_block(
    hidden_states: Sequence[torch.Tensor], n: int
) -> tuple[int, float, list[float]]:
    """The block of ``n`` layers whose input and output are closest (Gromov et al. 2024).

    ``hidden_states[l]: (b, d)`` is the stream entering layer ``l`` for ``l = 0 .. L - 1`` and
    ``hidden_states[L]`` the last layer's output (``L + 1`` entries). Returns ``(l*, d*,
    distances)``: ``distances[l] = d(x^l, x^{l+n})`` for ``l = 0 .. L - n``, its argmin ``l*``
    (the first one on a tie) and ``d* = distances[l*]``.
    """
    layers = len(hidden_states) - 1
    if not 1 <= n <= layers:
        raise ValueError(f"n must be in 1..{layers} (the model has {layers} layers; got {n})")
    distances = layer_distances(list(hidden_states), n)
    start = min(range(len(distances)), key=distances.__getitem__)
    return start, distances[start], distances


def layer_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The dotted name and the ``ModuleList`` of ``model``'s layers (see :data:`LAYER_LISTS`)."""
    for name in LAYER_LISTS:
        try:
            found = model.get_submodule(name)
        except AttributeError:
            continue
        if isinstance(found, nn.ModuleList):
            return name, found
    raise ValueError(
        f"{type(model).__name__}: no list of layers found (looked for {', '.join(LAYER_LISTS)})"
    )


@torch.no_grad()
def remove_blocks(model: nn.Module, start: int, n: int) -> nn.Module:
    """A copy of ``model`` without layers ``start .. start + n - 1``.

    The layer count in the model's config is lowered to match (our ``GPTConfig.n_layer``, a
    Hugging Face ``num_hidden_layers`` / ``n_layer``, and its per-layer ``layer_types`` list when
    it has one), and each kept layer's ``layer_idx`` (the KV-cache slot of Hugging Face
    attention modules) is renumbered ``0 .. L - n - 1``.
    """
    name, layers = layer_list(model)
    total = len(layers)
    if n < 1 or start < 0 or start + n > total:
        raise ValueError(f"cannot remove layers {start}..{start + n - 1} of {total}")
    if n >= total:
        raise ValueError(f"cannot remove all {total} layers")
    pruned = copy.deepcopy(model)
    kept = [m for i, m in enumerate(pruned.get_submodule(name)) if not start <= i < start + n]
    parent, _, attr = name.rpartition(".")
    setattr(pruned.get_submodule(parent) if parent else pruned, attr, nn.ModuleList(kept))
    for i, layer in enumerate(kept):
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = i
    ours, cfg = getattr(pruned, "cfg", None), getattr(pruned, "config", None)
    if dataclasses.is_dataclass(ours):  # our models: a new config (the blocks keep theirs)
        pruned.cfg = dataclasses.replace(ours, n_layer=total - n)
    elif cfg is not None:  # a Hugging Face PretrainedConfig, already a copy
        for field in LAYER_COUNTS:
            if isinstance(getattr(cfg, field, None), int):
                setattr(cfg, field, total - n)
        types = getattr(cfg, "layer_types", None)
        if isinstance(types, list) and len(types) == total:
            cfg.layer_types = types[:start] + types[start + n :]
    return pruned


@torch.no_grad()
def residual_stream(
    model: nn.Module, tokens: torch.Tensor, positions: torch.Tensor
) -> list[torch.Tensor]:
    """The stream of our GPT at one position per row: ``L + 1`` tensors ``(b, d_model)``,
    ``blocks.{l}.hook_resid_pre`` for ``l = 0 .. L - 1`` then ``blocks.{L-1}.hook_resid_post``,
    each read at ``positions: (b,)`` of ``tokens: (b, T)`` (eval mode)."""
    from learnscope.models.hooks import capture, eval_mode

    last = len(model.blocks) - 1
    sites = ["blocks.*.hook_resid_pre", f"blocks.{last}.hook_resid_post"]
    with eval_mode(model), capture(model, sites) as acts:
        model(tokens)
    rows = torch.arange(len(tokens), device=tokens.device)
    names = [f"blocks.{i}.hook_resid_pre" for i in range(last + 1)]
    return [acts[name][rows, positions] for name in [*names, f"blocks.{last}.hook_resid_post"]]
