"""The probes that a run can record: names, what they read, their options, their defaults.

A run config's ``probes:`` section lists entries ``{probe, sites, every, **options}`` (see
:mod:`learnscope.probes.plan`, which resolves them against a model). Each entry of
:data:`PROBES` says how one probe is computed from a :class:`Context` (the model, the probe
batch, the activations captured on it) by one of the pure functions of this package.

Metric names: ``{probe}/{site}``; per head ``attention_entropy/{site}/h{i}``; ``ipr`` records
``ipr_mean/{param}`` and ``ipr_frac/{param}`` (in the Fourier basis of ``Z_p``, or over the
discrete logarithm for ``op: mul``/``div``: option ``basis``, ``auto`` by default);
``hessian_top_eigenvalue/loss``; ``hessian_spectrum/eig{i}`` (the top ``k`` Hessian
eigenvalues by Lanczos, ``i = 1..k``) and ``hessian_spectrum/outliers``; ``sas/max`` and
``sas/{site}/h{i}`` (syntactic attention
structure: the best head's and each head's UAS against the task's dependency parents);
``angular_distance/{site}`` and ``layer_distances/{site}/n{n}`` are the distance from
``site`` to the ``n``-th next matched site; ``fourier_power/{param}/k{k}`` is the mean over
neurons (and operand blocks) of the power at frequency ``k``, in the same basis as ``ipr``;
``weight_norms/{param}`` is ``||W||_F`` of every weight matrix;
``incremental_rank/{param}/part{i}`` with ``parts`` (and ``.../count`` with ``threshold``);
``lidar`` and ``mmcr`` group a task's augmented views by sample (its labels otherwise);
``mean_abs/{site}`` the mean absolute coordinate (the coordinate check);
``dormant_units/{site}`` the fraction of tau-dormant units (option ``tau``; 0: dead units;
Sokar et al. 2023, :mod:`learnscope.probes.dormant`);
``softmax_collapse/logits`` the fraction of probe rows whose float softmax sum is exactly 1
(option ``dtype``, float32 by default; Prieto et al. 2025);
``examples/el2n`` (and with ``grand: 1`` ``examples/grand``) the probe batch's mean EL2N and
GraNd, while the runner writes every training example's record
(:mod:`learnscope.probes.examples`, :mod:`learnscope.train.examples`);
``ntk_distance/kernel``, ``/weights`` and ``/gap`` how far the network is from its
linearisation around step 0 (:mod:`learnscope.probes.ntk`; ``gap`` needs the linearised twin
the runner trains beside a run that records this probe).
The trainer's own metrics (:data:`learnscope.probes.names.TRAINER_METRICS` prefixes, and
``{split}/...``) are not probes; :mod:`learnscope.probes.names` reads a metric name without
torch.

Cost: the rank probes take one eigen/singular value decomposition per site (float64, about
``min(b, d)^2 max(b, d)``); ``local_rank`` and ``partial_jacobian_norm`` take one backward pass
per output unit on ``rows`` samples (default 64), ``hessian_top_eigenvalue`` ``iters``
Hessian-vector products on the probe batch, ``ntk_distance`` one Jacobian ``(rows x outputs,
parameters)``: they are opt-in, never defaults.

This package imports nothing from ``train``, ``store``, ``runner``, ``sweep`` or ``config``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from learnscope.models.hooks import capture, double_backward
from learnscope.probes.attention import attention_entropy, sas
from learnscope.probes.collapse import nc1, ncc_accuracy
from learnscope.probes.distance import angular_distance, layer_distances
from learnscope.probes.dormant import dormant_fraction
from learnscope.probes.examples import el2n, grand
from learnscope.probes.hessian_spectrum import top_k
from learnscope.probes.irreps import irrep_power, top_power
from learnscope.probes.jacobian import hessian_top_eigenvalue, local_rank, partial_jacobian_norm
from learnscope.probes.lanczos import count_outliers, hessian_matvec
from learnscope.probes.ntk import (
    empirical_ntk,
    linearisation_gap,
    linearised,
    model_function,
    ntk_change,
)
from learnscope.probes.rank import (
    effective_rank,
    incremental_rank,
    lidar,
    matrix_entropy,
    mmcr,
    rankme,
)
from learnscope.probes.softmax import softmax_collapse
from learnscope.probes.spectral import basis_for, block_power, neuron_ipr, residue_weight
from learnscope.probes.weights import mean_abs, weight_norms

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
    twin: dict[str, torch.Tensor] | None = None  # the linearised twin's parameters, if trained
    memo: dict[str, Any] = field(default_factory=dict)  # values kept across steps (K_0)

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


def _sas(ctx: Context, item: Planned) -> Values:
    """``sas/max``: the best head's UAS over every site (:func:`~learnscope.probes.attention.sas`);
    ``sas/{site}/h{i}``: each head's UAS."""
    value, per_head = sas([ctx.acts[s] for s in item.sites], ctx.batch["parents"])
    out: Values = {"sas/max": value}
    for site, row in zip(item.sites, per_head.tolist()):
        out.update({f"sas/{site}/h{h}": v for h, v in enumerate(row)})
    return out


