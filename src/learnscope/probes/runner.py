"""Recording probes during training: which probe, on which sites, how often, on what batch.

A run config's ``probes:`` section lists entries ``{probe, sites, every, **options}``; the
probes run on one fixed probe batch, drawn once from a named split with a generator seeded
by the run seed::

    probes:
      - defaults                                    # the model kind's built-in probes
      - {probe: matrix_entropy, sites: ["layers.*.hook_post"], every: 20}
      - {probe: local_rank, sites: ["layers.0.hook_pre"], every: 100, rows: 32}
    probe_batch: {split: train, size: 256}

Leaving ``probes`` out records the :data:`DEFAULTS` of the model kind; ``probes: []`` records
nothing. ``every`` defaults to ``train.eval_every``. Probes are recorded at step 0, at every
multiple of ``every`` and at the last step. ``sites`` are glob patterns over the model's
activation sites (hook names such as ``layers.*.hook_post``, ``blocks.*.attn.hook_pattern``)
or, for probes of weights, over parameter names (``layers.0.linear.weight``). All the
activation probes due at a step share one forward pass (``learnscope.models.hooks.capture``)
in eval mode.

Metric names (see the metrics contract): ``{probe}/{site}``; per head
``attention_entropy/{site}/h{i}``; ``ipr`` records ``ipr_mean/{param}`` and ``ipr_frac/{param}``;
``hessian_top_eigenvalue/loss``; ``angular_distance/{site}`` is the distance from ``site`` to the
``n``-th next matched site.

Cost: the rank probes take one eigen/singular value decomposition per site (float64, about
``min(b, d)^2 max(b, d)``); ``local_rank`` and ``partial_jacobian_norm`` take one backward pass
per output unit on ``rows`` samples (default 64), ``hessian_top_eigenvalue`` ``iters``
Hessian-vector products on the probe batch: they are opt-in, never defaults.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from learnscope.errors import UserError
from learnscope.models.hooks import capture, eval_mode, hook_names
from learnscope.probes.attention import attention_entropy
from learnscope.probes.collapse import nc1, ncc_accuracy
from learnscope.probes.distance import angular_distance
from learnscope.probes.jacobian import hessian_top_eigenvalue, local_rank, partial_jacobian_norm
from learnscope.probes.rank import effective_rank, incremental_rank, lidar, matrix_entropy, rankme
from learnscope.probes.spectral import ipr
from learnscope.train import checkpoint
from learnscope.train.loop import Callback, Trainer

if TYPE_CHECKING:
    from learnscope.config import ProbeSpec, RunConfig
    from learnscope.tasks import Task

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


def residue_blocks(w: torch.Tensor, p: int) -> list[torch.Tensor]:
    """A weight matrix as ``(p, m)`` blocks whose rows are indexed by a residue.

    A layer's weight ``(out, k * p)`` reading one-hot operands gives its ``k`` input blocks,
    transposed (one column per neuron); otherwise a matrix ``(k * p, m)`` (an embedding table,
    the last layer's ``(p, width)``) gives its ``k`` row blocks.
    """
    if w.dim() == 2 and w.shape[1] % p == 0:
        return [w[:, i * p : (i + 1) * p].T for i in range(w.shape[1] // p)]
    if w.dim() == 2 and w.shape[0] % p == 0:
        return [w[i * p : (i + 1) * p] for i in range(w.shape[0] // p)]
    raise UserError(
        f"probes.ipr: weight of shape {tuple(w.shape)} has no axis of a multiple of p={p}"
    )


def _ipr(ctx: Context, item: Planned) -> Values:
    """IPR per neuron (mean over the weight's residue blocks, Doshi et al. 2024 average the
    two operands' blocks and the read-out), then its mean and the fraction above ``threshold``."""
    p = item.options["p"] or ctx.modulus
    out: Values = {}
    for site in item.sites:
        blocks = residue_blocks(ctx.tensor(site), p)
        per_neuron = ipr(torch.cat(blocks, 1), p).view(len(blocks), -1).mean(0)
        out[f"ipr_mean/{site}"] = float(per_neuron.mean())
        out[f"ipr_frac/{site}"] = float((per_neuron > item.options["threshold"]).double().mean())
    return out


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
    "ipr": ProbeDef(_ipr, "params", {"p": None, "threshold": 0.5}),
    "nc1": ProbeDef(_labelled(nc1), "hooks", needs_labels=True),
    "ncc_accuracy": ProbeDef(_labelled(ncc_accuracy), "hooks", needs_labels=True),
    "angular_distance": ProbeDef(_angular_distance, "hooks", {"n": 1}),
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
}


def metric_prefixes() -> set[str]:
    """First components of every metric name the probes write (for ``show``)."""
    return set(PROBES) | {"ipr_mean", "ipr_frac"}


# -- resolving a config against a model ------------------------------------------------------


@dataclass
class ProbePlan:
    """The resolved probes of a run, its fixed probe batch and what they need."""

    items: list[Planned]
    batch: dict[str, torch.Tensor]
    initial: dict[str, torch.Tensor]
    modulus: int | None
    hooks: list[str]  # the model's activation sites

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
        ctx = Context(model, self.batch, acts, forward, loss, self.initial, self.modulus)
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
    specs: list[ProbeSpec] | None, kind: str
) -> list[tuple[dict[str, Any], bool, int]]:
    """Config entries as ``(spec dict, is_default, index in the config)``, ``defaults``
    expanded to the model kind's :data:`DEFAULTS`; ``None`` means ``[defaults]``."""
    if specs is None:
        specs_list: list[dict[str, Any]] = [{"probe": "defaults"}]
    else:
        specs_list = [
            {"probe": s.probe, "sites": s.sites, "every": s.every, **s.options} for s in specs
        ]
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
) -> list[Planned]:
    """Check each entry against the model and turn it into a :class:`Planned`.

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
        unknown = sorted(set(spec) - set(pdef.options))
        if unknown:
            allowed = ", ".join(pdef.options) or "none"
            raise UserError(f"{where}.{unknown[0]}: unknown option of {name}; allowed: {allowed}")
        for key, value in spec.items():
            default = pdef.options[key]
            kind = float if isinstance(default, float) else type(default)
            if kind is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
                try:
                    spec[key] = value = float(value)
                except ValueError:
                    pass
            ok = default is None or isinstance(value, kind) and not isinstance(value, bool)
            if not ok and not (kind is float and isinstance(value, int)):
                raise UserError(f"{where}.{key}: expected {kind.__name__} (got {value!r})")
        options = {**pdef.options, **spec}
        names = {"hooks": hooks, "params": params, "both": hooks + params, "none": []}[pdef.targets]
        if pdef.targets == "none":
            if patterns:
                raise UserError(f"{where}.sites: {name} takes no sites (it uses every parameter)")
            sites: list[str] = []
        else:
            if not patterns:
                raise UserError(f"{where}.sites: give glob patterns for {name}; sites: {names}")
            sites, misses = _match(patterns, names)
            if misses and not is_default:
                what = {"hooks": "activation site", "params": "parameter"}.get(
                    pdef.targets, "activation site or parameter"
                )
                raise UserError(f"{where}.sites: no {what} matches {misses[0]!r}; allowed: {names}")
            if not sites:
                continue
        if pdef.needs_labels and not has_labels:
            if is_default:
                continue
            raise UserError(f"{where}.probe: {name} needs class labels (a classification task)")
        for key in pdef.sources:
            options[key] = options[key] or hooks[0]
            if options[key] not in hooks:
                raise UserError(f"{where}.{key}: unknown activation site; allowed: {hooks}")
            first = hooks.index(options[key])
            if any(hooks.index(s) <= first for s in sites):
                raise UserError(f"{where}.sites: every site must come after {key} {options[key]}")
        if name == "ipr":
            if not (options["p"] or modulus):
                raise UserError(f"{where}.p: the task has no modulus; set p")
            try:
                for s in sites:
                    residue_blocks(model.get_parameter(s), options["p"] or modulus)
            except UserError as err:
                if is_default:
                    continue
                raise UserError(f"{where}.sites: {err}") from None
        if name == "angular_distance" and len(sites) <= options["n"]:
            raise UserError(f"{where}.sites: angular_distance needs more than n={options['n']}")
        plan.append(Planned(name, sites, every or eval_every, options))
    return plan


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
    cfg: RunConfig, trainer: Trainer, specs: list[ProbeSpec] | None | str = "config"
) -> ProbePlan:
    """Resolve the probes of ``cfg`` (or ``specs``) for ``trainer``'s model and task.

    Call it right after building the trainer: it snapshots the initial weights that
    ``incremental_rank`` compares against. Raises :class:`UserError` before anything is written.
    """
    return plan_for_model(
        cfg, trainer.model, trainer.task, trainer.objective.forward, trainer.device, specs
    )


def plan_for_model(
    cfg: RunConfig,
    model: nn.Module,
    task: Task,
    forward: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor],
    device: torch.device,
    specs: list[ProbeSpec] | None | str = "config",
) -> ProbePlan:
    """:func:`plan_probes` for a model that has no trainer of its own (an ensemble member),
    its objective's ``forward`` and the ``device`` the probe batch goes to."""
    specs = cfg.probes if specs == "config" else specs
    modulus = getattr(task.params, "p", None)
    batch = draw_probe_batch(task, cfg.probe_batch.split, cfg.probe_batch.size, cfg.seed)
    batch = {k: v.to(device) for k, v in batch.items()}
    items = resolve(
        expand_specs(specs, cfg.model.kind),
        model,
        cfg.train.eval_every,
        "y" in batch,
        modulus,
    )
    initial = {
        s: model.get_parameter(s).detach().clone()
        for item in items
        if item.probe == "incremental_rank"
        for s in item.sites
    }
    plan = ProbePlan(items, batch, initial, modulus, hook_names(model))
    if items:  # a dry run: shape errors surface now, not in the middle of training
        acts = plan.activations(model, forward, plan.hook_sites)
        for item in items:
            if item.probe == "attention_entropy":
                bad = [s for s in item.sites if acts[s].dim() < 3]
                if bad:
                    raise UserError(
                        f"probes: attention_entropy site {bad[0]} is not an attention pattern "
                        f"(..., h, q, k); its shape is {tuple(acts[bad[0]].shape)}"
                    )
            if item.probe == "angular_distance":
                shapes = {tuple(acts[s].shape) for s in item.sites}
                if len(shapes) > 1:
                    raise UserError(
                        f"probes: angular_distance sites must share one shape, got {shapes}"
                    )
    return plan


