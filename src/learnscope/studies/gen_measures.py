"""Generalisation measures of trained runs, and how well they rank a sweep's generalisation gap
(Jiang, Neyshabur, Mobahi, Krishnan & Bengio 2020, "Fantastic generalization measures and where
to find them"; Gastpar, Nachum, Shafer & Weinberger 2024, "Fantastic generalization measures are
nowhere to be found").

Per run (:func:`run_measures`, from its latest checkpoint, on its training split, with the
run's own loss), the measures of Jiang et al. (section 7 and appendix C), each oriented so that
a larger value predicts a larger gap; ``W_i`` are the ``d`` weight matrices (biases aside),
``w`` all parameters, ``w0`` the initial ones (rebuilt from the run's seed), ``gamma`` the
margin:

- ``params``: the number of parameters (Jiang's baseline);
- ``log_prod_spec``: ``log prod_i ||W_i||_2^2`` (Bartlett et al. 2017; Neyshabur et al. 2018);
- ``log_prod_fro``: ``log prod_i ||W_i||_F^2``;
- ``log_sum_fro``: ``log( d (prod_i ||W_i||_F^2)^(1/d) )`` (the sum of the squared Frobenius
  norms of the balanced network: Jiang's ``sum-of-fro``);
- ``log_path_norm``: ``log sum_paths prod_edges w_e^2 = log sum_k f_{w^2}(1)_k``: every
  parameter squared and an all-ones input through the linear layers (Neyshabur et al. 2015;
  biases count as weights from a unit that is always 1); for ReLU MLPs (the activation is the
  identity on the non-negative values it sees here);
- ``dist_init``: ``sum_i ||W_i - W_i^0||_F^2`` (Nagarajan & Kolter 2019);
- ``inv_margin``: ``1 / gamma^2``, ``gamma`` the 10th percentile over the training set of
  ``f(x)_y - max_{j != y} f(x)_j``;
- ``log_spec_margin``, ``log_fro_margin``, ``log_path_margin``: the three above divided by
  ``gamma^2`` (undefined, NaN, when ``gamma <= 0``);
- ``sharpness``: worst-case sharpness, ``max_{|u_i| <= sigma (|w_i| + eps)} L(w + u) - L(w)``
  (magnitude-aware box of relative size ``sigma``; Keskar et al. 2017; Jiang's ``sharpness-mag``
  at fixed radius), by ``ascent_steps`` steps of projected sign-gradient ascent from a random
  corner-free start (:func:`worst_case_sharpness`);
- ``pacbayes_flatness``: ``1 / sigma*^2``, ``sigma*`` the largest ``sigma`` with ``E_{u ~ N(0,
  sigma^2 I)} L(w + u) - L(w) <= tol`` (bisection, Monte Carlo over ``u``;
  :func:`pacbayes_sigma`); ``pacbayes_mag_flatness``: the magnitude-aware one, ``u_i ~ N(0,
  sigma'^2 w_i^2 + eps^2)``, ``1 / sigma'^2`` (Jiang's ``pacbayes-mag-flatness``, the best
  measure of their study);
- ``hessian_top``: the Hessian's largest eigenvalue (20 Lanczos steps,
  :mod:`learnscope.probes.lanczos`);
  ``hessian_trace``: ``tr H = E_v v^T H v`` over Rademacher ``v`` (Hutchinson 1990).

Over a sweep (:func:`correlate`): each finished member's measures (computed once, then read
from the store: :func:`learnscope.runner.annotate` adds them to the run's metrics as
``gen/<name>`` at the checkpoint's step), the generalisation gap (``gap``: train accuracy minus
test accuracy; ``loss_gap``: test loss minus train loss), and per measure Kendall's tau with the
gap over all members and the granulated tau of Jiang et al. (eq. 4): for axis ``i``, ``psi_i =
(1/m_i) sum_{theta_-i} tau({(mu(theta), g(theta)) : theta_i in Theta_i})``, the mean over the
``m_i`` combinations of the other axes' values (the seed counts as one of them) of the tau over
the members that differ only in axis ``i``; ``Psi`` the mean of ``psi_i`` over the axes. A
measure *keeps its sign* when every ``psi_i`` has the sign of the others (all > 0 or all < 0).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from learnscope.config import validate_config
from learnscope.errors import UserError
from learnscope.probes.lanczos import hessian_matvec, top_eigenvalues
from learnscope.store import Store

#: the measures of :func:`run_measures`, in the order they are printed
MEASURES = (
    "params",
    "log_prod_spec",
    "log_prod_fro",
    "log_sum_fro",
    "log_path_norm",
    "dist_init",
    "inv_margin",
    "log_spec_margin",
    "log_fro_margin",
    "log_path_margin",
    "sharpness",
    "pacbayes_flatness",
    "pacbayes_mag_flatness",
    "hessian_top",
    "hessian_trace",
)
#: the metric prefix under which a run's measures are kept in the store
PREFIX = "gen/"
#: what ``correlate`` may rank the measures against
TARGETS = ("gap", "loss_gap")
#: the statuses of members whose measures count: trained to the end, or stopped by
#: ``train.stop_when`` (e.g. once they fit their training set)
TRAINED = ("finished", "stopped")
#: the options of :func:`run_measures` and their defaults
DEFAULTS: dict[str, Any] = {
    "sigma": 0.05,  # worst-case sharpness: relative radius
    "ascent_steps": 10,
    "tol": 0.1,  # PAC-Bayes flatness: allowed mean loss increase
    "mc_samples": 8,
    "bisect_steps": 12,
    "hutchinson": 16,
    "rows": 2048,  # training rows the loss is measured on (the first ones)
    "seed": 0,
}
EPS = 1e-3  # Jiang et al.'s epsilon of the magnitude-aware perturbations


# -- the measures on a model ------------------------------------------------------------------


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The model's ``nn.Linear`` layers in the order they were registered (for an MLP, the
    order of the forward pass)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def norm_measures(model: nn.Module) -> dict[str, float]:
    """``log_prod_spec``, ``log_prod_fro``, ``log_sum_fro`` and ``params`` of ``model``'s
    linear layers (formulas in the module docstring).

    >>> layer = nn.Linear(2, 2, bias=False)
    >>> _ = layer.weight.data.copy_(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
    >>> m = norm_measures(layer)
    >>> round(math.exp(m["log_prod_spec"]), 4), round(math.exp(m["log_prod_fro"]), 4)
    (16.0, 25.0)
    """
    ws = [m.weight.detach().double() for m in linear_layers(model)]
    if not ws:
        raise UserError("measures: the model has no linear layer (Jiang et al.'s norms need one)")
    spec = sum(2 * math.log(float(torch.linalg.matrix_norm(w, ord=2))) for w in ws)
    fro = sum(2 * math.log(float(w.norm())) for w in ws)
    d = len(ws)
    return {
        "params": float(sum(p.numel() for p in model.parameters())),
        "log_prod_spec": spec,
        "log_prod_fro": fro,
        "log_sum_fro": math.log(d) + fro / d,
    }


def path_norm(model: nn.Module) -> float:
    """``sum_paths prod_edges w_e^2 = 1^T f_{w^2}(1)``: the all-ones input through the linear
    layers with every weight and bias squared (Neyshabur, Tomioka & Srebro 2015; Jiang et al.
    eq. 46). The layers must chain (each one's input width the previous one's output width).

    >>> a, b = nn.Linear(2, 2), nn.Linear(2, 1)
    >>> for p, v in zip([*a.parameters(), *b.parameters()], [[[1., 2.], [3., 0.]], [1., 0.],
    ...                                                     [[1., 2.]], [5.]]):
    ...     _ = p.data.copy_(torch.tensor(v))
    >>> path_norm(nn.Sequential(a, nn.ReLU(), b))  # 1*(1+4+1) + 4*(9+0+0) + 25
    67.0
    """
    layers = linear_layers(model)
    if not layers:
        raise UserError("measures: the model has no linear layer (the path norm needs one)")
    h = torch.ones(layers[0].in_features, dtype=torch.float64)
    for layer in layers:
        w = layer.weight.detach().double()
        if w.shape[1] != len(h):
            raise UserError("measures: the path norm needs linear layers that chain (an MLP)")
        h = w.pow(2) @ h
        if layer.bias is not None:
            h = h + layer.bias.detach().double().pow(2)
    return float(h.sum())


def distance_from_init(model: nn.Module, initial: nn.Module) -> float:
    """``sum_i ||W_i - W_i^0||_F^2`` over the linear layers' weights (Jiang et al. eq. 41)."""
    now, then = linear_layers(model), linear_layers(initial)
    return float(
        sum(
            (a.weight.detach().double() - b.weight.detach().double()).pow(2).sum()
            for a, b in zip(now, then)
        )
    )


def margin(logits: torch.Tensor, y: torch.Tensor, q: float = 0.1) -> float:
    """The ``q``-quantile over rows of ``logits[i, y_i] - max_{j != y_i} logits[i, j]`` (Jiang
    et al. use the 10th percentile as the margin ``gamma``).

    >>> margin(torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, 1.0]]), torch.tensor([0, 1, 0]), 0.5)
    2.0
    """
    logits = logits.detach().double()
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], -math.inf).max(1).values
    return float(torch.quantile(true - other, q))


