"""Resolving a run's ``probes:`` entries against a model, and computing them on the probe batch.

A run config's ``probes:`` section lists entries ``{probe, sites, every, **options}``; the
probes run on one fixed probe batch, drawn once from a named split with a generator seeded
by the run seed::

    probes:
      - defaults                                    # the model kind's built-in probes
      - {probe: matrix_entropy, sites: ["layers.*.hook_post"], every: 20}
      - {probe: local_rank, sites: ["layers.0.hook_pre"], every: 100, rows: 32}
    probe_batch: {split: train, size: 256}

Leaving ``probes`` out records the :data:`~learnscope.probes.registry.DEFAULTS` of the model
kind; ``probes: []`` records nothing. ``every`` defaults to ``train.eval_every``. Probes are
recorded at step 0, at every multiple of ``every`` and at the last step (by
``learnscope.train.callbacks.ProbeRecorder``). ``sites`` are glob patterns over the model's
activation sites (hook names such as ``layers.*.hook_post``, ``blocks.*.attn.hook_pattern``)
or, for probes of weights, over parameter names (``layers.0.linear.weight``). All the
activation probes due at a step share one forward pass (``learnscope.models.hooks.capture``)
in eval mode.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from learnscope.errors import UserError, shown
from learnscope.models.hooks import capture, eval_mode, hook_names
from learnscope.probes.irreps import check_irrep_options
from learnscope.probes.registry import DEFAULTS, PROBES, Context, Planned, Values
from learnscope.probes.spectral import residue_blocks, residue_weight

Forward = Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]


@dataclass
class ProbePlan:
    """The resolved probes of a run, its fixed probe batch and what they need."""

    items: list[Planned]
    batch: dict[str, torch.Tensor]
    initial: dict[str, torch.Tensor]
    modulus: int | None
    hooks: list[str]  # the model's activation sites
    op: str | None = None  # the task's operation (modular tasks): the IPR's basis
    residue_rows: list[int] | None = None  # token ids of the residues (sequence tasks)
    n_tokens: int | None = None  # the sequence task's vocabulary size
    twin: dict[str, torch.Tensor] | None = None  # the linearised twin's weights (a callback's)
    memo: dict[str, Any] = field(default_factory=dict)  # probe values kept across steps

    @property
    def hook_sites(self) -> list[str]:
        """Activation sites some probe reads, in forward order."""
        return [s for s in self.hooks if _needed(s, self.items)]

    def activations(self, model: nn.Module, forward, sites: list[str]) -> dict[str, torch.Tensor]:
        """The activations at ``sites`` on the probe batch: one forward pass in eval mode, no
        gradient, no randomness drawn (so probing never changes the training run)."""
        if not sites:
            return {}
        with eval_mode(model), torch.no_grad(), capture(model, sites) as acts:
            forward(model, self.batch)
        return acts

    def compute(
        self, model: nn.Module, forward, loss, items: list[Planned] | None = None
    ) -> Values:
        """Every probe of ``items`` (default all) on the probe batch, one forward pass."""
        items = self.items if items is None else items
        acts = self.activations(model, forward, [s for s in self.hooks if _needed(s, items)])
        ctx = Context(
            model,
            self.batch,
            acts,
            forward,
            loss,
            self.initial,
            self.modulus,
            self.op,
            self.residue_rows,
            self.n_tokens,
            self.twin,
            self.memo,
        )
        values: Values = {}
        with eval_mode(model):
            for item in items:
                try:
                    values.update(PROBES[item.probe].compute(ctx, item))
                except torch.linalg.LinAlgError:  # non-finite weights (a diverged run): skip
                    continue
        return values


def _needed(site: str, items: list[Planned]) -> bool:
    return any(
        site in item.sites or site in [item.options[k] for k in PROBES[item.probe].sources]
        for item in items
    )


def _match(patterns: list[str], names: list[str]) -> tuple[list[str], list[str]]:
    """Names matching any pattern (in ``names`` order) and the patterns matching none."""
    hits = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    misses = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    return hits, misses


def expand_specs(
    specs: list[dict[str, Any]] | None, kind: str
) -> list[tuple[dict[str, Any], bool, int]]:
    """Config entries ``{probe, sites, every, **options}`` as ``(spec dict, is_default, index
    in the config)``, ``defaults`` expanded to the model kind's :data:`DEFAULTS`; ``None``
    means ``[defaults]``."""
    specs_list = [{"probe": "defaults"}] if specs is None else specs
    out: list[tuple[dict[str, Any], bool, int]] = []
    for i, spec in enumerate(specs_list):
        if spec["probe"] == "defaults":
            out += [(dict(d), True, i) for d in DEFAULTS.get(kind, [])]
        else:
            out.append((spec, False, i))
    return out


def resolve(
    entries: list[tuple[dict[str, Any], bool, int]],
    model: nn.Module,
    eval_every: int,
    has_labels: bool,
    modulus: int | None,
    residues: tuple[list[int], int] | None = None,
    batch_keys: frozenset[str] | None = None,
) -> list[Planned]:
    """Check each entry against the model and turn it into a :class:`Planned` (``residues``:
    the token ids of the residues and the vocabulary size of a sequence task, whose
    embeddings the spectral probes read by those rows).

    A user's entry that names an unknown probe, option or site is a :class:`UserError` that
    lists what exists; a default entry that does not apply is dropped.
    """
    hooks = hook_names(model)
    params = [n for n, p in model.named_parameters() if p.dim() >= 2]
    plan: list[Planned] = []
    for spec, is_default, i in entries:
        spec = dict(spec)
        name, where = spec.pop("probe"), f"probes.{i}"
        if name not in PROBES:
            raise UserError(f"{where}.probe: unknown probe {name!r}; allowed: {', '.join(PROBES)}")
        pdef = PROBES[name]
        patterns, every = list(spec.pop("sites", None) or []), spec.pop("every", None)
        when = spec.pop("when", None)
        if is_default and when == "modular" and modulus is None:
            continue
        options = {**pdef.options, **_checked_options(spec, name, where)}
        sites = _resolve_sites(name, patterns, hooks, params, is_default, where)
        if sites is None or not _applies(name, has_labels, batch_keys, is_default, where):
            continue
        for key in pdef.sources:
            _resolve_source(options, key, sites, hooks, where)
        if not _check_probe_options(
            name, options, sites, model, modulus, residues, where, is_default
        ):
            continue
        plan.append(Planned(name, sites, every or eval_every, options))
    return plan


def _checked_options(spec: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    """The entry's options ``spec`` (less ``probe``, ``sites``, ``every``, ``when``), each
    known to probe ``name`` and of its default's type (an int where a float is expected, a
    float written as a string as YAML 1.1 reads ``1e-3``), else a :class:`UserError`."""
    pdef = PROBES[name]
    unknown = sorted(set(spec) - set(pdef.options))
    if unknown:
        allowed = ", ".join(pdef.options) or "none"
        raise UserError(f"{where}.{unknown[0]}: unknown option of {name}; allowed: {allowed}")
    out = dict(spec)
    for key, value in spec.items():
        default = pdef.options[key]
        kind = float if isinstance(default, float) else type(default)
        if kind is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                out[key] = value = float(value)
            except ValueError:
                pass
        ok = default is None or isinstance(value, kind) and not isinstance(value, bool)
        if not ok and not (
            kind is float and isinstance(value, int) and not isinstance(value, bool)
        ):
            raise UserError(f"{where}.{key}: expected {kind.__name__} (got {shown(value)})")
        if key in OPTION_RANGES and value is not None:
            lo, hi = OPTION_RANGES[key]
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or not lo <= value <= hi:
                raise UserError(f"{where}.{key}: expected {lo}..{hi} (got {shown(value)})")
    return out


#: The numbers a probe option may take (counts of rows, views, iterations; tolerances).
OPTION_RANGES: dict[str, tuple[float, float]] = {
    "views": (2, 1024),
    "rows": (1, 100_000),
    "n": (1, 1024),
    "n_proj": (1, 4096),
    "exact_max": (1, 1_000_000),
    "iters": (1, 10_000),
    "k": (1, 10_000),
    "parts": (1, 1_000_000),
    "p": (2, 1_000_000),
    "alpha": (1e-6, 1e6),
    "delta": (0, 1),
    "eps": (0, 1),
    "threshold": (0, 1e6),
    "grand": (0, 1),  # the examples probe: 1 also records GraNd
}


def _resolve_sites(
    name: str,
    patterns: list[str],
    hooks: list[str],
    params: list[str],
    is_default: bool,
    where: str,
) -> list[str] | None:
    """The sites (activation sites, weight matrices, or both: the probe's ``targets``) that
    glob ``patterns`` match; None drops the entry (a default entry that matches nothing)."""
    targets = PROBES[name].targets
    names = {"hooks": hooks, "params": params, "both": hooks + params, "none": []}[targets]
    if targets == "none":
        if patterns:
            raise UserError(f"{where}.sites: {name} takes no sites (it uses every parameter)")
        return []
    if not patterns:
        raise UserError(f"{where}.sites: give glob patterns for {name}; sites: {names}")
    sites, misses = _match(patterns, names)
    if misses and not is_default:
        what = {"hooks": "activation site", "params": "parameter"}.get(
            targets, "activation site or parameter"
        )
        raise UserError(f"{where}.sites: no {what} matches {misses[0]!r}; allowed: {names}")
    return sites or None


def _applies(
    name: str, has_labels: bool, batch_keys: frozenset[str] | None, is_default: bool, where: str
) -> bool:
    """Whether the task's probe batch holds what probe ``name`` reads (its ``batch_keys``,
    class labels); a user's entry that does not apply is a :class:`UserError`."""
    pdef = PROBES[name]
    missing = [k for k in pdef.batch_keys if batch_keys is not None and k not in batch_keys]
    if missing:
        if is_default:
            return False
        raise UserError(f"{where}.probe: {name} needs a task whose rows hold {missing[0]}")
    if pdef.needs_labels and not has_labels:
        if is_default:
            return False
        raise UserError(f"{where}.probe: {name} needs class labels (a classification task)")
    return True


