"""Continual learning: task sequences, EWC, and remedies for the loss of plasticity.

A ``sequence`` task (:mod:`learnscope.tasks.sequence_of_tasks`) holds tasks trained one after
another. The runner calls :func:`setup` on every trainer it builds; for a sequence task (or
``train.plasticity``) it adds a :class:`Continual` callback, which

- swaps the trainer's ``train`` split for the next task's every ``steps_per_task`` steps
  (and starts a new epoch over it), so the loop itself does not know about tasks;
- with ``train.ewc``, before each switch, computes the diagonal Fisher of the finished task
  (:func:`fisher_diagonal`) and adds it to the EWC penalty (:class:`EWCObjective`);
- with ``train.plasticity``, applies continual backprop (:class:`ContinualBackprop`) or
  shrink-and-perturb (:func:`shrink_perturb_`) after optimiser steps.

After training, :func:`summary` reads each task's test accuracy off the stored series.

Papers: Kirkpatrick et al. 2017 (PNAS), "Overcoming catastrophic forgetting in neural
networks"; Dohare et al. 2024 (Nature), "Loss of plasticity in deep continual learning"; Ash &
Adams 2020, "On warm-starting neural network training" (shrink and perturb); Chaudhry et al.
2018 (average accuracy and forgetting).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev

from learnscope.errors import UserError
from learnscope.train.loop import Callback

# -- the Fisher information ------------------------------------------------------------------


def fisher_diagonal(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    likelihood: str = "categorical",
    fisher: str = "true",
) -> dict[str, torch.Tensor]:
    """Diagonal Fisher information of ``model``'s trainable parameters on inputs ``x: (n,
    ...)`` with labels ``y: (n,)`` (Kirkpatrick et al. 2017, eq. 3 and its supplement):

        F_i = 1/n sum_x E_{y ~ p(y | x)} [ (d log p_theta(y | x) / d theta_i)^2 ]   (true)
        F_i = 1/n sum_(x, y) (d log p_theta(y | x) / d theta_i)^2                   (empirical)

    from per-example gradients (never the square of a batch gradient). ``likelihood``:
    ``categorical`` (``p = softmax(f(x))``; the expectation over ``y`` is exact: ``sum_y p_y
    g_y^2`` with ``g_y = J_y - sum_c p_c J_c``, ``J`` the Jacobian of the logits), or
    ``gaussian`` (``p = N(f(x), I)`` against the one-hot target, the MSE loss: the true Fisher
    is ``sum_k J_k^2``; the empirical one ``(sum_k (f_k - t_k) J_k)^2``).

    Closed forms (tested): for a linear softmax model ``logits = W x``, the true Fisher of
    ``W[c, j]`` is ``mean_x p_c (1 - p_c) x_j^2``; for a linear model with the Gaussian
    likelihood, ``diag(X^T X / n)`` per output row.

    >>> lin = nn.Linear(2, 1, bias=False)
    >>> x = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    >>> fisher_diagonal(lin, x, torch.zeros(2, dtype=torch.long), "gaussian")["weight"].tolist()
    [[5.0, 2.0]]
    """
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    was_training = model.training
    model.eval()

    def logits(p: dict[str, torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (p, buffers), (rows,))[0]  # (C,) of a one-row batch

    jacobian = jacrev(logits)  # name -> (C, *shape); row by row (a one-hot input cannot vmap)
    out = {n: torch.zeros_like(p) for n, p in params.items()}
    try:
        for i in range(len(x)):
            jac = jacobian(params, x[i : i + 1])
            with torch.no_grad():
                f = logits(params, x[i : i + 1])  # (C,)
                for name, j in jac.items():
                    j = j.flatten(1)  # (C, P)
                    if likelihood == "categorical":
                        p = F.softmax(f.double(), -1).to(j.dtype)  # (C,)
                        g = j - p @ j  # d log p_y / d theta, (C, P)
                        sq = p @ (g * g) if fisher == "true" else g[y[i]].pow(2)
                    elif fisher == "true":
                        sq = (j * j).sum(0)
                    else:
                        r = f - F.one_hot(y[i], f.shape[-1]).to(f.dtype)  # (C,)
                        sq = (r @ j).pow(2)
                    out[name] += sq.view_as(out[name])
    finally:
        model.train(was_training)
    return {name: v / len(x) for name, v in out.items()}


class EWCObjective:
    """An objective with the EWC penalty added to its training loss (Kirkpatrick et al. 2017):

        L(theta) = L_task(theta) + sum_t sum_i lambda/2 F^t_i (theta_i - theta*^t_i)^2

    summed over the finished tasks ``t`` (Fisher ``F^t`` and weights ``theta*^t`` at the end
    of task ``t``). It is kept in closed form, ``A = sum_t F^t``, ``m = sum_t F^t theta*^t / A``
    and ``c = sum_t F^t theta*^t^2 - A m^2``, so that the penalty, ``lambda/2 (sum_i A_i
    (theta_i - m_i)^2 + c)``, costs one pass over the weights however many tasks came
    before. Everything else (forward, evaluate, loss, ...) is the wrapped objective's.

    >>> ewc = EWCObjective(None, lam=2.0)
    >>> w = nn.Linear(1, 1, bias=False); _ = w.weight.data.fill_(3.0)
    >>> ewc.consolidate(w, {"weight": torch.tensor([[1.0]])})   # anchor 3, F = 1
    >>> _ = w.weight.data.fill_(1.0); ewc.penalty(w).item()     # 2/2 * 1 * (1 - 3)^2
    4.0
    """

    def __init__(self, inner: Any, lam: float) -> None:
        self.inner, self.lam = inner, lam
        self.precision: dict[str, torch.Tensor] = {}  # A, float64
        self.weighted: dict[str, torch.Tensor] = {}  # sum_t F^t theta*^t, float64
        self.squares: dict[str, torch.Tensor] = {}  # sum_t F^t theta*^t^2, float64
        self.tasks = 0
        self._mean: dict[str, torch.Tensor] = {}
        self._const = 0.0
        self._cast: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.last_penalty = 0.0

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def consolidate(self, model: nn.Module, fisher: dict[str, torch.Tensor]) -> None:
        """Add a finished task: its Fisher ``fisher`` and the weights ``model`` has now."""
        for name, p in model.named_parameters():
            if name not in fisher:
                continue
            f, a = fisher[name].detach().double(), p.detach().double()
            if name not in self.precision:
                self.precision[name] = torch.zeros_like(a)
                self.weighted[name] = torch.zeros_like(a)
                self.squares[name] = torch.zeros_like(a)
            self.precision[name] += f
            self.weighted[name] += f * a
            self.squares[name] += f * a * a
        self.tasks += 1
        self._refresh()

    def _refresh(self) -> None:
        self._mean, const = {}, 0.0
        for name, a in self.precision.items():
            mean = torch.where(a > 0, self.weighted[name] / a.clamp_min(1e-300), 0.0)
            const += float((self.squares[name] - a * mean * mean).sum())
            self._mean[name] = mean
        self._const = max(const, 0.0)
        self._cast = {}

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """``lambda/2 sum_t sum_i F^t_i (theta_i - theta*^t_i)^2`` (0 before the first task)."""
        total = None
        model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper: the same weights
        for name, p in model.named_parameters():
            if name not in self.precision:
                continue
            if name not in self._cast or self._cast[name][0].device != p.device:
                self._cast[name] = (
                    self.precision[name].to(p.device, p.dtype),
                    self._mean[name].to(p.device, p.dtype),
                )
            a, m = self._cast[name]
            term = (a * (p - m).pow(2)).sum()
            total = term if total is None else total + term
        if total is None:
            return torch.zeros(())
        return 0.5 * self.lam * (total + self._const)

    def train_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = self.inner.train_loss(model, batch)
        if not self.tasks:
            return loss
        pen = self.penalty(model)
        self.last_penalty = pen.detach()
        return loss + pen.to(loss.device)

    def state_dict(self) -> dict[str, Any]:
        return {
            "inner": self.inner.state_dict(),
            "ewc": {
                "precision": self.precision,
                "weighted": self.weighted,
                "squares": self.squares,
                "tasks": self.tasks,
            },
        }

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        self.inner.load_state_dict(state.get("inner", {}), model)
        ewc = state.get("ewc", {})
        self.precision = dict(ewc.get("precision", {}))
        self.weighted = dict(ewc.get("weighted", {}))
        self.squares = dict(ewc.get("squares", {}))
        self.tasks = int(ewc.get("tasks", 0))
        self._refresh()


# -- plasticity ----------------------------------------------------------------------------


@torch.no_grad()
def shrink_perturb_(
    params: list[torch.Tensor], shrink: float, noise: float, generator: torch.Generator
) -> None:
    """Shrink and perturb in place (Ash & Adams 2020; Dohare et al. 2024 apply it every step):
    ``theta <- shrink * theta + noise * eps``, ``eps ~ N(0, I)`` drawn from ``generator``.

    >>> w = torch.tensor([2.0, -4.0])
    >>> shrink_perturb_([w], 0.5, 0.0, torch.Generator()); w.tolist()
    [1.0, -2.0]
    """
    for p in params:
        p.mul_(shrink)
        if noise:
            eps = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
            p.add_(eps, alpha=noise)


class ContinualBackprop:
    """Continual backprop (Dohare et al. 2024, generate-and-test, ``lop/algos/gnt.py``) on the
    hidden layers of an MLP (``layers.{l}.linear`` into ``layers.{l}.hook_post``, read by the
    next linear layer). After every optimiser step, per hidden unit ``i`` of layer ``l``, with
    ``h_i`` its activations on the training batch:

        age_i <- age_i + 1
        f_i   <- eta f_i + (1 - eta) mean_b h_i                   (mean activation)
        u_i   <- eta u_i + (1 - eta) mean_b |h_i| * mean_k |W_out[k, i]|   (contribution)
        u^_i  =  u_i / (1 - eta^age_i)                            (bias-corrected)

    and ``n_l <- n_l + rho |{i: age_i > m}|``; the ``floor(n_l)`` mature units of lowest
    ``u^`` are replaced (and ``n_l`` lowered by as many): ``W_in[i, :]`` drawn anew from the
    layer's default init ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``b_in[i] = 0``, the next
    layer's bias ``+= W_out[:, i] f^_i`` (the mean of the removed contribution is kept),
    ``W_out[:, i] = 0``, ``u_i = f_i = age_i = 0``, and the optimiser's moments of those rows
    and columns zeroed.
    """

    def __init__(
        self, model: nn.Module, rate: float, maturity: int, decay: float, seed: int = 0
    ) -> None:
        layers = getattr(model, "layers", None)
        if layers is None or not hasattr(model, "out"):
            raise UserError("train.plasticity: continual_backprop needs an MLP (model.kind: mlp)")
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise UserError("train.plasticity: continual_backprop needs an MLP without batchnorm")
        self.model, self.rate, self.maturity, self.decay = model, rate, maturity, decay
        self.pairs = []  # (linear in, linear out, hook site)
        for i, layer in enumerate(layers):
            nxt = layers[i + 1].linear if i + 1 < len(layers) else model.out
            self.pairs.append((layer.linear, nxt, layer.hook_post))
        width = [lin.out_features for lin, _, _ in self.pairs]
        self.util = [torch.zeros(w) for w in width]
        self.mean = [torch.zeros(w) for w in width]
        self.age = [torch.zeros(w, dtype=torch.long) for w in width]
        self.pending = [0.0 for _ in width]
        self.replaced = 0  # units replaced so far
        self.generator = torch.Generator().manual_seed(seed + 7919)
        self.acts: list[torch.Tensor | None] = [None] * len(width)
        self.handles: list = []

    def attach(self) -> None:
        """Read each hidden layer's activations on training batches (forward hooks)."""
        self.detach()
        for i, (_, _, site) in enumerate(self.pairs):

            def keep(module, inputs, output, i=i):
                if module.training:
                    self.acts[i] = output.detach()

            self.handles.append(site.register_forward_hook(keep))

    def detach(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    @torch.no_grad()
    def step(self, optimizer: torch.optim.Optimizer | None) -> list[torch.Tensor]:
        """Update utilities and replace units; returns the replaced units per layer."""
        out = []
        for i, (_, nxt, _) in enumerate(self.pairs):
            h = self.acts[i]
            if h is None:
                out.append(torch.empty(0, dtype=torch.long))
                continue
            h = h.reshape(-1, h.shape[-1]).float().cpu()
            w_out = nxt.weight.detach().abs().float().mean(0).cpu()
            self.age[i] += 1
            self.mean[i].mul_(self.decay).add_((1 - self.decay) * h.mean(0))
            self.util[i].mul_(self.decay).add_((1 - self.decay) * h.abs().mean(0) * w_out)
            out.append(self._replace(i, optimizer))
        return out

    def _replace(self, i: int, optimizer) -> torch.Tensor:
        eligible = (self.age[i] > self.maturity).nonzero()[:, 0]
        self.pending[i] += self.rate * len(eligible)
        n = int(self.pending[i])
        if n == 0 or not len(eligible):
            return torch.empty(0, dtype=torch.long)
        n = min(n, len(eligible))
        self.pending[i] -= n
        corrected = self.util[i] / (1 - self.decay ** self.age[i].double()).float()
        units = eligible[corrected[eligible].argsort()[:n]]
        self.reinit(i, units, optimizer)
        return units

    @torch.no_grad()
    def reinit(self, i: int, units: torch.Tensor, optimizer=None) -> None:
        """Replace hidden ``units`` of layer ``i`` (see the class docstring)."""
        lin, nxt, _ = self.pairs[i]
        dev = lin.weight.device
        idx = units.to(dev)
        bound = 1 / math.sqrt(lin.in_features)
        fresh = torch.rand((len(units), lin.in_features), generator=self.generator)
        lin.weight[idx] = ((2 * fresh - 1) * bound).to(dev, lin.weight.dtype)
        if lin.bias is not None:
            lin.bias[idx] = 0.0
        corrected = self.mean[i] / (1 - self.decay ** self.age[i].double()).float()
        if nxt.bias is not None:
            nxt.bias += nxt.weight[:, idx] @ corrected[units].to(dev, nxt.weight.dtype)
        nxt.weight[:, idx] = 0.0
        self.util[i][units] = 0.0
        self.mean[i][units] = 0.0
        self.age[i][units] = 0
        self.replaced += len(units)
        if optimizer is None:
            return
        for param, rows in ((lin.weight, True), (lin.bias, True), (nxt.weight, False)):
            state = optimizer.state.get(param, {}) if param is not None else {}
            for key in ("exp_avg", "exp_avg_sq", "momentum_buffer"):
                buf = state.get(key)
                if isinstance(buf, torch.Tensor) and buf.shape == param.shape:
                    if rows:
                        buf[idx] = 0.0
                    else:
                        buf[:, idx] = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {
            "util": self.util,
            "mean": self.mean,
            "age": self.age,
            "pending": self.pending,
            "replaced": self.replaced,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.util, self.mean, self.age = state["util"], state["mean"], state["age"]
        self.pending, self.replaced = list(state["pending"]), int(state["replaced"])
        self.generator.set_state(state["generator"])


# -- the callback ----------------------------------------------------------------------------


class Continual(Callback):
    """Task switches (``sequence`` tasks), EWC consolidation and plasticity remedies; see the
    module docstring. Added by :func:`setup` before the runner's callbacks, so a checkpoint
    written at a switch holds the consolidated penalty and the new task's split."""

    def __init__(self, trainer, task, cfg, seed: int) -> None:
        self.task = task if getattr(task, "name", None) == "sequence" else None
        self.ewc = cfg.ewc
        self.plasticity = cfg.plasticity
        self.seed = seed
        self.active: int | None = None
        self.cbp = None
        self.generator = torch.Generator().manual_seed(seed + 104729)
        if self.plasticity is not None and self.plasticity.kind == "continual_backprop":
            pl = self.plasticity
            self.cbp = ContinualBackprop(trainer.model, pl.replacement_rate, pl.maturity,
                                         pl.decay, seed)  # fmt: skip

    # state kept with the objective (checkpointed with the trainer), see ContinualState
    def state_dict(self) -> dict[str, Any]:
        return {
            "cbp": self.cbp.state_dict() if self.cbp is not None else {},
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.cbp is not None:
            self.cbp.load_state_dict(state.get("cbp", {}))
        if "generator" in state:
            self.generator.set_state(state["generator"])

    def on_train_start(self, trainer) -> None:
        if self.cbp is not None:
            self.cbp.attach()
        if self.task is not None:  # a resumed run keeps the data order of its checkpoint
            self._install(trainer, self.task.active_task(trainer.step), new_epoch=False)

    def _install(self, trainer, k: int, new_epoch: bool = True) -> None:
        trainer.splits["train"] = self.task.train_splits[k].to(trainer.device)
        if new_epoch:  # the order of the previous task's rows does not apply to these
            trainer.order, trainer.cursor = torch.empty(0, dtype=torch.long), 0
        self.active = k

    def on_step_end(self, trainer, step: int, loss: float) -> None:
        pl = self.plasticity
        if self.cbp is not None:
            self.cbp.step(trainer.optimizer)
        elif pl is not None and pl.when == "step":
            self._shrink_perturb(trainer)
        if self.task is not None and self.task.active_task(step) != self.active:
            if self.ewc is not None:
                self._consolidate(trainer)
            if pl is not None and pl.kind == "shrink_perturb" and pl.when == "task":
                self._shrink_perturb(trainer)
            self._install(trainer, self.task.active_task(step))
        if self.ewc is not None:
            trainer.last_terms["train_step/ewc_penalty"] = torch.as_tensor(
                trainer.objective.last_penalty
            )
        if self.cbp is not None:
            trainer.last_terms["train_step/units_replaced"] = torch.tensor(float(self.cbp.replaced))

    def _shrink_perturb(self, trainer) -> None:
        params = [p for p in trainer.model.parameters() if p.requires_grad]
        shrink_perturb_(params, self.plasticity.shrink, self.plasticity.noise, self.generator)

    def _consolidate(self, trainer) -> None:
        """Fisher of the finished task on ``samples`` of its training rows (a seeded draw)."""
        split = self.task.train_splits[self.active]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.active)
        rows = torch.randperm(len(split), generator=g)[: self.ewc.samples]
        batch = split.rows(rows)
        likelihood = "gaussian" if trainer.cfg.loss == "mse" else "categorical"
        fisher = fisher_diagonal(
            trainer.model,
            batch["x"].to(trainer.device),
            batch["y"].to(trainer.device),
            likelihood,
            self.ewc.fisher,
        )
        trainer.objective.consolidate(trainer.model, fisher)

    def on_train_end(self, trainer, status: str) -> None:
        if self.cbp is not None:
            self.cbp.detach()


class ContinualState:
    """The objective of a run with ``train.plasticity`` (and no EWC): the task objective, with
    the :class:`Continual` callback's state checkpointed beside it."""

    def __init__(self, inner: Any, callback: Continual) -> None:
        self.inner, self.callback = inner, callback

    def __getattr__(self, name: str) -> Any:
        if name in ("inner", "callback"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def train_loss(self, model, batch):
        return self.inner.train_loss(model, batch)

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "continual": self.callback.state_dict()}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        self.inner.load_state_dict(state.get("inner", {}), model)
        self.callback.load_state_dict(state.get("continual", {}))


def setup(trainer, cfg) -> None:
    """Make ``trainer`` (just built by the runner for ``cfg``) continual where ``cfg`` asks:
    a ``sequence`` task, ``train.ewc`` or ``train.plasticity``. Refuses the options that do
    not go together with a :class:`UserError` naming the field."""
    t, task = cfg.train, trainer.task
    sequence = getattr(task, "name", None) == "sequence"
    if not sequence and t.ewc is None and t.plasticity is None:
        return
    if t.ewc is not None and not sequence:
        raise UserError("train.ewc: needs a sequence of tasks (task.name: sequence)")
    if sequence:
        spt = task.params.steps_per_task
        if spt % t.eval_every:
            raise UserError(
                f"train.eval_every: {t.eval_every} must divide task.steps_per_task ({spt}), so "
                "that every task is evaluated at its last step"
            )
        if t.sampler != "uniform":
            raise UserError("train.sampler: a sequence of tasks draws uniformly; allowed: uniform")
        if t.objective != "task":
            raise UserError("train.objective: a task sequence trains on its tasks; allowed: task")
    if getattr(t, "compile", False) and t.plasticity is not None:
        raise UserError("train.compile: not with train.plasticity (its hooks); allowed: false")
    callback = Continual(trainer, task, t, cfg.seed)
    if t.ewc is not None:
        trainer.objective = EWCObjective(ContinualState(trainer.objective, callback), t.ewc.lambda_)
    elif t.plasticity is not None:
        trainer.objective = ContinualState(trainer.objective, callback)
    trainer.add_callback(callback)


def summary(trainer, table) -> dict[str, float]:
    """Per-task accuracies of a ``sequence`` run, read off its metric ``table`` (wide: one row
    per step): for each task ``k`` trained, ``task{k}_final_acc`` (at the last eval),
    ``task{k}_best_acc`` (the highest over the run) and ``task{k}_end_acc`` (at the end of its
    own training, step ``(k+1) steps_per_task``); ``avg_acc``, the mean final accuracy over
    the tasks trained (Chaudhry et al. 2018's average accuracy); ``old_task_acc``, the same
    without the last task; ``forgetting``, ``best - final`` averaged over the tasks before the
    last; ``new_task_acc_first`` and ``new_task_acc_last``, the mean ``end_acc`` of the first
    and of the last ``window`` tasks trained (Dohare et al. 2024: accuracy on each new task),
    and ``new_task_acc_drop``, their difference."""
    task = trainer.task
    if getattr(task, "name", None) != "sequence" or table is None or not len(table):
        return {}
    spt = task.params.steps_per_task
    trained = min(task.n_tasks, max(1, math.ceil(trainer.step / spt)))
    out: dict[str, float] = {}
    final, best, end = [], [], []
    for k in range(trained):
        column = f"task{k}/test/acc"
        if column not in table:
            return out
        series = table[column].dropna()
        if not len(series):
            return out
        at_end = series[series.index <= (k + 1) * spt]
        final.append(float(series.iloc[-1]))
        best.append(float(series.max()))
        end.append(float(at_end.iloc[-1]) if len(at_end) else float(series.iloc[-1]))
        out[f"task{k}_final_acc"] = final[-1]
        out[f"task{k}_best_acc"] = best[-1]
        out[f"task{k}_end_acc"] = end[-1]
    out["avg_acc"] = sum(final) / trained
    if trained > 1:
        out["old_task_acc"] = sum(final[:-1]) / (trained - 1)
        out["forgetting"] = sum(b - f for b, f in zip(best[:-1], final[:-1])) / (trained - 1)
    w = min(task.params.window, trained)
    out["new_task_acc_first"] = sum(end[:w]) / w
    out["new_task_acc_last"] = sum(end[-w:]) / w
    out["new_task_acc_drop"] = out["new_task_acc_first"] - out["new_task_acc_last"]
    return out
