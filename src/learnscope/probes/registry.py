"""The probes that a run can record: names, what they read, their options, their defaults.

A run config's ``probes:`` section lists entries ``{probe, sites, every, **options}`` (see
:mod:`learnscope.probes.plan`, which resolves them against a model). Each entry of
:data:`PROBES` says how one probe is computed from a :class:`Context` (the model, the probe
batch, the activations captured on it) by one of the pure functions of this package.

Metric names: ``{probe}/{site}``; per head ``attention_entropy/{site}/h{i}``; ``ipr`` records
``ipr_mean/{param}`` and ``ipr_frac/{param}`` (in the Fourier basis of ``Z_p``, or over the
discrete logarithm for ``op: mul``/``div``: option ``basis``, ``auto`` by default);
``hessian_top_eigenvalue/loss``; ``angular_distance/{site}`` and
``layer_distances/{site}/n{n}`` are the distance from ``site`` to the ``n``-th next matched
site; ``fourier_power/{param}/k{k}`` is the mean over neurons (and operand blocks) of the
power at frequency ``k``, in the same basis as ``ipr``; ``weight_norms/{param}`` is
``||W||_F`` of every weight matrix.
The trainer's own metrics (:data:`TRAINER_METRICS` prefixes, and ``{split}/...``) are not
probes.

Cost: the rank probes take one eigen/singular value decomposition per site (float64, about
``min(b, d)^2 max(b, d)``); ``local_rank`` and ``partial_jacobian_norm`` take one backward pass
per output unit on ``rows`` samples (default 64), ``hessian_top_eigenvalue`` ``iters``
Hessian-vector products on the probe batch: they are opt-in, never defaults.

This package imports nothing from ``train``, ``store``, ``runner``, ``sweep`` or ``config``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from learnscope.probes.attention import attention_entropy
from learnscope.probes.collapse import nc1, ncc_accuracy
from learnscope.probes.distance import angular_distance, layer_distances
from learnscope.probes.jacobian import hessian_top_eigenvalue, local_rank, partial_jacobian_norm
from learnscope.probes.rank import effective_rank, incremental_rank, lidar, matrix_entropy, rankme
from learnscope.probes.spectral import basis_for, block_power, neuron_ipr, residue_weight
from learnscope.probes.weights import weight_norms

Values = dict[str, float]


@dataclass
class Planned:
    """One probe resolved against a model: concrete site names, cadence, options."""

    probe: str
    sites: list[str]
    every: int
    options: dict[str, Any]


@dataclass
class Context:
    """What a probe may read at one step."""

    model: nn.Module
    batch: dict[str, torch.Tensor]
    acts: dict[str, torch.Tensor]
    forward: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]
    loss: Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]
    initial: dict[str, torch.Tensor]
    modulus: int | None
    op: str | None = None  # the task's operation (modular tasks): the IPR's Fourier basis
    residue_rows: list[int] | None = None  # token ids of the residues (sequence tasks)
    n_tokens: int | None = None  # the sequence task's vocabulary size

    def residues(self, site: str) -> torch.Tensor:
        """A weight read by residues (:func:`~learnscope.probes.spectral.residue_weight`)."""
        return residue_weight(self.tensor(site), self.residue_rows, self.n_tokens)

    def tensor(self, site: str) -> torch.Tensor:
        if site in self.acts:
            return self.acts[site]
        return self.model.get_parameter(site).detach()


# -- the probes, as the runner computes them ---------------------------------------------


def _rows(t: torch.Tensor) -> torch.Tensor:
    """Activations ``(b, ..., d)`` as a matrix ``(b * ..., d)``; a bias ``(d,)`` as ``(1, d)``."""
    return t.reshape(-1, t.shape[-1]) if t.dim() >= 2 else t[None]


def _per_sample(t: torch.Tensor) -> torch.Tensor:
    """One row per sample: the last position of a sequence ``(b, T, d)``, else flattened."""
    return t[:, -1] if t.dim() == 3 else t.reshape(len(t), -1)


def _matrix_probe(fn: Callable[..., float]) -> Callable[[Context, Planned], Values]:
    def run(ctx: Context, item: Planned) -> Values:
        return {f"{item.probe}/{s}": fn(_rows(ctx.tensor(s)), **item.options) for s in item.sites}

    return run


def _attention_entropy(ctx: Context, item: Planned) -> Values:
    out: Values = {}
    for site in item.sites:
        for h, value in enumerate(attention_entropy(ctx.acts[site]).tolist()):
            out[f"attention_entropy/{site}/h{h}"] = value
    return out


def _labelled(fn: Callable[..., float]) -> Callable[[Context, Planned], Values]:
    def run(ctx: Context, item: Planned) -> Values:
        y = ctx.batch["y"]
        return {f"{item.probe}/{s}": fn(_per_sample(ctx.acts[s]), y) for s in item.sites}

    return run


def _lidar(ctx: Context, item: Planned) -> Values:
    """LiDAR with the labels as classes (the paper's classes are a sample's augmented views):
    every label with at least 2 rows in the probe batch, ``q`` rows of each, ``q`` the fewest
    such rows (at most ``views``)."""
    y = ctx.batch["y"]
    classes, counts = y.unique(return_counts=True)
    keep = classes[counts >= 2]
    q = min(int(item.options["views"]), int(counts[counts >= 2].min())) if len(keep) else 0
    if len(keep) < 2:
        return {}
    index = torch.stack([(y == c).nonzero()[:q, 0] for c in keep])  # (C, q)
    opts = {k: v for k, v in item.options.items() if k != "views"}
    return {f"lidar/{s}": lidar(_per_sample(ctx.acts[s])[index], **opts) for s in item.sites}


def _angular_distance(ctx: Context, item: Planned) -> Values:
    n, s = item.options["n"], item.sites
    return {
        f"angular_distance/{s[i]}": angular_distance(
            _per_sample(ctx.acts[s[i]]), _per_sample(ctx.acts[s[i + n]])
        )
        for i in range(len(s) - n)
    }


def site_function(
    ctx: Context, source: str, target: str, rows: int
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """``f: (b, n0) -> (b, n)``: the model from site ``source`` to site ``target`` on the first
    ``rows`` samples of the probe batch (the source's output is replaced by ``h`` through a
    forward hook), and the source activations ``h: (b, n0)`` it is evaluated at."""
    batch = {k: v[:rows] for k, v in ctx.batch.items()}
    h0 = ctx.acts[source][:rows].reshape(len(ctx.acts[source][:rows]), -1)
    src, tgt = ctx.model.get_submodule(source), ctx.model.get_submodule(target)

    def f(h: torch.Tensor) -> torch.Tensor:
        out: dict[str, torch.Tensor] = {}

        def put(_m, _i, o):
            return h.reshape(o.shape)

        def get(_m, _i, o):
            out["z"] = o

        handles = [src.register_forward_hook(put), tgt.register_forward_hook(get)]
        try:
            ctx.forward(ctx.model, batch)
        finally:
            for handle in handles:
                handle.remove()
        return out["z"].reshape(len(h), -1)

    return f, h0


def _jacobian_probe(
    fn: Callable[..., float], source_key: str
) -> Callable[[Context, Planned], Values]:
    def run(ctx: Context, item: Planned) -> Values:
        opts = dict(item.options)
        source, rows = opts.pop(source_key), opts.pop("rows")
        if "n_proj" in opts:  # the estimate draws from its own generator, not the run's
            opts["generator"] = torch.Generator().manual_seed(0)
        out: Values = {}
        with torch.enable_grad():
            for site in item.sites:
                f, h = site_function(ctx, source, site, rows)
                out[f"{item.probe}/{site}"] = fn(f, h, **opts)
        return out

    return run


def _hessian(ctx: Context, item: Planned) -> Values:
    rows = item.options["rows"]
    batch = {k: v[:rows] for k, v in ctx.batch.items()}
    params = [p for p in ctx.model.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(0)
    with torch.enable_grad():
        value = hessian_top_eigenvalue(
            lambda: ctx.loss(ctx.forward(ctx.model, batch), batch),
            params,
            iters=item.options["iters"],
            generator=generator,
        )
    return {"hessian_top_eigenvalue/loss": value}


def _incremental_rank(ctx: Context, item: Planned) -> Values:
    return {
        f"incremental_rank/{s}": incremental_rank(ctx.tensor(s), ctx.initial[s]) for s in item.sites
    }


def spectral_basis(ctx: Context, item: Planned) -> str:
    """The Fourier basis of ``ipr`` and ``fourier_power``: option ``basis``, or for
    ``auto`` the one the task's operation calls for (:func:`basis_for`)."""
    basis = item.options.get("basis", "auto")
    return basis_for(ctx.op) if basis == "auto" else basis


