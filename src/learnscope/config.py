"""The pydantic model of a run, and the only place that validates user input.

A run config has small nested sections (minGPT style), loaded from YAML (a built-in recipe or
a file) and overridden with dotted ``--set`` paths::

    name: grokking-mlp
    seed: 0
    task:  {name: modular, op: add, p: 97, train_fraction: 0.3}
    model: {kind: mlp, width: 500, depth: 2, activation: quadratic, bias: false}
    train: {optimizer: adamw, lr: 0.01, weight_decay: 5.0, loss: mse, steps: 300}
    claims: [{name: groks, statement: "...", key: test_acc, threshold: ">=0.99"}]

``task`` and ``model`` are checked against the chosen task's ``Params`` and the chosen model's
config dataclass, so a typo anywhere is an error naming its field.
"""

from __future__ import annotations

import copy
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from learnscope.dotted import set_path
from learnscope.errors import UserError, cut, from_validation
from learnscope.files import read_capped
from learnscope.probes.names import PROBE_NAMES
from learnscope.strict import MAX_PROJ_DIM, MAX_SEED, MAX_SIZE, MAX_STEPS, StrictModel

#: YAML nested deeper than this is refused (a run config is 3 levels deep)
MAX_YAML_DEPTH = 32


#: Names a run may stop on (``train.stop_when``): ``grokked`` (the test set reached the grok
#: threshold) and every event kind; :func:`learnscope.events.stop_condition` reads them.
StopCondition = Literal["grokked", "fitted", "slingshot", "attention_collapse", "rank_collapse"]


class Section(StrictModel):
    """A config section: unknown keys refused, floats finite, no booleans for numbers."""


class TaskSection(BaseModel):
    """``name`` picks the task family; every other key is that family's parameter."""

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ModelSection(BaseModel):
    """``kind`` picks the model file; every other key is a field of its config dataclass."""

    model_config = ConfigDict(extra="allow")
    kind: str = "mlp"

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RegularizerConfig(Section):
    """One ``seq_vcr`` (Arefin et al. 2024), ``vcr`` (Zhu et al. 2023) or ``sas`` (Chen et al.
    2024: attention on syntactic neighbours, for the first ``until_step`` steps) term; see
    ``learnscope.train.regularizers``."""

    kind: Literal["seq_vcr", "vcr", "sas"]
    layers: list[str] = Field(
        ["ln_final.hook_normalized"], min_length=1, description="hook-name globs"
    )
    positions: Literal["all"] | list[int] = Field(
        "all", description="'all' or position indices (at least one)"
    )
    proj_dim: int | None = Field(
        None, ge=1, le=MAX_PROJ_DIM, description="projector width d'; None: none"
    )
    lambda_var: float = Field(1.0, ge=0, le=1e6)
    lambda_cov: float = Field(0.004, ge=0, le=1e6)
    eps: float = Field(1e-3, gt=0, le=1)
    lambda_sas: float = Field(
        1.0, ge=-1e6, le=1e6, description="sas: > 0 suppresses syntactic attention, < 0 promotes"
    )
    until_step: int | None = Field(
        None, ge=1, le=MAX_STEPS, description="sas: applied for steps < until_step (None: always)"
    )

    @field_validator("positions")
    @classmethod
    def _positions(cls, v: Any) -> Any:
        if isinstance(v, list) and not 1 <= len(v) <= 4096:
            raise ValueError("give 'all' or 1 to 4096 position indices")
        return v

    @model_validator(mode="after")
    def _sas_layers(self) -> RegularizerConfig:
        if self.kind == "sas" and "layers" not in self.model_fields_set:
            self.layers = ["blocks.*.attn.hook_pattern"]
        return self


class SSLConfig(Section):
    """Weights of the self-supervised objectives (``train.objective``: ``vicreg``, ``mmcr``)."""

    inv: float = Field(25.0, ge=0, le=1e6, description="vicreg: invariance weight (lambda)")
    var: float = Field(25.0, ge=0, le=1e6, description="vicreg: variance weight (mu)")
    cov: float = Field(1.0, ge=0, le=1e6, description="vicreg: covariance weight (nu)")
    mmcr_local: float = Field(0.0, ge=0, le=1e6, description="mmcr: weight of mean ||Z_b||_*")