class ProbeRunner(Callback):
    """Records the plan's probes at step 0, every ``every`` steps and at the last step.

    ``log(step, values)`` receives the values (e.g. ``store.log`` for a run); the latest are
    also kept in ``self.latest``.
    """

    def __init__(self, plan: ProbePlan, log: Callable[[int, Values], None] | None = None):
        self.plan, self.log = plan, log
        self.latest: Values = {}
        self.recorded: list[int] = []

    def record(self, trainer: Trainer, step: int, items: list[Planned]) -> None:
        obj = trainer.objective
        values = self.plan.compute(trainer.model, obj.forward, obj.loss, items)
        self.latest.update(values)
        self.recorded.append(step)
        if self.log is not None:
            self.log(step, values)

    def on_train_start(self, trainer: Trainer) -> None:
        if trainer.step == 0:
            self.record(trainer, 0, self.plan.items)

    def on_step_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        last = step >= trainer.cfg.steps
        due = [item for item in self.plan.items if last or step % item.every == 0]
        if due:
            self.record(trainer, step, due)

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        """A run stopped early (by a callback) gets a last record at the step it stopped."""
        if status == "stopped" and self.plan.items and trainer.step not in self.recorded:
            self.record(trainer, trainer.step, self.plan.items)


# -- probes on a saved checkpoint (``learnscope probe``) -------------------------------------