def _ipr(ctx: Context, item: Planned) -> Values:
    """IPR per neuron (:func:`~learnscope.probes.spectral.neuron_ipr`: the mean over the
    weight's residue blocks, in :func:`spectral_basis`), then its mean and the fraction above
    ``threshold``."""
    p, basis = item.options["p"] or ctx.modulus, spectral_basis(ctx, item)
    out: Values = {}
    for site in item.sites:
        per_neuron = neuron_ipr(ctx.residues(site), p, basis)
        out[f"ipr_mean/{site}"] = float(per_neuron.mean())
        out[f"ipr_frac/{site}"] = float((per_neuron > item.options["threshold"]).double().mean())
    return out


def _fourier_power(ctx: Context, item: Planned) -> Values:
    """The mean over neurons of :func:`~learnscope.probes.spectral.block_power`: one series
    per frequency ``k``."""
    p, basis = item.options["p"] or ctx.modulus, spectral_basis(ctx, item)
    out: Values = {}
    for site in item.sites:
        power = block_power(ctx.residues(site).double(), p, basis).mean(1)
        out.update({f"fourier_power/{site}/k{k}": float(v) for k, v in enumerate(power)})
    return out


def _layer_distances(ctx: Context, item: Planned) -> Values:
    n, s = item.options["n"], item.sites
    values = layer_distances([_per_sample(ctx.acts[site]) for site in s], n)
    return {f"layer_distances/{s[i]}/n{n}": v for i, v in enumerate(values)}