Loss = Callable[[], torch.Tensor]


@torch.no_grad()
def _shifted(
    params: Sequence[torch.Tensor], base: Sequence[torch.Tensor], u: Sequence[torch.Tensor]
):
    for p, b, d in zip(params, base, u):
        p.copy_(b + d)


def worst_case_sharpness(
    loss_fn: Loss,
    params: Sequence[torch.Tensor],
    sigma: float,
    steps: int = 10,
    eps: float = EPS,
    generator: torch.Generator | None = None,
) -> float:
    """``max_{|u_i| <= r_i} L(w + u) - L(w)``, ``r_i = sigma (|w_i| + eps)`` (the magnitude-aware
    box of Jiang et al. eq. 51/52, at a fixed radius): projected sign-gradient ascent, ``u <-
    clip(u + (r / 2) sign(grad_u L(w + u)), -r, r)``, from ``u`` uniform in the box, ``steps``
    steps; the largest increase seen. The parameters are restored after.

    For ``L = 0.5 (w - w*)^T A (w - w*)`` at ``w = w*`` with ``A`` diagonal and non-negative the
    answer is the corner's, ``0.5 sum_i A_ii r_i^2``."""
    params = list(params)
    base = [p.detach().clone() for p in params]
    radius = [sigma * (b.abs() + eps) for b in base]
    with torch.no_grad():
        start = float(loss_fn())
    u = [
        (2 * torch.rand(b.shape, generator=generator, dtype=b.dtype) - 1).to(b.device) * r
        for b, r in zip(base, radius)
    ]
    best = 0.0
    try:
        for _ in range(steps):
            _shifted(params, base, u)
            loss = loss_fn()
            best = max(best, float(loss.detach()) - start)
            grads = torch.autograd.grad(loss, params)
            u = [torch.clamp(d + 0.5 * r * g.sign(), -r, r) for d, r, g in zip(u, radius, grads)]
        _shifted(params, base, u)
        with torch.no_grad():
            best = max(best, float(loss_fn()) - start)
    finally:
        _shifted(params, base, [torch.zeros_like(b) for b in base])
    return best


