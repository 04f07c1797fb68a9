"""One tester for every registered probe (after torchmetrics' ``MetricTester``).

Each probe of :data:`learnscope.probes.registry.PROBES` has a :class:`Case` in :data:`CASES`:
the tiny model it runs on (:data:`MODELS`, built by ``learnscope.runner.build`` as a run
builds it), its config entry, the metric names it writes, and how its values depend on the
probe batch. :class:`ProbeTester` plans the entry with ``learnscope.runner.probe_plan`` (as
the runner does), moves the weights away from their initial values (as training would: the
probes of ``W_t - W_0`` then measure something) and checks

- **values**: exactly the documented metric names, each a finite Python ``float``;
- **deterministic**: two computations give the same values, bit for bit;
- **float64**: the model and the probe batch in float32 and in float64 agree within ``rtol64``;
- **batch**: how the values depend on the probe batch, the strongest of

  - ``FREE``: not at all (a probe of the weights): another batch gives the same values;
  - ``MEAN``: a mean over samples: the full batch's value is the size-weighted mean of its two
    halves' values, and the rows in any order give the same values;
  - ``ORDER``: a statistic of the set of rows: the rows in any order give the same values.

A case weaker than ``MEAN``, or without the float64 check, says why in ``why_not``. A probe
registered without a case fails every test of ``tests/probes/test_every_probe.py``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from learnscope.config import validate_config
from learnscope.probes.names import is_probe_metric
from learnscope.probes.plan import ProbePlan
from learnscope.probes.registry import Planned, Values
from learnscope.runner import build, probe_plan
from tests.conftest import tiny

FREE, MEAN, ORDER = "free", "mean", "order"

#: The tiny models the probes run on: run configs without their ``probes:``. The whole
#: training split is the probe batch (fewer rows than ``probe_batch.size``).
MODELS: dict[str, dict[str, Any]] = {
    # modular addition mod 11 (60 training rows), two hidden layers
    "mlp": tiny(model={"width": 16, "depth": 3}),
    # the same task as a sequence, a two-layer causal decoder; init_std 0.3 (not 0.02) keeps
    # its attention far from uniform, so the attention probes depend on the batch
    "gpt": {
        "task": {"name": "modular_seq", "op": "add", "p": 7, "train_fraction": 0.5},
        "model": {"kind": "gpt", "n_layer": 2, "n_head": 2, "d_model": 16, "init_std": 0.3},
    },
    # sentences with their dependency parse (``parents``), a bidirectional encoder
    "pcfg": {
        "task": {"name": "pcfg", "n_train": 24, "n_test": 8, "max_len": 10},
        "model": {"kind": "gpt", "causal": False, "n_layer": 1, "n_head": 2, "d_model": 16,
                  "init_std": 0.3},
    },
    # composition in S_3 (18 training pairs), one-hot operands: irrep_power reads the blocks
    "group": {**tiny(), "task": {"name": "group", "group": "S3", "train_fraction": 0.5}},
    # three augmented views of each sample: lidar's and mmcr's classes are the samples
    "views": {
        "task": {"name": "views", "dim": 8, "informative": 2, "n_classes": 2, "n_views": 3,
                 "n_train": 32, "n_test": 8},
        "model": {"kind": "mlp", "embed": "none", "width": 16, "depth": 2},
    },
}  # fmt: skip

Names = Callable[[Planned, nn.Module], set[str]]


def per_site(item: Planned, model: nn.Module) -> set[str]:
    """``{probe}/{site}`` for every site."""
    return {f"{item.probe}/{s}" for s in item.sites}


def per_head(item: Planned, model: nn.Module) -> set[str]:
    """``{probe}/{site}/h{i}`` for every site and head."""
    return {f"{item.probe}/{s}/h{h}" for s in item.sites for h in range(model.cfg.n_head)}


def named(*forms: str) -> Names:
    """The names ``forms`` with ``{site}`` for every site, ``{s}`` for every site but the last
    ``n`` (the distance probes), ``{n}`` for option ``n``; a form with neither is one name."""

    def names(item: Planned, model: nn.Module) -> set[str]:
        firsts = item.sites[: len(item.sites) - item.options.get("n", 0)]
        n = item.options.get("n")
        return {
            form.format(site=s, s=s, n=n)
            for form in forms
            for s in (firsts if "{s}" in form else item.sites if "{site}" in form else [""])
        }

    return names


def weight_matrices(item: Planned, model: nn.Module) -> set[str]:
    """``weight_norms/{param}`` for every parameter of 2 or more dimensions."""
    return {f"weight_norms/{n}" for n, p in model.named_parameters() if p.dim() >= 2}


def frequencies(item: Planned, model: nn.Module) -> set[str]:
    """``fourier_power/{site}/k{k}`` for the frequencies ``0 .. p // 2`` of ``Z_11``."""
    p = MODELS["mlp"]["task"]["p"]
    return {f"fourier_power/{s}/k{k}" for s in item.sites for k in range(p // 2 + 1)}


@dataclass(frozen=True)
class Case:
    """How the tester runs one registered probe, and which properties hold for it."""

    model: str  # a key of MODELS
    spec: dict[str, Any]  # the probe's config entry, less ``probe``
    names: Names = per_site  # the metric names it writes
    batch: str | None = MEAN  # FREE, MEAN or ORDER; None: no property (why_not)
    rtol64: float | None = 1e-4  # float32 against float64; None: not checked (why_not)
    why_not: str = ""  # why the batch property is weaker than MEAN, or float64 unchecked

    def __post_init__(self) -> None:
        weaker = self.batch not in (FREE, MEAN) or self.rtol64 is None
        if weaker and not self.why_not:
            raise ValueError(f"{self.spec}: say in why_not why a property does not hold")


ROWS = 64  # the Jacobian, Hessian and NTK probes read the first ``rows``: all 60 here
HIDDEN = ["layers.*.hook_post"]
RANK_SITES = ["layers.*.hook_post", "out.weight"]  # activations and a weight ("both")
SPECTRUM = "a spectrum of the rows as a whole: a half's is not half of it"

CASES: dict[str, Case] = {
    "effective_rank": Case("mlp", {"sites": RANK_SITES}, batch=ORDER, why_not=SPECTRUM),
    "rankme": Case("mlp", {"sites": RANK_SITES}, batch=ORDER, why_not=SPECTRUM),
    "matrix_entropy": Case(
        "mlp", {"sites": RANK_SITES, "alpha": 2.0}, batch=ORDER, why_not=SPECTRUM
    ),
    # on labelled classes (not views) not even ORDER: each class keeps its first q rows
    "lidar": Case(
        "views",
        {"sites": ["hook_logits"]},
        batch=ORDER,
        why_not="between- against within-class scatter of the samples' views, over all samples",
    ),
    "mmcr": Case(
        "views",
        {"sites": ["hook_logits"]},
        batch=ORDER,
        why_not="the nuclear norm of the matrix of every sample's centroid",
    ),
    "attention_entropy": Case("gpt", {"sites": ["blocks.*.attn.hook_pattern"]}, per_head),
    "sas": Case(
        "pcfg",
        {"sites": ["blocks.*.attn.hook_pattern"]},
        lambda item, model: {"sas/max"} | per_head(item, model),
        batch=ORDER,
        why_not="a fraction of dependency edges (halves weigh by edges, not samples), and "
        "sas/max the best head over the whole batch",
    ),
    "local_rank": Case(
        "mlp", {"sites": ["layers.1.hook_post"], "input": "layers.0.hook_post", "rows": ROWS}
    ),
    "partial_jacobian_norm": Case(
        "mlp", {"sites": ["layers.1.hook_post"], "source": "layers.0.hook_post", "rows": ROWS}
    ),
    "incremental_rank": Case("mlp", {"sites": ["layers.*.linear.weight"]}, batch=FREE),
    "ipr": Case(
        "mlp",
        {"sites": ["layers.0.linear.weight"]},
        named("ipr_mean/{site}", "ipr_frac/{site}"),
        FREE,
    ),
    "fourier_power": Case("mlp", {"sites": ["layers.0.linear.weight"]}, frequencies, FREE),
    "nc1": Case(
        "mlp",
        {"sites": HIDDEN},
        batch=ORDER,
        why_not="within- over between-class scatter, the class means the whole batch's",
    ),
    "ncc_accuracy": Case(
        "mlp",
        {"sites": HIDDEN},
        batch=ORDER,
        why_not="the class centres are the whole batch's means",
    ),
    "angular_distance": Case("mlp", {"sites": HIDDEN}, named("angular_distance/{s}")),
    "layer_distances": Case("mlp", {"sites": HIDDEN, "n": 1}, named("layer_distances/{s}/n{n}")),
    "weight_norms": Case("mlp", {}, weight_matrices, FREE),
    # iters: converged (tol 1e-6) well before 100; at 10 the power iteration is still
    # climbing, from a start vector drawn in the parameters' dtype (float32 != float64)
    "hessian_top_eigenvalue": Case(
        "mlp",
        {"rows": ROWS, "iters": 100},
        named("hessian_top_eigenvalue/loss"),
        ORDER,
        why_not="the top eigenvalue of the mean loss's Hessian: not the mean of the halves'",
    ),
    # the top 4 of 60 Lanczos steps (full reorthogonalisation): converged, so float32 and
    # float64 agree; the outlier count is read off them
    "hessian_spectrum": Case(
        "mlp",
        {"rows": ROWS, "k": 4, "iters": 60},
        named(*(f"hessian_spectrum/eig{i}" for i in range(1, 5)), "hessian_spectrum/outliers"),
        ORDER,
        why_not="eigenvalues of the mean loss's Hessian: not the means of the halves'",
    ),
    "ntk_distance": Case(
        "mlp",
        {"rows": ROWS},
        named("ntk_distance/kernel", "ntk_distance/weights", "ntk_distance/gap"),
        ORDER,
        why_not="the relative change of the kernel matrix over every pair of rows",
    ),
    "mean_abs": Case("mlp", {"sites": HIDDEN}),
    "softmax_collapse": Case("mlp", {}, named("softmax_collapse/logits")),  # a fraction of rows
    "irrep_power": Case(
        "group",
        {"sites": ["layers.0.linear.weight"], "group": "S3"},
        named(*(f"irrep_power/{{site}}/{k}" for k in ("1a", "1b", "2a", "top1", "top2"))),
        FREE,
    ),
    # the probe batch's mean EL2N and GraNd: means over rows
    "examples": Case("mlp", {"grand": 1}, named("examples/el2n", "examples/grand")),
    "dormant_units": Case(
        "mlp",
        {"sites": HIDDEN, "tau": 0.5},
        batch=ORDER,
        why_not="a fraction of units whose mean over the rows is below the layer's: a half's "
        "fraction is not half of it",
    ),
}


class ProbeTester:
    """One registered probe, planned on its :class:`Case`'s model as the runner plans it."""

    def __init__(self, probe: str) -> None:
        if probe not in CASES:
            raise LookupError(f"probe {probe!r} is registered but has no Case in {__name__}.CASES")
        self.probe, self.case = probe, CASES[probe]
        spec = {"probe": probe, **self.case.spec}
        cfg = validate_config({**copy.deepcopy(MODELS[self.case.model]), "probes": [spec]})
        self.trainer = build(cfg)
        self.plan: ProbePlan = probe_plan(cfg, self.trainer)
        (self.item,) = self.plan.items
        self.model = self.trainer.model
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():  # as if trained: the weights move off their initial values
            for p in self.model.parameters():
                p.add_(0.1 * p.std().nan_to_num(1.0) * torch.randn(p.shape, generator=g))
        if probe == "ntk_distance":  # the linearised twin that the runner trains beside it
            self.plan.twin = {
                k: v + 0.05 * torch.randn(v.shape, generator=g)
                for k, v in self.plan.initial.items()
            }

    def compute(self, batch: dict[str, torch.Tensor] | None = None) -> Values:
        """The probe's values on the probe batch, or on ``batch`` (nothing kept across)."""
        plan = self.plan if batch is None else replace(self.plan, batch=batch, memo={})
        objective = self.trainer.objective
        return plan.compute(self.model, objective.forward, objective.loss)

    # -- the properties ------------------------------------------------------------------

    def check_values(self) -> None:
        """Exactly the case's metric names, each a probe metric (the store and the report tell
        them from the trainer's by :func:`is_probe_metric`) with a finite float value."""
        values = self.compute()
        want = self.case.names(self.item, self.model)
        assert set(values) == want, f"got {sorted(values)}, want {sorted(want)}"
        for name, v in values.items():
            assert is_probe_metric(name), f"{name}: not named as a probe metric"
            assert type(v) is float, f"{name}: a {type(v).__name__}, not a float"
            assert math.isfinite(v), f"{name}: {v}"

    def check_deterministic(self) -> None:
        """Two computations on one plan (the second reads what the first kept) agree exactly."""
        first = self.compute()
        assert self.compute() == first

    def check_float64(self) -> None:
        """The same weights and probe batch in float64 give the float32 values within
        ``rtol64``."""
        single = self.compute()
        self.model.double()
        self.plan.initial = {k: v.double() for k, v in self.plan.initial.items()}
        if self.plan.twin is not None:
            self.plan.twin = {k: v.double() for k, v in self.plan.twin.items()}
        batch = {k: v.double() if v.is_floating_point() else v for k, v in self.plan.batch.items()}
        assert_close(self.compute(batch), single, self.case.rtol64)

    def check_batch(self, rtol: float = 1e-5) -> None:
        """The case's ``batch`` property (FREE, MEAN or ORDER; see the module docstring)."""
        full, batch = self.compute(), self.plan.batch
        n = len(next(iter(batch.values())))
        if self.case.batch == FREE:  # another batch: the first half, reversed
            assert_close(
                self.compute({k: v[: n // 2].flip(0) for k, v in batch.items()}), full, rtol
            )
            return
        order = torch.randperm(n, generator=torch.Generator().manual_seed(2))
        assert_close(self.compute({k: v[order] for k, v in batch.items()}), full, rtol)
        if self.case.batch == MEAN:
            halves = order.tensor_split(2)
            parts = [self.compute({k: v[i] for k, v in batch.items()}) for i in halves]
            mean = {k: sum(len(i) * p[k] for i, p in zip(halves, parts)) / n for k in full}
            assert_close(mean, full, rtol)


def assert_close(got: Values, want: Values, rtol: float) -> None:
    """The same names, and values equal within ``rtol`` (or ``rtol`` absolute near 0)."""
    assert set(got) == set(want)
    for name, v in want.items():
        assert math.isclose(got[name], v, rel_tol=rtol, abs_tol=rtol), (name, got[name], v)