def _resolve_source(
    options: dict[str, Any], key: str, sites: list[str], hooks: list[str], where: str
) -> None:
    """Option ``key`` names the activation site a Jacobian probe differentiates from (the
    first site when unset); every one of ``sites`` must come after it."""
    options[key] = options[key] or hooks[0]
    if options[key] not in hooks:
        raise UserError(f"{where}.{key}: unknown activation site; allowed: {hooks}")
    first = hooks.index(options[key])
    if any(hooks.index(s) <= first for s in sites):
        raise UserError(f"{where}.sites: every site must come after {key} {options[key]}")


def _check_probe_options(
    name: str,
    options: dict[str, Any],
    sites: list[str],
    model: nn.Module,
    modulus: int | None,
    residues: tuple[list[int], int] | None,
    where: str,
    is_default: bool,
) -> bool:
    """The checks of one probe's own options against the model: a :class:`UserError` naming
    the option, or False to drop a default entry (a spectral probe's sites that hold no
    blocks of residues)."""
    if name == "softmax_collapse" and options["dtype"] not in ("float16", "float32", "float64"):
        raise UserError(
            f"{where}.dtype: expected float16, float32 or float64 (got {options['dtype']!r})"
        )
    if name in ("ipr", "fourier_power"):
        if options["basis"] not in ("auto", "add", "mul"):
            raise UserError(f"{where}.basis: expected auto, add or mul (got {options['basis']!r})")
        if not (options["p"] or modulus):
            raise UserError(f"{where}.p: the task has no modulus; set p")
        try:
            for s in sites:
                basis = "add" if options["basis"] == "auto" else options["basis"]
                w = residue_weight(model.get_parameter(s), *(residues or (None, None)))
                residue_blocks(w, options["p"] or modulus, basis)
        except ValueError as err:
            if is_default:
                return False
            raise UserError(f"{where}.sites: {name}: {err}") from None
    if name == "irrep_power":
        check_irrep_options(options, [model.get_parameter(s) for s in sites], where)
    if name == "incremental_rank":
        parts, threshold = options["parts"], options["threshold"]
        if not 0 <= threshold < 1:
            raise UserError(f"{where}.threshold: expected 0 <= threshold < 1 (got {threshold})")
        bad = [s for s in sites if parts < 1 or model.get_parameter(s).shape[0] % parts]
        if bad:
            rows = model.get_parameter(bad[0]).shape[0]
            raise UserError(f"{where}.parts: {parts} does not divide the {rows} rows of {bad[0]}")
    if name in ("angular_distance", "layer_distances") and len(sites) <= options["n"]:
        raise UserError(f"{where}.sites: {name} needs more than n={options['n']} sites")
    return True