def _labelled(fn: Callable[..., float]) -> Callable[[Context, Planned], Values]:
    def run(ctx: Context, item: Planned) -> Values:
        y = ctx.batch["y"]
        return {f"{item.probe}/{s}": fn(_per_sample(ctx.acts[s]), y) for s in item.sites}

    return run


def _view_classes(ctx: Context, item: Planned) -> dict[str, torch.Tensor] | None:
    """Per site, activations grouped into surrogate classes, ``(n, q, d)``.

    A task with augmented views (``views: (b, V, ...)`` in the probe batch, the ``views``
    task): the classes are the samples and their members the sample's first ``q = min(V,
    views)`` views, run through the model in one forward pass (the LiDAR paper's classes).
    Otherwise the labels are the classes: every label with at least 2 rows in the probe batch,
    ``q`` rows of each, ``q`` the fewest such rows (at most ``views``). None: fewer than 2
    classes of 2 rows.
    """
    if "views" in ctx.batch:
        views = ctx.batch["views"][:, : int(item.options["views"])]
        b, q = views.shape[:2]
        with torch.no_grad(), capture(ctx.model, item.sites) as acts:
            ctx.model(views.flatten(0, 1))
        return {s: acts[s].reshape(b, q, -1) for s in item.sites}
    y = ctx.batch["y"]
    classes, counts = y.unique(return_counts=True)
    keep = classes[counts >= 2]
    if len(keep) < 2:
        return None
    q = min(int(item.options["views"]), int(counts[counts >= 2].min()))
    index = torch.stack([(y == c).nonzero()[:q, 0] for c in keep])  # (C, q)
    return {s: _per_sample(ctx.acts[s])[index] for s in item.sites}


def _lidar(ctx: Context, item: Planned) -> Values:
    """LiDAR over :func:`_view_classes`."""
    grouped = _view_classes(ctx, item)
    opts = {k: v for k, v in item.options.items() if k != "views"}
    return {f"lidar/{s}": lidar(z, **opts) for s, z in (grouped or {}).items()}


def _mmcr(ctx: Context, item: Planned) -> Values:
    """The nuclear norm of the centroids of :func:`_view_classes`."""
    return {f"mmcr/{s}": mmcr(z) for s, z in (_view_classes(ctx, item) or {}).items()}


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
    with torch.enable_grad(), double_backward(ctx.model):  # no fused attention kernel
        value = hessian_top_eigenvalue(
            lambda: ctx.loss(ctx.forward(ctx.model, batch), batch),
            params,
            iters=item.options["iters"],
            generator=generator,
        )
    return {"hessian_top_eigenvalue/loss": value}