def pacbayes_sigma(
    loss_fn: Loss,
    params: Sequence[torch.Tensor],
    tol: float = 0.1,
    samples: int = 8,
    magnitude: bool = False,
    steps: int = 12,
    bounds: tuple[float, float] = (1e-5, 10.0),
    eps: float = EPS,
    generator: torch.Generator | None = None,
) -> float:
    """The largest ``sigma`` in ``bounds`` with ``mean_s L(w + u_s(sigma)) - L(w) <= tol``,
    bisected in ``log sigma`` over ``steps`` steps (Jiang et al. eq. 47, 49; the same ``samples``
    draws at every ``sigma``, so the mean grows smoothly with it): ``u = sigma z`` (isotropic),
    or with ``magnitude`` ``u_i = sqrt(sigma^2 w_i^2 + eps^2) z_i``, ``z ~ N(0, I)``. Returns the
    lower bound if even it exceeds ``tol``, the upper if even it does not.

    For ``L = 0.5 (w - w*)^T A (w - w*)`` at ``w*`` the mean increase is ``0.5 sigma^2 tr A``,
    so ``sigma*^2 = 2 tol / tr A``."""
    params = list(params)
    base = [p.detach().clone() for p in params]
    z = [
        [torch.randn(b.shape, generator=generator, dtype=b.dtype).to(b.device) for b in base]
        for _ in range(samples)
    ]
    with torch.no_grad():
        start = float(loss_fn())

    def rise(sigma: float) -> float:
        total = 0.0
        for draw in z:
            if magnitude:
                u = [torch.sqrt(sigma**2 * b**2 + eps**2) * d for b, d in zip(base, draw)]
            else:
                u = [sigma * d for d in draw]
            _shifted(params, base, u)
            with torch.no_grad():
                total += float(loss_fn())
        return total / samples - start

    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    try:
        if rise(math.exp(hi)) <= tol:
            return math.exp(hi)
        if rise(math.exp(lo)) > tol:
            return math.exp(lo)
        for _ in range(steps):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if rise(math.exp(mid)) <= tol else (lo, mid)
    finally:
        _shifted(params, base, [torch.zeros_like(b) for b in base])
    return math.exp(lo)