def draw_probe_batch(task, split: str, size: int, seed: int) -> dict[str, torch.Tensor]:
    """``size`` rows (all if fewer) of ``split``, drawn once with a generator seeded by ``seed``.

    All of the split's tensors come along (``x``, ``y`` for classification; ``tokens`` and
    the masks for sequence tasks), so the task's objective can run its forward pass.
    """
    if split not in task.splits:
        raise UserError(f"probe_batch.split: unknown split {split!r}; allowed: {list(task.splits)}")
    data = task.split(split)
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:size]
    return data.rows(index.sort().values)


def plan_probes(
    specs: list[dict[str, Any]] | None,
    model: nn.Module,
    task,
    forward: Forward,
    *,
    kind: str,
    eval_every: int,
    batch_split: str = "train",
    batch_size: int = 256,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> ProbePlan:
    """Resolve probe entries ``specs`` (``None``: the defaults of model ``kind``) for ``model``
    on ``task``, whose objective's ``forward(model, batch)`` runs the model.

    Call it on the freshly built model: it snapshots the initial weights that
    ``incremental_rank`` compares against. Raises :class:`UserError` before anything is written.
    """
    modulus = getattr(task.params, "p", None)
    batch = draw_probe_batch(task, batch_split, batch_size, seed)
    batch = {k: v.to(device) for k, v in batch.items()}
    rows = getattr(task, "residue_tokens", None)
    residues = (rows, len(task.vocab)) if rows is not None else None
    items = resolve(
        expand_specs(specs, kind),
        model,
        eval_every,
        "y" in batch,
        modulus,
        residues,
        frozenset(batch),
    )
    initial = {
        s: model.get_parameter(s).detach().clone()
        for item in items
        if item.probe == "incremental_rank"
        for s in item.sites
    }
    if any(item.probe == "ntk_distance" for item in items):  # theta_0, every parameter
        initial.update(
            {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}
        )
    op = getattr(task.params, "op", None)
    plan = ProbePlan(
        items, batch, initial, modulus, hook_names(model), op if modulus else None, *residues or ()
    )
    if items:  # a dry run: shape errors surface now, not in the middle of training
        acts = plan.activations(model, forward, plan.hook_sites)
        for item in items:
            if item.probe == "examples" and getattr(task, "kind", None) != "classification":
                raise UserError(
                    f"probes: examples needs a classification task (logits against class "
                    f"labels); {getattr(task, 'name', 'this task')} is a {task.kind} task"
                )
            if item.probe in ("attention_entropy", "sas"):
                bad = [s for s in item.sites if acts[s].dim() < 3]
                if bad:
                    raise UserError(
                        f"probes: {item.probe} site {bad[0]} is not an attention pattern "
                        f"(..., h, q, k); its shape is {tuple(acts[bad[0]].shape)}"
                    )
            if item.probe in ("angular_distance", "layer_distances"):
                shapes = {tuple(acts[s].shape) for s in item.sites}
                if len(shapes) > 1:
                    raise UserError(
                        f"probes: {item.probe} sites must share one shape, got {shapes}"
                    )
    return plan