def _hessian_spectrum(ctx: Context, item: Planned) -> Values:
    """The bulk and outliers of the training loss's Hessian (Sagun et al. 2017, "Empirical
    analysis of the Hessian of over-parametrized neural networks"), on the first ``rows`` rows
    of the probe batch: ``hessian_spectrum/eig{i}``, ``i = 1..k``, the ``k`` largest
    eigenvalues ``lambda_1 >= ... >= lambda_k`` of ``H = d^2 L / d theta^2`` (Ritz values of
    ``max(k, iters)`` Lanczos steps with full reorthogonalisation on Hessian-vector products,
    restarted on the complement after an invariant subspace,
    :func:`~learnscope.probes.hessian_spectrum.top_k`; exact once ``iters >= D``, the
    parameter count; ``D`` names when ``D < k``), and ``hessian_spectrum/outliers``,
    how many of them stand apart from the bulk: ``argmax_i log(lambda_i / lambda_{i+1})`` over
    the positive ones (:func:`~learnscope.probes.lanczos.count_outliers`). Linear regression
    ``L = mean((X w - y)^2)``: ``H = 2 X^T X / n``, whose nonzero eigenvalues number the rank
    of ``X``."""
    rows, k = item.options["rows"], item.options["k"]
    batch = {key: v[:rows] for key, v in ctx.batch.items()}
    params = [p for p in ctx.model.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(0)
    with torch.enable_grad(), double_backward(ctx.model):  # no fused attention kernel
        matvec, n = hessian_matvec(lambda: ctx.loss(ctx.forward(ctx.model, batch), batch), params)
        top = top_k(matvec, n, k, item.options["iters"], generator)
    out = {f"hessian_spectrum/eig{i + 1}": float(v) for i, v in enumerate(top.tolist())}
    out["hessian_spectrum/outliers"] = float(count_outliers(top))
    return out


def _incremental_rank(ctx: Context, item: Planned) -> Values:
    """Per site, or with ``parts: k`` per block of ``k`` equal row blocks of the weight (the
    GPT's ``attn.qkv.weight``, ``(3 d, d)``, with ``parts: 3``: ``W_Q``, ``W_K``, ``W_V`` as
    ``part0``, ``part1``, ``part2``). With ``threshold > 0`` the count of singular values above
    ``threshold`` times the largest, named ``.../count``."""
    parts, threshold = int(item.options["parts"]), float(item.options["threshold"])
    suffix = "/count" if threshold > 0 else ""
    out: Values = {}
    for s in item.sites:
        w, w0 = ctx.tensor(s), ctx.initial[s]
        if parts == 1:
            out[f"incremental_rank/{s}{suffix}"] = incremental_rank(w, w0, threshold)
            continue
        for i, (b, b0) in enumerate(zip(w.chunk(parts), w0.chunk(parts))):
            out[f"incremental_rank/{s}/part{i}{suffix}"] = incremental_rank(b, b0, threshold)
    return out


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


def _ntk_distance(ctx: Context, item: Planned) -> Values:
    """On the first ``rows`` probe rows: the relative change of the empirical NTK since step
    0 (``kernel``), the relative distance of the weights from ``theta_0`` (``weights``) and,
    when the linearised twin is trained beside the run, the RMS gap between the network's and
    the twin's outputs (``gap``). See :mod:`learnscope.probes.ntk`."""
    batch = {k: v[: item.options["rows"]] for k, v in ctx.batch.items()}
    f = model_function(ctx.model, ctx.forward, batch)
    theta = {k: p.detach() for k, p in ctx.model.named_parameters() if k in ctx.initial}
    theta_0 = {k: ctx.initial[k] for k in theta}
    if "ntk_0" not in ctx.memo:
        ctx.memo["ntk_0"] = empirical_ntk(f, theta_0)
    out = {
        "ntk_distance/kernel": ntk_change(empirical_ntk(f, theta), ctx.memo["ntk_0"]),
        "ntk_distance/weights": float(
            torch.sqrt(sum((theta[k] - theta_0[k]).pow(2).sum() for k in theta))
            / torch.sqrt(sum(v.pow(2).sum() for v in theta_0.values()))
        ),
    }
    if ctx.twin is not None:
        twin = {k: ctx.twin[k].detach() for k in theta}
        with torch.no_grad():
            out["ntk_distance/gap"] = linearisation_gap(f(theta), linearised(f, theta_0, twin))
    return out


def _softmax_collapse(ctx: Context, item: Planned) -> Values:
    dtype = {"float16": torch.float16, "float32": torch.float32, "float64": torch.float64}
    logits = ctx.forward(ctx.model, ctx.batch).detach()
    return {"softmax_collapse/logits": softmax_collapse(logits, dtype[item.options["dtype"]])}


def _irrep_power(ctx: Context, item: Planned) -> Values:
    """``irrep_power/{site}/{irrep}``: the fraction of the weight's squared norm in each
    irreducible character's isotypic component of the group (option ``group``, e.g. ``S4``;
    :func:`~learnscope.probes.irreps.irrep_power`), and ``.../top1``, ``.../top2``: the
    largest one and the largest two together."""
    out: Values = {}
    for site in item.sites:
        powers = irrep_power(ctx.tensor(site), item.options["group"])
        out.update({f"irrep_power/{site}/{k}": v for k, v in powers.items()})
        out.update({f"irrep_power/{site}/top{k}": top_power(powers, k) for k in (1, 2)})
    return out


def _examples(ctx: Context, item: Planned) -> Values:
    """The probe batch's mean EL2N and, with ``grand: 1``, mean GraNd
    (:mod:`learnscope.probes.examples`); the per-example arrays over the whole training
    split are written by the runner's ``ExampleRecorder`` at the same steps."""
    logits = ctx.forward(ctx.model, ctx.batch).detach()
    out = {"examples/el2n": float(el2n(logits, ctx.batch["y"]).mean())}
    if item.options["grand"]:
        out["examples/grand"] = float(grand(ctx.model, ctx.forward, ctx.loss, ctx.batch).mean())
    return out


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
    batch_keys: tuple[str, ...] = ()  # tensors the probe batch must hold (e.g. ``parents``)


PROBES: dict[str, ProbeDef] = {
    "effective_rank": ProbeDef(_matrix_probe(effective_rank), "both"),
    "rankme": ProbeDef(_matrix_probe(rankme), "both"),
    "matrix_entropy": ProbeDef(_matrix_probe(matrix_entropy), "both", {"alpha": 1.0}),
    "lidar": ProbeDef(_lidar, "hooks", {"views": 8, "delta": 1e-4, "eps": 1e-8}, True),
    "mmcr": ProbeDef(_mmcr, "hooks", {"views": 8}, True),
    "attention_entropy": ProbeDef(_attention_entropy, "hooks"),
    "sas": ProbeDef(_sas, "hooks", batch_keys=("parents",)),
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
    "incremental_rank": ProbeDef(_incremental_rank, "params", {"parts": 1, "threshold": 0.0}),
    "ipr": ProbeDef(_ipr, "params", {"p": None, "threshold": 0.5, "basis": "auto"}),
    "fourier_power": ProbeDef(_fourier_power, "params", {"p": None, "basis": "auto"}),
    "nc1": ProbeDef(_labelled(nc1), "hooks", needs_labels=True),
    "ncc_accuracy": ProbeDef(_labelled(ncc_accuracy), "hooks", needs_labels=True),
    "angular_distance": ProbeDef(_angular_distance, "hooks", {"n": 1}),
    "layer_distances": ProbeDef(_layer_distances, "hooks", {"n": 1}),
    "weight_norms": ProbeDef(_weight_norms, "none"),
    "hessian_top_eigenvalue": ProbeDef(_hessian, "none", {"iters": 20, "rows": 256}),
    "hessian_spectrum": ProbeDef(_hessian_spectrum, "none", {"k": 10, "iters": 40, "rows": 256}),
    "ntk_distance": ProbeDef(_ntk_distance, "none", {"rows": 16}),
    "mean_abs": ProbeDef(_matrix_probe(mean_abs), "hooks"),
    "softmax_collapse": ProbeDef(_softmax_collapse, "none", {"dtype": "float32"}),
    "irrep_power": ProbeDef(_irrep_power, "params", {"group": None}),
    "examples": ProbeDef(_examples, "none", {"grand": 0}, needs_labels=True),
    "dormant_units": ProbeDef(_matrix_probe(dormant_fraction), "hooks", {"tau": 0.0}),
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