class AutoInitConfig(Section):
    """AutoInit before training (He, Doshi & Gromov 2022; ``learnscope.interventions.autoinit``):
    the MLP's per-layer weight and bias scales tuned on ``rows`` training inputs until every
    adjacent partial Jacobian norm is 1. ``autoinit: true`` takes these defaults."""

    steps: int = Field(100, ge=1, le=10_000, description="gradient steps on (log APJN)^2, at most")
    lr: float = Field(0.2, gt=0, le=10, description="step size on the log-scales")
    tol: float = Field(0.05, gt=0, le=1, description="stop once every |log J| is below this")
    n_proj: int = Field(4, ge=1, le=64, description="random vectors per APJN estimate")
    rows: int = Field(64, ge=1, le=4096, description="training inputs the APJN is averaged over")


class RFTConfig(Section):
    """Reinforcement fine-tuning (``train.objective: rft``; Razin et al. 2024): REINFORCE on
    answers sampled from the model, see ``learnscope.train.rft``."""

    samples: int = Field(4, ge=2, le=1024, description="answers sampled per input (>= 2)")
    temperature: float = Field(1.0, gt=0, le=100, description="sampling temperature")
    reward: Literal["exact", "partial"] = Field(
        "exact", description="exact: the task's exact match; partial: fraction of target tokens"
    )
    kl: float = Field(0.0, ge=0, le=1e6, description="weight of KL(policy || initial policy)")
    probe_inputs: int = Field(
        32, ge=0, le=4096, description="fixed train inputs whose reward statistics are logged"
    )
    probe_samples: int = Field(16, ge=2, le=4096, description="answers sampled per probe input")


class GradFilterConfig(Section):
    """Grokfast (Lee et al. 2024, PAPERS.md 30): a low-pass filter of each parameter's gradient
    added back to it between the backward pass and the step, ``g + lamb * h``. ``ema``: ``h =
    alpha h + (1 - alpha) g``, ``h`` starting at the first gradient; ``ma``: ``h`` the mean of
    the last ``window`` gradients, applied once the window is full."""

    kind: Literal["ema", "ma"] = "ema"
    alpha: float = Field(0.98, ge=0, lt=1, description="ema: the filter's momentum")
    window: int = Field(100, ge=1, le=10_000, description="ma: gradients averaged")
    lamb: float | None = Field(
        None, ge=0, le=1e3, description="the filtered gradient's weight (ema 2, ma 5)"
    )

    @property
    def weight(self) -> float:
        return self.lamb if self.lamb is not None else {"ema": 2.0, "ma": 5.0}[self.kind]