def hutchinson_trace(
    loss_fn: Loss, params: Sequence[torch.Tensor], probes: int = 16, generator=None
) -> float:
    """``tr H ~ (1/m) sum_s v_s^T H v_s``, ``v_s`` Rademacher (Hutchinson 1990; unbiased, the
    variance ``2 sum_{i != j} H_ij^2 / m``: exact for a diagonal ``H``)."""
    matvec, n = hessian_matvec(loss_fn, params)
    total = 0.0
    for _ in range(probes):
        v = torch.randint(0, 2, (n,), generator=generator, dtype=torch.float64) * 2 - 1
        total += float(v @ matvec(v))
    return total / probes


def model_measures(
    model: nn.Module,
    initial: nn.Module | None,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    options: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Every measure of :data:`MEASURES` for ``model`` on the training rows ``(x, y)`` under
    ``loss(logits, y)``; ``dist_init`` needs the ``initial`` model (NaN without it).
    ``options``: :data:`DEFAULTS`'s keys."""
    opts = {**DEFAULTS, **(options or {})}
    model.eval()
    out = norm_measures(model)
    try:
        path = path_norm(model)
    except UserError:
        path = math.nan
    out["log_path_norm"] = math.log(path) if path > 0 else math.nan
    out["dist_init"] = distance_from_init(model, initial) if initial is not None else math.nan
    with torch.no_grad():
        logits = model(x)
    classes = logits.dim() == 2 and logits.shape[1] > 1 and not y.is_floating_point()
    gamma = margin(logits, y) if classes else math.nan  # no margin for a regression
    ok = gamma > 0
    out["inv_margin"] = 1 / gamma**2 if ok else math.nan
    for key, src in (("spec", "log_prod_spec"), ("fro", "log_prod_fro"), ("path", "log_path_norm")):
        out[f"log_{key}_margin"] = out[src] - 2 * math.log(gamma) if ok else math.nan
    params = [p for p in model.parameters() if p.requires_grad]

    def loss_fn() -> torch.Tensor:
        return loss(model(x), y)

    g = torch.Generator().manual_seed(int(opts["seed"]))
    out["sharpness"] = worst_case_sharpness(
        loss_fn, params, opts["sigma"], opts["ascent_steps"], generator=g
    )
    for key, mag in (("pacbayes_flatness", False), ("pacbayes_mag_flatness", True)):
        s = pacbayes_sigma(
            loss_fn, params, opts["tol"], opts["mc_samples"], mag, opts["bisect_steps"], generator=g
        )
        out[key] = 1 / s**2
    matvec, n = hessian_matvec(loss_fn, params)
    out["hessian_top"] = float(top_eigenvalues(matvec, n, 1, steps=20, generator=g)[0])
    out["hessian_trace"] = hutchinson_trace(loss_fn, params, opts["hutchinson"], g)
    return {k: float(out[k]) for k in MEASURES}


# -- the measures of a stored run ---------------------------------------------------------------


def _cpu(config: dict[str, Any]):
    return validate_config(
        {**config, "train": {**config.get("train", {}), "device": "cpu"}}, stored=True
    )


def run_measures(
    config: dict[str, Any], run_dir: Path, options: dict[str, Any] | None = None
) -> tuple[int, dict[str, float]]:
    """``(step, measures)`` of a run's latest checkpoint (:func:`learnscope.runner.restore`),
    on the first ``rows`` rows of its training split, with the loss the run evaluates (its
    ``train/loss``); the initial weights are rebuilt from the run's seed. Classification runs
    only."""
    from learnscope import runner

    opts = _options(options)
    trainer, step = runner.restore(config, run_dir)
    if trainer.task.kind != "classification":
        raise UserError(
            f"measures: run of task {trainer.task.name!r} ({trainer.task.kind}); allowed: "
            "classification tasks"
        )
    initial = runner.build(_cpu(config)).model
    split = trainer.task.split("train")
    x, y = split["x"][: opts["rows"]], split["y"][: opts["rows"]]
    return step, model_measures(trainer.model, initial, x, y, trainer.objective.plain_loss, opts)


def _options(options: dict[str, Any] | None) -> dict[str, Any]:
    options = dict(options or {})
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise UserError(f"measures: unknown option {unknown[0]!r}; allowed: {', '.join(DEFAULTS)}")
    return {**DEFAULTS, **options}


def cached_measures(
    store: Store, run_id: str, options: dict[str, Any] | None = None
) -> dict[str, float]:
    """A finished run's measures: read from its stored metrics (``gen/<name>`` at the step of
    its latest checkpoint) when all are there, else computed (:func:`run_measures`) and added
    to them (:func:`learnscope.runner.annotate`). The stored values are those of the first
    computation: other ``options`` later do not measure the run again."""
    from learnscope import checkpoint, runner

    rec = store.run(run_id)
    found = checkpoint.steps(Path(rec["dir"]) / "checkpoints")
    if found:
        table = store.metrics(run_id, [PREFIX + m for m in MEASURES])
        at = table[table["step"] == max(found)]
        if len(at) and set(at["name"]) == {PREFIX + m for m in MEASURES}:
            return {n[len(PREFIX) :]: float(v) for n, v in zip(at["name"], at["value"])}
    step, values = run_measures(rec["config"], Path(rec["dir"]), options)
    runner.annotate(store, run_id, step, {PREFIX + k: v for k, v in values.items()})
    return values


# -- Kendall's tau, plain and granulated --------------------------------------------------------


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of ``x`` and ``y`` over the pairs where both are finite: ``(n_c - n_d) /
    sqrt((n_0 - n_x)(n_0 - n_y))`` (concordant minus discordant pairs over the pairs untied in
    each; Kendall 1945), NaN with fewer than 2 points or a constant side.

    >>> kendall_tau([1, 2, 3], [1, 3, 2]), kendall_tau([1, 2], [2, 1])
    (0.3333333333333333, -1.0)
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 2:
        return math.nan
    i, j = np.triu_indices(len(a), 1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    denom = math.sqrt(float((da != 0).sum()) * float((db != 0).sum()))
    return float((da * db).sum() / denom) if denom else math.nan


@dataclass
class Correlation:
    """Per measure: Kendall's tau over every member (``overall``), the granulated ``psi`` per
    axis and their mean ``Psi``, and whether every ``psi_i`` has one sign (``same_sign``);
    ``groups[axis]``: how many combinations of the other axes gave a tau."""

    target: str
    axes: list[str]
    overall: dict[str, float]
    psi: dict[str, dict[str, float]]  # measure -> axis -> psi_i
    groups: dict[str, int]
    members: int
    values: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    def granulated(self, measure: str) -> float:
        vals = [v for v in self.psi[measure].values() if math.isfinite(v)]
        return float(np.mean(vals)) if vals else math.nan

    def same_sign(self, measure: str) -> bool:
        vals = list(self.psi[measure].values())
        return bool(vals) and (all(v > 0 for v in vals) or all(v < 0 for v in vals))

    def table(self) -> pd.DataFrame:
        rows = []
        for m in self.overall:
            rows.append(
                {"measure": m, "tau": self.overall[m], "Psi": self.granulated(m)}
                | {a: self.psi[m][a] for a in self.axes}
                | {"same_sign": self.same_sign(m)}
            )
        return pd.DataFrame(rows).set_index("measure")

    def summary(self) -> dict[str, float]:
        """Flat numbers (a study's measure): ``tau/<m>``, ``Psi/<m>``, ``psi/<axis>/<m>``,
        ``same_sign/<m>`` (1 or 0), ``same_sign_count`` and ``measures``."""
        out: dict[str, float] = {
            "members": float(self.members),
            "measures": float(len(self.overall)),
        }
        for m in self.overall:
            out[f"tau/{m}"] = self.overall[m]
            out[f"Psi/{m}"] = self.granulated(m)
            out[f"same_sign/{m}"] = float(self.same_sign(m))
            for a in self.axes:
                out[f"psi/{a.split('.')[-1]}/{m}"] = self.psi[m][a]
        out["same_sign_count"] = float(sum(self.same_sign(m) for m in self.overall))
        return out


def granulated_taus(
    frame: pd.DataFrame,
    axes: list[str],
    target: str,
    measures: Sequence[str],
    given: Sequence[str] = (),
) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """``psi[measure][axis]`` (Jiang et al. eq. 4) over the rows of ``frame`` (one per member;
    columns: the ``axes``, the ``given`` conditioning columns such as the seed, ``target`` and
    the measures): for each axis, the rows grouped by every other axis and ``given`` column, the
    tau within each group of two rows or more, averaged over the groups where it is defined.

    >>> f = pd.DataFrame({"a": [0, 0, 1, 1], "b": [0, 1, 0, 1], "g": [1., 2., 3., 4.],
    ...                   "m": [1., 2., 4., 3.]})
    >>> psi, groups = granulated_taus(f, ["a", "b"], "g", ["m"])
    >>> psi["m"], groups
    ({'a': 1.0, 'b': 0.0}, {'a': 2, 'b': 2})
    """
    psi: dict[str, dict[str, float]] = {m: {} for m in measures}
    groups: dict[str, int] = {}
    for axis in axes:
        others = [a for a in axes if a != axis] + list(given)
        parts = [frame] if not others else [g for _, g in frame.groupby(others, dropna=False)]
        taus = {m: [] for m in measures}
        used = 0
        for part in parts:
            if part[axis].nunique() < 2:
                continue
            used += 1
            for m in measures:
                t = kendall_tau(part[m], part[target])
                if math.isfinite(t):
                    taus[m].append(t)
        groups[axis] = used
        for m in measures:
            psi[m][axis] = float(np.mean(taus[m])) if taus[m] else math.nan
    return psi, groups


def correlate(
    store: Store,
    sweep_id: str,
    target: str = "gap",
    options: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    min_train_acc: float = 0.0,
) -> Correlation:
    """The measures of every trained member (:data:`TRAINED`) of a sweep (cached in the store)
    against its generalisation gap ``target`` (:data:`TARGETS`): Kendall's tau overall and
    granulated. ``min_train_acc``: only members whose final training accuracy reaches it count
    (Jiang et al. keep only the models trained to the same cross-entropy, 0.01, about 99 %
    training accuracy: an under-trained model's small gap would otherwise dominate the
    taus)."""
    from learnscope.sweep import member_table

    if target not in TARGETS:
        raise UserError(f"--target: unknown target {target!r}; allowed: {', '.join(TARGETS)}")
    _options(options)
    frame = member_table(store, sweep_id)
    if not len(frame):
        raise UserError(f"sweep {sweep_id}: no members yet")
    axes = [a for a in frame.attrs["axes"] if a != "seed"]
    given = ["seed"] if "seed" in frame.columns else []
    if not 0 <= min_train_acc <= 1:
        raise UserError(f"--min-train-acc: must be in [0, 1] (got {min_train_acc})")
    fitted = pd.to_numeric(frame["train_acc"], errors="coerce").fillna(-1) >= min_train_acc
    frame = frame[frame["status"].isin(TRAINED) & fitted].reset_index(drop=True)
    if len(frame) < 2:
        raise UserError(
            f"sweep {sweep_id}: fewer than 2 members trained to the end (finished or stopped by "
            f"train.stop_when) with a training accuracy >= {min_train_acc}; nothing to rank"
        )
    rows = []
    for i, run_id in enumerate(frame["run"]):
        summary = store.run(run_id)["summary"] or {}
        values = cached_measures(store, run_id, options)
        values["gap"] = _diff(summary.get("train_acc"), summary.get("test_acc"))
        values["loss_gap"] = _diff(summary.get("test_loss"), summary.get("train_loss"))
        rows.append(values)
        if progress:
            progress(i + 1, len(frame))
    values = pd.concat([frame[["run", *axes, *given]], pd.DataFrame(rows)], axis=1)
    overall = {m: kendall_tau(values[m], values[target]) for m in MEASURES}
    psi, groups = granulated_taus(values, axes, target, MEASURES, given)
    return Correlation(target, axes, overall, psi, groups, len(values), values)


def _diff(a: Any, b: Any) -> float:
    try:
        return float(a) - float(b)
    except (TypeError, ValueError):
        return math.nan


# -- the study: a small sweep per seed ------------------------------------------------------


#: the study's options: the sweep spec, the target, :data:`DEFAULTS` overrides, processes
STUDY_DEFAULTS: dict[str, Any] = {
    "sweep": None,
    "target": "gap",
    "measures": {},
    "workers": 1,
    "min_train_acc": 0.0,
}


def measure(options: dict[str, Any], seed: int, store: Store, progress=None) -> dict[str, float]:
    """The sweep spec ``options["sweep"]`` (a built-in name or a YAML path) run at ``seed`` (its
    members' seeds and its task's data seed offset by ``seed``) in one process, then
    :func:`correlate` on it (only the members whose training accuracy reaches ``min_train_acc``;
    fewer than two: ``same_sign_count`` NaN): ``tau/<m>``, ``Psi/<m>``, ``psi/<axis>/<m>``,
    ``same_sign/<m>`` and ``same_sign_count`` (:meth:`Correlation.summary`)."""
    from learnscope.studies.study import check_options
    from learnscope.sweep import load_spec, run_sweep

    opts = check_options(options, STUDY_DEFAULTS, "gen-measures")
    if not opts["sweep"]:
        raise UserError("options.sweep: give a sweep spec (a built-in name or a YAML path)")
    spec = load_spec(opts["sweep"])
    data = copy.deepcopy(spec.model_dump(mode="json"))
    base = data.get("config") or {}
    data["set"] = {
        **data.get("set", {}),
        "seed": int(base.get("seed", 0)) + seed,
        "task.seed": int(base.get("task", {}).get("seed", 0)) + seed,
    }
    data["name"] = f"{spec.name}-seed{seed}"
    sweep_id = run_sweep(load_spec(data), store, workers=opts["workers"])
    if progress:
        progress(0.8)
    try:
        corr = correlate(
            store, sweep_id, opts["target"], opts["measures"], min_train_acc=opts["min_train_acc"]
        )
    except UserError:  # no two members fitted: nothing ranked, nothing holds
        return {"members": 0.0, "same_sign_count": math.nan}
    return corr.summary()


def cached_taus(store, sweep_id: str, runs: list, target: str = "gap"):
    """``(table, axes, members)`` of the Kendall taus (:meth:`Correlation.table`) over the
    sweep's trained members whose every measure is cached (``gen/<name>`` in their metrics);
    None when fewer than 2 such members. Nothing is measured here."""
    from learnscope.sweep import member_table

    frame = member_table(store, sweep_id)
    if not len(frame):
        return None
    by_id = {r.id: r for r in runs}
    names = [PREFIX + m for m in MEASURES]
    rows, keep = [], []
    for i, run_id in enumerate(frame["run"]):
        r = by_id.get(run_id)
        if r is None or frame["status"].iloc[i] not in TRAINED:
            continue
        # as cached_measures reads them: every measure at one step (a NaN one included,
        # e.g. a margin-normalised measure of a model with a negative margin)
        long = store.metrics(run_id, names)
        at = long[long["step"] == long["step"].max()] if len(long) else long
        if set(at["name"]) != set(names):
            continue
        values = {n[len(PREFIX) :]: float(v) for n, v in zip(at["name"], at["value"])}
        values["gap"] = _difference(r.summary.get("train_acc"), r.summary.get("test_acc"))
        values["loss_gap"] = _difference(r.summary.get("test_loss"), r.summary.get("train_loss"))
        rows.append(values)
        keep.append(i)
    if len(rows) < 2:
        return None
    axes = [a for a in frame.attrs["axes"] if a != "seed"]
    given = ["seed"] if "seed" in frame.columns else []
    members = frame.iloc[keep].reset_index(drop=True)[["run", *axes, *given]]
    values = pd.concat([members, pd.DataFrame(rows)], axis=1)
    overall = {m: kendall_tau(values[m], values[target]) for m in MEASURES}
    psi, groups = granulated_taus(values, axes, target, MEASURES, given)
    corr = Correlation(target, axes, overall, psi, groups, len(values), values)
    return corr.table(), axes, len(values)


def _difference(a: Any, b: Any) -> float:
    try:
        return float(a) - float(b)
    except (TypeError, ValueError):
        return math.nan