def _weight_norms(ctx: Context, item: Planned) -> Values:
    return {f"weight_norms/{name}": v for name, v in weight_norms(ctx.model).items()}


@dataclass(frozen=True)
class ProbeDef:
    """How the runner computes a probe: what its sites are and which options it takes."""

    compute: Callable[[Context, Planned], Values]
    targets: str  # "hooks", "params", "both" or "none"
    options: dict[str, Any] = field(default_factory=dict)
    needs_labels: bool = False
    sources: tuple[str, ...] = ()  # options naming a hook site that must precede the sites


PROBES: dict[str, ProbeDef] = {
    "effective_rank": ProbeDef(_matrix_probe(effective_rank), "both"),
    "rankme": ProbeDef(_matrix_probe(rankme), "both"),
    "matrix_entropy": ProbeDef(_matrix_probe(matrix_entropy), "both", {"alpha": 1.0}),
    "lidar": ProbeDef(_lidar, "hooks", {"views": 8, "delta": 1e-4, "eps": 1e-8}, True),
    "attention_entropy": ProbeDef(_attention_entropy, "hooks"),
    "local_rank": ProbeDef(
        _jacobian_probe(local_rank, "input"),
        "hooks",
        {"input": None, "rows": 64, "threshold": 1e-3},
        sources=("input",),
    ),
    "partial_jacobian_norm": ProbeDef(
        _jacobian_probe(partial_jacobian_norm, "source"),
        "hooks",
        {"source": None, "rows": 64, "exact_max": 1024, "n_proj": 16},
        sources=("source",),
    ),
    "incremental_rank": ProbeDef(_incremental_rank, "params"),
    "ipr": ProbeDef(_ipr, "params", {"p": None, "threshold": 0.5, "basis": "auto"}),
    "fourier_power": ProbeDef(_fourier_power, "params", {"p": None, "basis": "auto"}),
    "nc1": ProbeDef(_labelled(nc1), "hooks", needs_labels=True),
    "ncc_accuracy": ProbeDef(_labelled(ncc_accuracy), "hooks", needs_labels=True),
    "angular_distance": ProbeDef(_angular_distance, "hooks", {"n": 1}),
    "layer_distances": ProbeDef(_layer_distances, "hooks", {"n": 1}),
    "weight_norms": ProbeDef(_weight_norms, "none"),
    "hessian_top_eigenvalue": ProbeDef(_hessian, "none", {"iters": 20, "rows": 256}),
}

#: Built-in probes per model kind; an entry with ``when: modular`` applies only to tasks with
#: a modulus ``p``. Patterns that match nothing in a given model are skipped (a depth-1 MLP
#: has no hidden layer). The trainer logs ``weight_norm/{param}`` at every eval already.
DEFAULTS: dict[str, list[dict[str, Any]]] = {
    "mlp": [
        {"probe": "effective_rank", "sites": ["layers.*.hook_post"]},
        {"probe": "ipr", "sites": ["layers.0.linear.weight", "embed.weight"], "when": "modular"},
    ],
    "gpt": [
        {"probe": "attention_entropy", "sites": ["blocks.*.attn.hook_pattern"]},
        {"probe": "effective_rank", "sites": ["blocks.*.hook_resid_post"]},
    ],
    "ut": [{"probe": "effective_rank", "sites": ["ln_final.hook_normalized"]}],
}


#: First components of every metric name the probes write.
PROBE_METRICS: frozenset[str] = frozenset(PROBES) | {"ipr_mean", "ipr_frac"}

#: First components of the metrics the trainer logs beside the ``{split}/...`` ones.
TRAINER_METRICS: frozenset[str] = frozenset({"lr", "weight_norm", "reg", "train_step"})


def is_probe_metric(name: str) -> bool:
    """Whether a metric name is a probe series (``effective_rank/layers.0.hook_post``).

    >>> is_probe_metric("effective_rank/layers.0.hook_post"), is_probe_metric("test/acc")
    (True, False)
    """
    return name.split("/")[0] in PROBE_METRICS