class EWCConfig(Section):
    """Elastic weight consolidation (Kirkpatrick et al. 2017; ``learnscope.train.continual``):
    at each task switch of a ``sequence`` task, the diagonal Fisher of the finished task is
    computed on ``samples`` of its training rows and ``sum_i lambda/2 F_i (theta_i -
    theta*_i)^2`` (summed over the finished tasks) is added to the loss."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, validate_by_name=True, serialize_by_alias=True
    )
    lambda_: float = Field(100.0, ge=0, le=1e9, alias="lambda", description="penalty strength")
    samples: int = Field(500, ge=1, le=100_000, description="training rows the Fisher averages")
    fisher: Literal["true", "empirical"] = Field(
        "true", description="true: expectation over the model's labels; empirical: the data's"
    )


class PlasticityConfig(Section):
    """Remedies for the loss of plasticity (Dohare et al. 2024; ``learnscope.train.continual``):
    ``continual_backprop`` reinitialises a fraction ``replacement_rate`` of the mature hidden
    units with the lowest utility each step; ``shrink_perturb`` sets ``theta <- shrink theta +
    N(0, noise^2)`` every step (``when: step``) or at each task switch (``when: task``, Ash &
    Adams 2020)."""

    kind: Literal["continual_backprop", "shrink_perturb"]
    replacement_rate: float = Field(1e-4, ge=0, le=1, description="continual_backprop: rho")
    maturity: int = Field(100, ge=0, le=MAX_STEPS, description="continual_backprop: age m")
    decay: float = Field(0.99, ge=0, lt=1, description="continual_backprop: utility's eta")
    shrink: float = Field(1.0, ge=0, le=1, description="shrink_perturb: lambda")
    noise: float = Field(0.0, ge=0, le=10, description="shrink_perturb: sigma")
    when: Literal["step", "task"] = Field("step", description="shrink_perturb: each step or switch")


class SubspaceConfig(Section):
    """Train in a random subspace (Li et al. 2018, intrinsic dimension): ``theta = theta_0 + P
    z`` with only ``z`` (``dim`` numbers) learned; ``kind``: a dense ``P`` (small models) or
    the structured Fastfood one (``learnscope.models.subspace``)."""

    dim: int = Field(ge=1, le=10**8, description="d: the numbers trained")
    kind: Literal["dense", "fastfood"] = "dense"


class TrainConfig(Section):
    #: what the model is trained to do
    objective: Literal["task", "vicreg", "mmcr", "rft"] = Field(
        "task",
        description="task: the task kind's loss; vicreg, mmcr: on the task's views; "
        "rft: policy-gradient fine-tuning (sequence tasks)",
    )
    ssl: SSLConfig = SSLConfig()
    init_from: str | None = Field(
        None, description="RUN[@step]: start from that run's model weights (not its optimizer)"
    )
    rft: RFTConfig = RFTConfig()
    optimizer: Literal["adamw", "adam", "sgd", "sam"] = Field(
        "adamw", description="sam: sam_base on the gradient at the worst weights within sam_rho"
    )
    sam_rho: float = Field(
        0.05, gt=0, le=1e3, description="sam: radius of the ascent step (Foret et al. 2021)"
    )
    sam_base: Literal["sgd", "adamw", "adam"] = Field(
        "sgd", description="sam: the optimiser that steps along the sharpness-aware gradient"
    )
    input_noise: float = Field(
        0.0,
        ge=0,
        le=1e3,
        description="augmentation: token inputs redrawn with this probability, real inputs "
        "get this much Gaussian noise, afresh each step",
    )
    orthogonal: bool = Field(
        False,
        description="⊥Grad (Prieto et al. 2025): each gradient's component along its weights "
        "removed and the norm kept, before the optimiser's step",
    )
    grad_filter: GradFilterConfig | None = Field(
        None, description="Grokfast: a low-pass filter of the gradient, amplified (ema or ma)"
    )
    ewc: EWCConfig | None = Field(None, description="EWC at each task switch (sequence tasks)")
    plasticity: PlasticityConfig | None = Field(
        None, description="continual_backprop or shrink_perturb (loss of plasticity)"
    )
    # upper bounds keep every step size representable in float32
    lr: float = Field(1e-3, gt=0, le=1e6)
    weight_decay: float = Field(0.0, ge=0, le=1e6)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = Field(1e-8, gt=0, le=1)
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD and SAM only")
    batch_size: int | None = Field(None, ge=1, le=MAX_SIZE, description="None: full batch")
    loss: Literal["ce", "mse", "stablemax_ce"] = Field(
        "ce", description="stablemax_ce: cross-entropy of StableMax (Prieto et al. 2025)"
    )
    schedule: Literal["constant", "warmup_cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0, le=MAX_STEPS)
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine floor, as a fraction of lr")
    grad_clip: float | None = Field(None, gt=0, le=1e6)
    steps: int = Field(1000, ge=1, le=MAX_STEPS)
    eval_every: int = Field(10, ge=1, le=MAX_STEPS)
    checkpoint_every: int = Field(
        0, ge=0, le=MAX_STEPS, description="0: a checkpoint at the end only"
    )
    keep_checkpoints: int | None = Field(
        None, ge=1, le=MAX_STEPS, description="the newest N checkpoints are kept (None: every one)"
    )
    device: str = "auto"
    precision: Literal["fp32", "auto", "bf16", "fp16"] = Field(
        "fp32",
        description="autocast on CUDA (auto: bf16 if supported, else fp16); on CPU bf16 "
        "autocasts too, auto and fp16 stay fp32",
    )
    compile: bool = Field(
        False, description="torch.compile the model's training forward (benchmarks/gpt_throughput)"
    )
    eval_examples: int | None = Field(
        None,
        ge=1,
        le=MAX_SIZE,
        description="sequence tasks: rows decoded per split at eval (None: all)",
    )
    regularizers: list[RegularizerConfig] = Field(default_factory=list)
    stop_when: list[StopCondition] = Field(
        default_factory=list, description="end the run once one of these events holds"
    )
    stop_patience: int = Field(
        0, ge=0, le=MAX_STEPS, description="evals the event must hold before stopping"
    )
    autoinit: AutoInitConfig | None = Field(
        None, description="tune the initial scales first (MLP); true: the defaults"
    )
    subspace: SubspaceConfig | None = Field(
        None, description="train theta_0 + P z, only z of size dim (intrinsic dimension)"
    )

    @field_validator("autoinit", mode="before")
    @classmethod
    def _autoinit(cls, v: Any) -> Any:
        """``true`` stands for the defaults, ``false`` for none."""
        return {} if v is True else None if v is False else v

    # class imbalance (Shwartz-Ziv et al. 2023); see learnscope.train.objectives
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="cross-entropy against (1 - e) one-hot + e / C"
    )
    sampler: Literal["uniform", "class_balanced"] = Field(
        "uniform", description="class_balanced: each class drawn with equal probability"
    )
    reweight: Literal["none", "inverse_frequency"] = Field(
        "none", description="class weights of the cross-entropy: N / (C n_c)"
    )

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError("each beta must be in [0, 1)")
        return v

    @model_validator(mode="after")
    def _imbalance_options(self) -> TrainConfig:
        if self.loss == "mse" and (self.label_smoothing or self.reweight != "none"):
            raise ValueError("label_smoothing and reweight apply to loss 'ce' only")
        if self.sampler == "class_balanced" and self.batch_size is None:
            raise ValueError("sampler 'class_balanced' draws minibatches: set batch_size")
        return self

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v):
            raise ValueError("allowed: auto, cpu, cuda, cuda:N, mps")
        return v


class EventsConfig(Section):
    grok_threshold: float = Field(0.99, gt=0, le=1, description="accuracy counted as learned")
    # thresholds of the other detectors (see learnscope.events for each rule)
    slingshot_spike: float = Field(10.0, gt=1, description="loss above this x best so far")
    slingshot_recover: float = Field(2.0, ge=1, description="back below this x best: recovered")
    slingshot_norm_growth: float = Field(0.05, ge=0, description="last-layer norm growth")
    slingshot_window: int = Field(
        5, ge=1, le=MAX_STEPS, description="evals back the norm growth is measured"
    )
    slingshot_min_peak: float = Field(1e-3, ge=0, description="a spike reaches this loss")
    attention_fraction: float = Field(0.1, gt=0, lt=1, description="of log(context)")
    rank_fraction: float = Field(0.05, gt=0, lt=1, description="of the layer's width")
    collapse_patience: int = Field(
        3, ge=1, le=MAX_STEPS, description="evals a collapse must last to the end"
    )
    sas_rise: float = Field(0.1, gt=0, le=1, description="SAS gain that makes an abrupt onset")
    sas_window: int = Field(
        3, ge=1, le=MAX_STEPS, description="evals each side of the onset the gain spans"
    )
    softmax_collapse: float = Field(
        0.5, gt=0, le=1, description="fraction of probe rows whose softmax sum is exactly 1"
    )


class ProbeSpec(BaseModel):
    """One probe to record: ``{probe, sites, every, **options}`` (see ``learnscope.probes.plan``).

    ``sites`` are glob patterns over activation sites (``layers.*.hook_post``) or parameter
    names (``layers.0.linear.weight``); any other key is an option of the probe.
    """

    model_config = ConfigDict(extra="allow")
    probe: str
    sites: list[str] = Field(default_factory=list)
    every: int | None = Field(
        None, ge=1, le=MAX_STEPS, description="steps between records; None: eval_every"
    )

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @field_validator("probe")
    @classmethod
    def _probe(cls, v: str) -> str:
        if v not in PROBE_NAMES and v != "defaults":
            raise ValueError(f"unknown probe {v!r}; allowed: {', '.join(PROBE_NAMES)} or defaults")
        return v


class ProbeBatchConfig(Section):
    """The fixed probe batch: ``size`` rows drawn once (seeded by the run seed) from ``split``."""

    split: str = "train"
    size: int = Field(256, ge=1, le=MAX_SIZE)


class Control(Section):
    """The matched control of a paired claim: the recipe with these overrides (``set``), or
    another recipe (``recipe``), trained at the same seeds."""

    name: str = Field(description="what the control is, e.g. 'without BatchNorm'")
    recipe: str | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    case: str | None = Field(None, description="in a sweep spec: the case that is the control")

    @model_validator(mode="after")
    def _one_way(self) -> Control:
        ways = [self.recipe is not None, bool(self.set), self.case is not None]
        if sum(ways) != 1:
            raise ValueError(
                "a control needs one of: its overrides (set), a recipe, or (in a sweep spec) "
                "the sweep's case"
            )
        return self


class Claim(Section):
    """What a recipe shows, checked over seeds by ``learnscope verify`` (:mod:`learnscope.
    studies.claims`). The value measured at one seed is one of: a summary ``key``; a ``ratio``
    of two summary keys; the number of events of kind ``event``; a recorded ``metric`` (a
    pattern like ``attention_entropy/*``: each matching series' last, lowest, highest or first
    value, or one of them over the first (``last/first``: what is left of the value at the first
    evaluation), ``over_time``, then the lowest, highest or mean of those, ``over_metrics``); with a
    ``control``, the
    ``key`` (or ratio, or event count) of this recipe minus (``compare: diff``) or divided by
    (``compare: ratio``) the control's at the same seed. It holds at a seed when it meets
    ``threshold``. A ``null`` claim is an effect of the paper that did not appear here, with
    the ``search`` that was run: its threshold is the effect, expected not to hold.

    In a sweep spec, a claim is checked on the sweep's members: those of its ``case`` (default
    every member outside the control's case), each against the member of the control's
    ``case`` at the same grid point and seed; it holds at ``k`` of those ``N`` members."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)
    statement: str = Field(min_length=1, max_length=500)
    paper: str = Field("", max_length=300, description="the paper and its figure or table")
    paper_value: str = Field("", max_length=300, description="the paper's figure, tagged")
    kind: Literal["reproduces", "null"] = "reproduces"
    key: str | None = Field(None, pattern=r"^[A-Za-z0-9_/.]+$")
    ratio: tuple[str, str] | None = None
    event: str | None = Field(None, pattern=r"^[a-z_]+$")
    metric: str | None = Field(None, pattern=r"^[A-Za-z0-9_/.*?\[\]-]+$", max_length=200)
    over_time: Literal["last", "min", "max", "first", "last/first", "min/first", "max/first"] = (
        "last"
    )
    over_metrics: Literal["min", "max", "mean"] = "min"
    control: Control | None = None
    compare: Literal["diff", "ratio"] = "diff"
    threshold: str
    require: float = Field(1.0, gt=0, le=1, description="fraction of seeds it must hold at")
    search: str = Field("", max_length=500, description="null: the search that was run")
    case: str | None = Field(None, description="in a sweep spec: the case whose members count")

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v: str) -> str:
        m = _THRESHOLD.fullmatch(str(v))
        if not m or not math.isfinite(float(m.group(2))):
            raise ValueError(f"{cut(repr(v))} is not a comparison like '>=0.99' or '<=200'")
        return v

    @model_validator(mode="after")
    def _measure(self) -> Claim:
        given = [x for x in (self.key, self.ratio, self.event, self.metric) if x is not None]
        if len(given) != 1:
            raise ValueError(
                f"claim {self.name}: give one of key, ratio, event, metric (what is measured)"
            )
        if self.kind == "null" and not self.search.strip():
            raise ValueError(f"claim {self.name}: a null claim names the search that was run")
        return self


def _distinct_claims(v: list[Claim]) -> list[Claim]:
    """Claims with distinct names, one that reproduces among them, no sweep ``case``."""
    if v and all(c.kind == "null" for c in v):
        raise ValueError("a recipe's claims need one that reproduces (a null is not a check)")
    names = [c.name for c in v]
    if len(set(names)) != len(names):
        raise ValueError(f"claim names must differ (got {names})")
    for c in v:
        if c.case is not None or (c.control is not None and c.control.case is not None):
            raise ValueError(f"claim {c.name}: case is for a sweep spec's claims (its cases)")
    return v


class RunConfig(Section):
    name: str = Field("run", max_length=200)
    description: str = Field("", max_length=10_000)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    task: TaskSection
    model: ModelSection = ModelSection()
    train: TrainConfig = TrainConfig()
    events: EventsConfig = EventsConfig()
    probes: list[ProbeSpec] | None = Field(
        None, description="None: the model kind's default probes; []: none"
    )
    probe_batch: ProbeBatchConfig = ProbeBatchConfig()
    claims: list[Claim] = Field(default_factory=list, description="what it shows, over seeds")

    @field_validator("claims")
    @classmethod
    def _claims(cls, v: list[Claim]) -> list[Claim]:
        return _distinct_claims(v)

    @field_validator("probes", mode="before")
    @classmethod
    def _probes(cls, v: Any) -> Any:
        """The item ``defaults`` stands for the model kind's default probes."""
        if v == "defaults":
            return [{"probe": "defaults"}]
        if isinstance(v, list):
            return [{"probe": "defaults"} if x == "defaults" else x for x in v]
        return v

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class StudySpec(Section):
    """A study spec (``src/learnscope/recipes/studies/NAME.yaml``): a phenomenon measured by a
    study of several runs or an analysis after training, at one seed at a time. ``study`` names
    the module ``learnscope.studies.<study>``, whose ``measure(options, seed, store, progress)``
    trains through the runner and returns what it measured (a dict of numbers); ``claims``
    read that dict by ``key`` or ``ratio`` (:mod:`learnscope.studies.study`)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)
    description: str = Field("", max_length=10_000)
    study: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    options: dict[str, Any] = Field(default_factory=dict)
    claims: list[Claim] = Field(min_length=1)

    @field_validator("claims")
    @classmethod
    def _claims(cls, v: list[Claim]) -> list[Claim]:
        _distinct_claims(v)
        for c in v:
            if c.key is None and c.ratio is None or c.control is not None:
                raise ValueError(
                    f"claim {c.name}: a study's claim reads its measured values by key or "
                    "ratio (no event, metric or control)"
                )
        return v


# -- loading ----------------------------------------------------------------------------


def recipe_names() -> list[str]:
    return sorted(
        p.name[:-5]
        for p in resources.files("learnscope.recipes").iterdir()
        if p.name.endswith(".yaml")
    )


def study_names() -> list[str]:
    """The built-in study specs (``recipes/studies/*.yaml``)."""
    folder = resources.files("learnscope.recipes") / "studies"
    if not folder.is_dir():
        return []
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_study_dict(name: str) -> dict[str, Any]:
    """A study spec (built-in name or YAML path) as a plain dict."""
    if name in study_names():
        text = (resources.files("learnscope.recipes") / "studies" / f"{name}.yaml").read_text()
    else:
        text = read_text(Path(name), "study")
    data = load_yaml(text, f"study: {name}")
    if not isinstance(data, dict):
        raise UserError(f"study: {name} must hold a mapping, not {type(data).__name__}")
    return data


#: a config or sweep spec file is read up to this size (a recipe is a few KiB)
MAX_CONFIG_BYTES = 1 << 20


def read_text(path: Path, where: str, limit: int = MAX_CONFIG_BYTES) -> str:
    """A config or spec file's text; unreadable, not a regular file (``/dev/zero``), larger
    than ``limit`` bytes or not UTF-8 is a one-line :class:`UserError` starting with
    ``where``."""
    try:
        return read_capped(Path(path), where, limit).decode("utf-8")
    except OSError as err:
        raise UserError(f"{where}: cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{where}: {path} is not UTF-8 text (byte {err.start})") from None


def load_recipe_dict(recipe: str) -> dict[str, Any]:
    """A built-in recipe name or a path to a YAML file, as a plain dict."""
    path = Path(recipe)
    if recipe.endswith((".yaml", ".yml")) or path.exists():
        text = read_text(path, "config")
    elif recipe in recipe_names():
        text = (resources.files("learnscope.recipes") / f"{recipe}.yaml").read_text()
    else:
        raise UserError(
            f"recipe: unknown recipe {recipe!r}; allowed: {', '.join(recipe_names())} "
            "or a path to a YAML file"
        )
    data = load_yaml(text, f"config: {recipe}")
    if not isinstance(data, dict):
        raise UserError(
            f"config: {recipe} must hold a mapping of sections, not {type(data).__name__}"
        )
    return data


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML without aliases (``*name``: a cycle, or a "billion laughs" that expands to
    gigabytes) and nested at most :data:`MAX_YAML_DEPTH` levels (no RecursionError)."""

    _depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201 - yaml.composer's signature
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None,
                None,
                "aliases (*name) are not allowed: write the value out",
                self.peek_event().start_mark,
            )
        if self._depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"nested deeper than {MAX_YAML_DEPTH} levels",
                self.peek_event().start_mark,
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str, where: str) -> Any:
    """``text`` parsed as YAML by :class:`_StrictLoader`; a mistake is a one-line
    :class:`UserError` starting with ``where``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as err:
        raise UserError(f"{where} is not valid YAML: {cut(str(err), 300)}") from None
    except (ValueError, RecursionError) as err:  # e.g. an integer of more than 4300 digits
        raise UserError(f"{where}: {cut(str(err), 300)}") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a copy of ``data``.

    >>> apply_overrides({"train": {"lr": 1.0}}, ["train.lr=3e-3", "task.p=113"])
    {'train': {'lr': 0.003}, 'task': {'p': 113}}
    """
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set: expected key.path=value (got {item!r})")
        try:
            value = yaml.load(raw, Loader=_StrictLoader) if raw.strip() else ""  # noqa: S506
        except (yaml.YAMLError, ValueError, RecursionError):
            value = raw
        if isinstance(value, str) and re.fullmatch(r"[-+]?\d*\.?\d+[eE][-+]?\d+", value):
            value = float(value)  # YAML 1.1 reads 3e-3 as a string
        set_path(data, key.strip(), value, where=f"--set {key}")
    return data


#: fields of run configs stored by earlier versions, read without them (``stored=True``)
RETIRED = ("expect",)


def validate_config(data: dict[str, Any], stored: bool = False) -> RunConfig:
    """Validate a whole run config, including the task's and the model's own fields (the
    task and model packages import torch: here, not when the module is imported, so that the
    commands that train nothing start at once). A config ``stored`` with a run is read without
    the fields a later version retired; anywhere else, such a field is refused with what
    replaced it."""
    from learnscope.models import model_config
    from learnscope.tasks import validate_task_params

    if stored:
        data = {k: v for k, v in data.items() if k not in RETIRED}
    elif "expect" in data:
        raise UserError(
            "expect: replaced by claims: (a list of {name, statement, key, threshold}, checked "
            "over seeds by learnscope verify; see the README)"
        )
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as err:
        raise from_validation(err, model=RunConfig) from None
    validate_task_params(cfg.task.name, cfg.task.params)
    model_config(cfg.model.kind, cfg.model.params)  # sizes from the task are filled later
    return cfg


def load_config(recipe: str, overrides: list[str] | None = None) -> RunConfig:
    """Recipe name or YAML path, plus ``--set`` overrides, validated into a RunConfig."""
    return validate_config(apply_overrides(load_recipe_dict(recipe), overrides or []))


# -- thresholds (of claims) ----------------------------------------------------------------

_THRESHOLD = re.compile(r"\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*")


def parse_threshold(cond: str) -> tuple[str, float]:
    """``">=0.99"`` -> ``(">=", 0.99)``; anything else is a UserError."""
    m = _THRESHOLD.fullmatch(str(cond))
    if not m:
        raise UserError(f"threshold: {cond!r} is not a comparison like '>=0.99' or '<=200'")
    return m.group(1), float(m.group(2))


def check_threshold(value: float | None, cond: str) -> bool:
    """Whether ``value`` satisfies ``cond``; a missing value never does.

    >>> check_threshold(0.995, ">=0.99"), check_threshold(None, "<=10")
    (True, False)
    """
    if value is None:
        return False
    op, ref = parse_threshold(cond)
    return {
        ">=": value >= ref,
        "<=": value <= ref,
        ">": value > ref,
        "<": value < ref,
        "==": value == ref,
    }[op]
