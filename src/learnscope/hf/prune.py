"""Layer pruning of a Hugging Face causal LM (``learnscope prune-layers --hf MODEL``).

The block of ``n`` layers whose input and output are closest at the last token of each text
window (Gromov et al. 2024; :func:`~learnscope.interventions.layers.most_similar_block`) is
removed (:func:`~learnscope.interventions.layers.remove_blocks`), and the perplexity of the
text is measured before and after:

    ppl = exp( (1/N) sum_{windows, positions t >= 1} -log p(x_t | x_<t) ),

over every predicted real token (``N`` of them) of every window. No healing here: the paper
heals with QLoRA, which needs more than a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from learnscope.hf.hooks import run_with_sites
from learnscope.hf.probe import last_positions, stream
from learnscope.interventions.layers import layer_list, most_similar_block, remove_blocks


@torch.no_grad()
def perplexity(model: nn.Module, batch: dict[str, torch.Tensor], rows: int = 8) -> float:
    """``exp`` of the mean next-token cross-entropy over the real tokens of ``batch``
    (``input_ids``, ``attention_mask``: (b, t)), ``rows`` windows per forward pass."""
    total, count = 0.0, 0
    ids, mask = batch["input_ids"], batch["attention_mask"]
    for start in range(0, len(ids), rows):
        x, m = ids[start : start + rows], mask[start : start + rows]
        logits = model(input_ids=x, attention_mask=m, use_cache=False).logits[:, :-1].float()
        target, keep = x[:, 1:], m[:, 1:].bool()
        total += F.cross_entropy(logits[keep], target[keep], reduction="sum").item()
        count += int(keep.sum())
    return math.exp(total / max(count, 1))


@dataclass
class HFPruning:
    n: int
    start: int
    distance: float
    distances: list[float]
    layers: int
    ppl_before: float
    ppl_after: float


@torch.no_grad()
def prune_hf(
    model: nn.Module, batch: dict[str, torch.Tensor], n: int
) -> tuple[nn.Module, HFPruning]:
    """The pruned copy of ``model`` and what was measured (see the module docstring)."""
    model.eval()
    layers = len(layer_list(model)[1])
    if not 1 <= n < layers:
        raise ValueError(f"--n: must be in 1..{layers - 1} (the model has {layers} layers)")
    acts = run_with_sites(model, batch["input_ids"], batch["attention_mask"])
    rows, last = torch.arange(len(batch["input_ids"])), last_positions(batch["attention_mask"])
    xs = [x[rows, last] for x in stream(acts, layers)]
    start, dist, dists = most_similar_block(xs, n)
    pruned = remove_blocks(model, start, n)
    before, after = perplexity(model, batch), perplexity(pruned, batch)
    return pruned, HFPruning(n, start, dist, dists, layers, before, after)