def probe_checkpoint(
    config: dict[str, Any],
    run_dir: Path,
    step: int | None = None,
    probe: str | None = None,
    sites: list[str] | None = None,
) -> tuple[int, Values]:
    """Probe values of a run's checkpoint at ``step`` (default: the latest).

    The model is rebuilt from the run's stored ``config`` (on the CPU, seeded as in training,
    so ``incremental_rank`` sees the same initial weights) and loaded from the checkpoint.
    Without ``probe``: the run's probes (its defaults if it recorded none). With ``probe``:
    that probe on ``sites``, or, without sites, on the sites the run's probes used it on.
    """
    from learnscope.config import ProbeSpec, validate_config
    from learnscope.runner import build  # the runner imports this module

    cfg = validate_config({**config, "train": {**config.get("train", {}), "device": "cpu"}})
    if probe is not None and probe not in PROBES:
        raise UserError(f"--probe: unknown probe {probe!r}; allowed: {', '.join(PROBES)}")
    directory = Path(run_dir) / "checkpoints"
    if step is None:
        found = checkpoint.latest(directory)
        if found is None:
            raise UserError(f"checkpoint: no readable checkpoint in {directory}")
        step, state = found
    else:
        if step not in checkpoint.steps(directory):
            raise UserError(
                f"--step: no checkpoint at step {step}; steps: {checkpoint.steps(directory)}"
            )
        state = checkpoint.load(checkpoint.path_for(directory, step))
    trainer = build(cfg)
    if probe is not None and (sites or PROBES[probe].targets == "none"):
        specs: list[ProbeSpec] | None = [ProbeSpec(probe=probe, sites=list(sites or []))]
        plan = plan_probes(cfg, trainer, specs)
    else:
        plan = plan_probes(cfg, trainer)
        if not plan.items:
            plan = plan_probes(cfg, trainer, None)
        if probe is not None:
            plan.items = [item for item in plan.items if item.probe == probe]
            if not plan.items:
                raise UserError(
                    f"--probe: this run records no {probe}; give --site patterns; "
                    f"sites: {hook_names(trainer.model)}"
                )
    trainer.model.load_state_dict(state["model"])
    obj = trainer.objective
    return step, plan.compute(trainer.model, obj.forward, obj.loss)
