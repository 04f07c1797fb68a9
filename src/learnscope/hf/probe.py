"""Per-layer probes of a Hugging Face causal LM (``learnscope probe-hf``).

The probes are learnscope's own pure functions, applied to the sites of
:mod:`learnscope.hf.hooks` over the real (not padding) tokens of a batch:

- ``effective_rank/blocks.{i}.hook_resid_post`` and ``matrix_entropy/...``
  (:func:`~learnscope.probes.rank.effective_rank`, :func:`~learnscope.probes.rank.matrix_entropy`)
  of the layer's output, rows = every real token of the batch;
- ``attention_entropy/blocks.{i}.attn.hook_pattern/h{h}``
  (:func:`~learnscope.probes.attention.attention_entropy`), the mean over every real query;
- ``angular_distance/blocks.{l}.hook_resid_pre/n{n}``: ``d(x^l, x^{l+n})``
  (:func:`~learnscope.probes.distance.angular_distance`) at each sequence's last real token,
  ``x^l`` the stream entering layer ``l`` and ``x^L`` the last layer's output (Gromov et al.
  2024).

The names are those of learnscope's own probe series, so tables and report panels read both.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from learnscope.errors import UserError
from learnscope.hf.hooks import run_with_sites, tokenize
from learnscope.probes.attention import attention_entropy
from learnscope.probes.distance import angular_distance
from learnscope.probes.rank import effective_rank, matrix_entropy

#: The probes ``probe-hf`` computes (all by default).
HF_PROBES = ("effective_rank", "matrix_entropy", "attention_entropy", "angular_distance")


def as_batch(tokenizer: Any, batch: Any) -> dict[str, torch.Tensor]:
    """Texts (a list of strings) tokenized, or a dict with ``input_ids`` (and
    ``attention_mask``) as given."""
    if isinstance(batch, dict):
        ids = batch["input_ids"]
        return {
            "input_ids": ids,
            "attention_mask": batch.get("attention_mask", torch.ones_like(ids)),
        }
    return tokenize(tokenizer, list(batch))


def last_positions(mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last real token, ``mask: (b, t)`` right-padded -> ``(b,)``."""
    return mask.long().sum(1) - 1


def stream(acts: dict[str, torch.Tensor], layers: int) -> list[torch.Tensor]:
    """``x^0 .. x^L`` of :func:`~learnscope.interventions.layers.most_similar_block`:
    ``blocks.{l}.hook_resid_pre`` then the last layer's ``hook_resid_post``, ``(b, t, d)``."""
    return [acts[f"blocks.{i}.hook_resid_pre"] for i in range(layers)] + [
        acts[f"blocks.{layers - 1}.hook_resid_post"]
    ]


@torch.no_grad()
def probe(
    model: nn.Module,
    tokenizer: Any,
    batch: Any,
    probes: list[str] | tuple[str, ...] | None = None,
    n: int = 1,
) -> dict[str, float]:
    """Probe values of ``model`` on ``batch`` (texts, or ``input_ids``/``attention_mask``),
    named as in the module docstring."""
    probes = list(probes or HF_PROBES)
    unknown = [p for p in probes if p not in HF_PROBES]
    if unknown:
        raise UserError(f"--probe: unknown probe {unknown[0]!r}; allowed: {', '.join(HF_PROBES)}")
    enc = as_batch(tokenizer, batch)
    mask = enc["attention_mask"].bool()
    acts = run_with_sites(model.eval(), enc["input_ids"], enc["attention_mask"])
    layers = sum(1 for k in acts if k.endswith(".hook_resid_pre"))
    if "angular_distance" in probes and not 1 <= n <= layers:
        raise UserError(f"--n: must be in 1..{layers} (the model has {layers} layers; got {n})")
    out: dict[str, float] = {}
    for i in range(layers):
        site = f"blocks.{i}.hook_resid_post"
        rows = acts[site][mask]  # (real tokens, d)
        if "effective_rank" in probes:
            out[f"effective_rank/{site}"] = effective_rank(rows)
        if "matrix_entropy" in probes:
            out[f"matrix_entropy/{site}"] = matrix_entropy(rows)
    if "attention_entropy" in probes:
        lengths = mask.sum(1).tolist()
        for i in range(layers):
            site = f"blocks.{i}.attn.hook_pattern"
            if site not in acts:
                continue
            pattern = acts[site]  # real queries and keys of row b: the first lengths[b]
            per_row = [
                attention_entropy(pattern[b, :, :k, :k]).double() * k for b, k in enumerate(lengths)
            ]
            for h, value in enumerate((sum(per_row) / sum(lengths)).tolist()):
                out[f"attention_entropy/{site}/h{h}"] = value
    if "angular_distance" in probes:
        rows = torch.arange(len(mask))
        last = last_positions(mask)
        xs = [x[rows, last] for x in stream(acts, layers)]
        for l in range(layers + 1 - n):
            out[f"angular_distance/blocks.{l}.hook_resid_pre/n{n}"] = angular_distance(
                xs[l], xs[l + n]
            )
    return out
