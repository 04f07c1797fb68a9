"""K same-shaped members trained at once, as one batched computation.

The members' parameters are stacked along a leading member axis (``stack_module_state``:
``W: (K, out, in)``) and every layer runs as one batched matmul for all members; autograd
differentiates the sum of the members' losses, whose gradient with respect to member k's slice
is exactly member k's own gradient (the members share no parameter). The forward pass is
``vmap`` of the model's unchanged ``forward`` with each member's weights in its slots
(:func:`stacked_forward`), so a model has one forward; it works for any model without buffers
that change (BatchNorm) or randomness (dropout), the cases :func:`ensemble_key` sends to the
plain loop. (A hand-written batched-matmul forward for the MLP was measured at 1.07-1.13x the
``vmap`` path on medium members, ``benchmarks/ensemble_speedup.py``, and removed.) Sequence
members train alone: on a CPU the stacked step of K = 4-8 of the recipes' GPTs was measured
at 0.74-0.98x a loop over them (``benchmarks/ensemble_gpt.py``), so stacking would not pay.

What may differ between members (everything else is the group's :func:`ensemble_key`):
``seed`` (initialisation and data order), ``train.lr``, ``train.weight_decay``,
``train.schedule`` and its knobs, ``model.init_scale`` / ``init_std``, and the task's ``seed``,
``train_fraction`` and ``noise`` (each member's splits are its own task's; splits of unequal
size are padded and masked, and the loss of member k is ``sum_i m_ki l_ki / n_k``).

All parameters live in one flat tensor (each parameter's K members one contiguous block, see
``Ensemble._flat_views``), and so do their gradients, so the optimiser updates everything with
one operation per term of its formula. The optimisers are line for line PyTorch's single-tensor
AdamW / Adam / SGD (``torch/optim/adamw.py``) with each member's learning rate and weight decay
spread over its elements, so a member follows the trajectory of its separate run to float
rounding (``tests/train/test_ensemble.py`` checks it against ``runner.execute``). Optimiser
state and scratch are allocated once; a step allocates only what autograd allocates for
activations.

Each member is a :class:`Member`: it offers its callbacks what a
:class:`~learnscope.train.loop.Trainer` offers (``cfg``, ``task``, ``model``, ``objective``,
``splits``, ``step``, ``status``, ``should_stop``, ``state_dict()``, ``publish``), so the run
pipeline (``learnscope.runner``) gives a member the same divergence guard, probes, store
logger and checkpoints as a single run. ``member.model`` is a model of its own (built with the
member's seed, kept in eval mode) into which the member's slice of the stacked weights is
copied when a callback reads it; ``member.state_dict()`` is the trainer's checkpoint format
(model, optimiser, scheduler, data order), so ``learnscope run --resume`` continues a member
with the plain trainer. A member stops on its own (its first non-finite loss, or a callback
setting ``should_stop``) without stopping the others: from then on its slice is no longer
read.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import stack_module_state, vmap

from learnscope.config import RunConfig
from learnscope.models import build_model
from learnscope.tasks import Task, make_task
from learnscope.train.callbacks import Checkpointer, DivergenceGuard, ProbeRecorder
from learnscope.train.loop import Callback, handlers, interrupts_between_steps, resolve_device
from learnscope.train.objectives import make_objective
from learnscope.train.optim import lr_factor, make_optimizer, make_scheduler

EVAL_ELEMENTS = 2**24  # floats of a (K, rows, width) activation per evaluation chunk


# -- which members can share an ensemble -----------------------------------------------------

_TASK_FREE = ("seed", "train_fraction", "noise")
_MODEL_FREE = ("init_scale", "init_std", "sigma_w", "sigma_b")
_TRAIN_FREE = ("lr", "weight_decay", "schedule", "warmup_steps", "min_lr_ratio")


def _task_key(cfg: RunConfig) -> str:
    return json.dumps({"name": cfg.task.name, **cfg.task.params}, sort_keys=True)


_TASKS: dict[str, Task] = {}


def member_task(cfg: RunConfig) -> Task:
    """The member's task, built once per distinct task config in this process."""
    key = _task_key(cfg)
    if key not in _TASKS:
        if len(_TASKS) > 256:
            _TASKS.clear()
        _TASKS[key] = make_task(cfg.task.name, **cfg.task.params)
    return _TASKS[key]


def _vmappable(model: nn.Module) -> bool:
    """No state that the forward pass changes (BatchNorm) and no randomness (dropout)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return False
        if isinstance(m, nn.Dropout) and m.p > 0:
            return False
    return True


@functools.lru_cache(maxsize=256)
def _model_shapes(kind: str, params: str, dims: str) -> dict[str, list[int]] | None:
    model = build_model(kind, json.loads(params), json.loads(dims))
    if not _vmappable(model):
        return None
    return {k: list(p.shape) for k, p in model.named_parameters()}


def member_shapes(cfg: RunConfig) -> dict[str, list[int]] | None:
    """The parameter shapes of ``cfg``'s model, or None if it cannot join an ensemble
    (BatchNorm, dropout): built once per distinct model (init options aside), not per member."""
    model = {k: v for k, v in cfg.model.params.items() if k not in _MODEL_FREE}
    dims = member_task(cfg).model_dims()
    return _model_shapes(cfg.model.kind, json.dumps(model, sort_keys=True), json.dumps(dims))


def _loop_only(cfg: RunConfig, task: Task) -> bool:
    """Class-imbalance options (the sampler, label smoothing, class weights) and the per-class
    metrics of a long-tailed split are the plain trainer's only."""
    t = cfg.train
    options = t.sampler != "uniform" or t.label_smoothing or t.reweight != "none"
    return bool(options) or "class_counts" in task.split("train").info


def ensemble_key(cfg: RunConfig) -> str | None:
    """Members with equal keys can be trained as one ensemble; None: only alone (the loop).

    The key holds what the batched computation shares: the task family and its sizes, the
    model without its init scale, the number of steps, the batch size (and whether it is the
    full training split), the loss, the optimiser and its betas, eps, momentum, clipping, the
    eval schedule, the device and the names of the eval splits.
    """
    task = member_task(cfg)
    if task.kind != "classification" or cfg.train.regularizers:  # no hooks run when stacked
        return None
    if cfg.train.autoinit is not None:  # the runner tunes each model before training
        return None
    if cfg.train.subspace is not None:  # the runner wraps each model (theta_0 + P z)
        return None
    if cfg.train.init_from is not None:  # loaded by the runner, one run at a time
        return None
    if cfg.task.name == "sequence" or cfg.train.ewc or cfg.train.plasticity:
        return None  # task switches, EWC, plasticity: the loop's continual callback only
    t = cfg.train  # the loop's gradient transforms and StableMax: not stacked (yet)
    if t.grad_filter is not None or t.orthogonal or t.loss == "stablemax_ce":
        return None
    if t.compile or (t.precision == "bf16" and t.device in ("auto", "cpu")):  # the loop's
        return None
    if t.optimizer == "sam" or t.input_noise:  # SAM's second pass, augmentation: the loop's
        return None
    if _loop_only(cfg, task):
        return None
    shapes = member_shapes(cfg)
    if shapes is None:
        return None
    model = cfg.model.params  # per-layer learning rates and a linearised twin: the loop only
    if model.get("param", "standard") != "standard" or model.get("output_scale") is not None:
        return None
    if any(p.probe == "ntk_distance" for p in cfg.probes or []):
        return None
    n_train = len(task.split("train"))
    bs = cfg.train.batch_size
    full = bs is None or bs >= n_train
    train = cfg.train.model_dump(mode="json", exclude=set(_TRAIN_FREE))
    train["batch_size"] = None if full else bs
    key = {
        "task": {
            k: v
            for k, v in {"name": cfg.task.name, **cfg.task.params}.items()
            if k not in _TASK_FREE
        },
        "model": {
            "kind": cfg.model.kind,
            **{k: v for k, v in cfg.model.params.items() if k not in _MODEL_FREE},
        },
        "shapes": shapes,
        "train": train,
        "splits": task.eval_splits,
    }
    return json.dumps(key, sort_keys=True)


# -- per-example loss (the trainer's ClassificationObjective, not reduced) --------------------


def per_example_loss(logits: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """``logits: (..., C)``, ``y: (...)`` -> ``(...)``: cross-entropy, or the squared error
    against the one-hot target summed over the C classes (its batch mean is the trainer's)."""
    if loss == "ce":
        return F.cross_entropy(logits.flatten(0, -2), y.flatten(), reduction="none").view(y.shape)
    target = F.one_hot(y, logits.shape[-1]).to(logits.dtype)
    return (logits - target).pow(2).sum(-1)


def stacked_forward(model: nn.Module) -> Callable:
    """``forward(params, buffers, x)`` of K members shaped like ``model``, their parameters
    and buffers stacked along a leading member axis and ``x: (K, b, ...)``: ``vmap`` of the
    model's own ``forward`` with each member's tensors in place of the weights.

    What ``functional_call`` does, with the slots found once: each call puts the tensors
    straight into the structure's parameter and buffer slots (tied weights share the first
    name's tensor) and calls the model. ``functional_call`` finds the slots again on every call,
    which was measured at ~20 % of a stacked step of 32 tiny members
    (``benchmarks/ensemble_speedup.py``, cProfile)."""
    base = copy.deepcopy(model).to("meta")  # only the structure: the weights come stacked
    base.train()
    slots: list[tuple[dict, str, str]] = []  # (module's slot dict, attribute, name given)
    for kind in ("_parameters", "_buffers"):
        named = base.named_parameters if kind == "_parameters" else base.named_buffers
        first: dict[int, str] = {}
        for name, t in named(remove_duplicate=False):
            owner, _, attr = name.rpartition(".")
            module = base.get_submodule(owner) if owner else base
            slots.append((getattr(module, kind), attr, first.setdefault(id(t), name)))

    def member_forward(params, buffers, x):
        given = {**params, **buffers}
        for slot, attr, name in slots:
            slot[attr] = given[name]
        try:
            return base(x)
        finally:
            for slot, attr, _ in slots:  # no member's tensor kept after the call
                slot[attr] = None

    return vmap(member_forward)


@dataclass
class _Stacked:
    """One split of every member, padded to the longest: ``x: (K, N, ...)``, ``y: (K, N)``,
    ``mask: (K, N)``; ``y_true`` where the split has true labels beside corrupted ones."""

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor
    n: torch.Tensor  # (K,) rows per member
    y_true: torch.Tensor | None = None

    @staticmethod
    def build(splits: list, device: torch.device) -> _Stacked:
        k = len(splits)
        n = torch.tensor([len(s) for s in splits], dtype=torch.float32, device=device)
        names = ["y"] + (["y_true"] if "y_true" in splits[0].tensors else [])
        if all(s is splits[0] for s in splits):  # one shared table: a view, no copies
            x = splits[0]["x"].to(device)
            ys = [splits[0][name].to(device).expand(k, len(x)) for name in names]
            mask = torch.ones(k, len(x), device=device)
            return _Stacked(x.expand(k, *x.shape), ys[0], mask, n, *ys[1:])
        longest = max(len(s) for s in splits)
        x0 = splits[0]["x"]
        x = torch.zeros(k, longest, *x0.shape[1:], dtype=x0.dtype)
        ys = [torch.zeros(k, longest, dtype=splits[0]["y"].dtype) for _ in names]
        mask = torch.zeros(k, longest)
        for i, s in enumerate(splits):
            x[i, : len(s)], mask[i, : len(s)] = s["x"], 1.0
            for y, name in zip(ys, names):
                y[i, : len(s)] = s[name]
        ys = [y.to(device) for y in ys]
        return _Stacked(x.to(device), ys[0], mask.to(device), n, *ys[1:])


class Ensemble:
    """Train the members ``cfgs`` (all with the same :func:`ensemble_key`) at once.
    ``self.members[k]`` is member k, to which callbacks are added as to a trainer."""

    def __init__(self, cfgs: list[RunConfig]) -> None:
        keys = {ensemble_key(c) for c in cfgs}
        if len(keys) != 1 or None in keys:
            raise ValueError("ensemble members must share one ensemble_key (see ensemble_key)")
        self.cfgs = cfgs
        self.k = len(cfgs)
        c0 = cfgs[0].train
        self.train_cfg = c0
        self.device = resolve_device(c0.device)
        tasks = [member_task(c) for c in cfgs]
        self.split_names = tasks[0].eval_splits
        self.splits = {
            name: _Stacked.build([t.split(name) for t in tasks], self.device)
            for name in self.split_names
        }

        # models: built and seeded exactly as runner.build does, then stacked into one flat
        # tensor (see _flat_views); ``self.params[name]: (K, *shape)`` are views into it
        models, rng_states = [], []
        for cfg, task in zip(cfgs, tasks):
            # the CPU generator is what torch.manual_seed seeds for a CPU-built model; seeding
            # it alone skips the lazy CUDA seeding call (~0.4 ms per member, a stack trace)
            torch.default_generator.manual_seed(cfg.seed)
            models.append(build_model(cfg.model.kind, cfg.model.params, task.model_dims()))
            rng_states.append(torch.get_rng_state())  # as a trainer's global RNG after building
        params, buffers = stack_module_state(models)
        self.shapes = {name: p.shape[1:] for name, p in params.items()}
        self.flat = torch.cat([p.flatten() for p in params.values()]).to(self.device)
        self.flat_grad = torch.zeros_like(self.flat)
        self.params = self._flat_views(self.flat)
        for p, g in zip(self.params.values(), self._flat_views(self.flat_grad).values()):
            p.requires_grad_()
            p.grad = g  # autograd adds each step's gradient into flat_grad in place
        self.buffers = {k: v.to(self.device) for k, v in buffers.items()}
        self.forward = stacked_forward(models[0])

        # optimiser: per-member hyper-parameters as (K,) tensors, state allocated once
        def col(values):
            return torch.tensor(values, dtype=torch.float32, device=self.device)

        self.base_lr = col([c.train.lr for c in cfgs])
        self.wd = col([c.train.weight_decay for c in cfgs])
        self.any_wd = bool(self.wd.any())
        self.wd_flat = self._spread(self.wd)
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        self.scratch = torch.empty_like(self.flat)
        self.step_size = torch.empty_like(self.flat)
        self.momentum_buf: torch.Tensor | None = None
        self.constant_lr = all(
            c.train.schedule == "constant" and c.train.warmup_steps == 0 for c in cfgs
        )
        self.lr_flat = self._spread(self.base_lr)  # updated each step under a schedule
        self.decay_flat = 1 - self.lr_flat * self.wd_flat  # AdamW's decoupled decay

        # data order: one generator per member, as the trainer's
        self.n_train = [len(t.split("train")) for t in tasks]
        bs = c0.batch_size
        self.full_batch = bs is None or bs >= self.n_train[0]
        if not self.full_batch:  # every minibatch row weighs 1 / b
            self.batch_weights = torch.full((self.k, bs), 1.0 / bs, device=self.device)
        self.generators = [torch.Generator().manual_seed(c.seed) for c in cfgs]
        self.orders = torch.zeros(self.k, max(self.n_train), dtype=torch.long)
        self.cursors = [max(self.n_train) + 1] * self.k  # forces a shuffle at the first step
        self.member_index = torch.arange(self.k, device=self.device)[:, None]
        self._index: torch.Tensor | None = None  # the rows of the latest minibatch (K, b)
        self._onehot: torch.Tensor | None = None  # the one-hot training targets (mse)
        self.step = 0
        self.last_losses: torch.Tensor | None = None  # (K,) of the latest training batch
        self._t0 = time.perf_counter()  # start of training (members' wall time shares)
        self.members = [
            Member(self, k, cfg, task, model, rng)
            for k, (cfg, task, model, rng) in enumerate(zip(cfgs, tasks, models, rng_states))
        ]

    def _flat_views(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: (K, *shape)}`` views of a flat tensor laid out parameter by parameter: the
        K members of one parameter form one contiguous block, so every view is contiguous and
        the optimiser updates all parameters with one operation per formula term."""
        views, start = {}, 0
        for name, shape in self.shapes.items():
            n = self.k * math.prod(shape)
            views[name] = t[start : start + n].view(self.k, *shape).detach()
            start += n
        return views

    def _spread(self, v: torch.Tensor) -> torch.Tensor:
        """A per-member ``(K,)`` tensor laid out as the flat parameters: ``v[k]`` on every
        element of member k."""
        return torch.cat([v.repeat_interleave(math.prod(s)) for s in self.shapes.values()])

    # -- one training step ---------------------------------------------------------------------
    def _lr(self, step: int) -> torch.Tensor:
        """Per-member learning rate at ``step``: ``lr_k * lr_factor(step, cfg_k)``, ``(K,)``."""
        if self.constant_lr:
            return self.base_lr
        factors = [lr_factor(step, c.train) for c in self.cfgs]
        return self.base_lr * torch.tensor(factors, device=self.device)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x: (K, b, ...)``, ``y: (K, b)`` and loss weights ``w: (K, b)`` (mask / n_k)."""
        train = self.splits["train"]
        if self.full_batch:
            return train.x, train.y, train.mask / train.n[:, None]
        bs = self.train_cfg.batch_size
        for i, n in enumerate(self.n_train):  # a new epoch: the trainer's randperm, per member
            if self.cursors[i] + bs > n:
                self.orders[i, :n] = torch.randperm(n, generator=self.generators[i])
                self.cursors[i] = 0
        if len(set(self.cursors)) == 1:
            c = self.cursors[0]
            index = self.orders[:, c : c + bs]
        else:
            start = torch.tensor(self.cursors)[:, None]
            index = self.orders.gather(1, start + torch.arange(bs))
        self.cursors = [c + bs for c in self.cursors]
        index = self._index = index.to(self.device)
        x, y = train.x[self.member_index, index], train.y[self.member_index, index]
        return x, y, self.batch_weights

    def _target(self, y: torch.Tensor, classes: int) -> torch.Tensor:
        """The squared error's one-hot targets of the batch, ``(K, b, C)``: rows of the
        training split's one-hot table, made once (a view shared by all members when they
        share the split) instead of ``one_hot`` of every batch."""
        if self._onehot is None:
            ys = self.splits["train"].y
            shared = ys.stride(0) == 0
            table = F.one_hot(ys[0] if shared else ys, classes).to(torch.float32)
            self._onehot = table.expand(self.k, *table.shape) if shared else table
        if self.full_batch:
            return self._onehot
        return self._onehot[self.member_index, self._index]

    def train_step(self) -> torch.Tensor:
        """One update of every member; returns the members' batch losses ``(K,)``."""
        cfg = self.train_cfg
        x, y, w = self._batch()
        # forward and loss: the sum over members of each member's mean loss
        logits = self.forward(self.params, self.buffers, x)
        if cfg.loss == "mse" and logits.dtype == torch.float32:  # per_example_loss's formula
            per_example = (logits - self._target(y, logits.shape[-1])).pow(2).sum(-1)
        else:
            per_example = per_example_loss(logits, y, cfg.loss)
        losses = (per_example * w).sum(1)
        # backward
        self.flat_grad.zero_()
        losses.sum().backward()
        with torch.no_grad():
            if cfg.grad_clip is not None:
                self._clip(cfg.grad_clip)
            self._optimizer_step()
        self.step += 1
        self.last_losses = losses.detach()
        return self.last_losses

    def _clip(self, max_norm: float) -> None:
        """``torch.nn.utils.clip_grad_norm_`` per member: scale by min(1, c / (||g_k|| + 1e-6))."""
        sq = sum(p.grad.flatten(1).pow(2).sum(1) for p in self.params.values())
        coef = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
        self.flat_grad.mul_(self._spread(coef))

    def _optimizer_step(self) -> None:
        """PyTorch's single-tensor AdamW / Adam / SGD on the flat parameters, with the learning
        rate (at this step) and weight decay of each member spread over its elements.

        AdamW (Loshchilov & Hutter 2019): ``p <- p (1 - lr wd)``; ``m <- b1 m + (1 - b1) g``;
        ``v <- b2 v + (1 - b2) g^2``; ``p <- p - lr / (1 - b1^t) * m / (sqrt(v) /
        sqrt(1 - b2^t) + eps)``. Adam adds ``wd p`` to ``g`` instead; SGD with momentum mu:
        ``buf <- mu buf + g`` (``buf = g`` at the first step), ``p <- p - lr buf``.
        """
        cfg = self.train_cfg
        t = self.step + 1
        p, g, s = self.flat, self.flat_grad, self.scratch
        if not self.constant_lr:
            self.lr_flat = self._spread(self._lr(self.step))
            self.decay_flat = 1 - self.lr_flat * self.wd_flat
        lr = self.lr_flat
        if cfg.optimizer != "adamw" and self.any_wd:
            g = g.add(p * self.wd_flat)
        if cfg.optimizer == "sgd":
            if cfg.momentum:
                if self.momentum_buf is None:
                    self.momentum_buf = g.clone()
                else:
                    self.momentum_buf.mul_(cfg.momentum).add_(g)
                g = self.momentum_buf
            p.sub_(torch.mul(g, lr, out=s))
            return
        b1, b2 = cfg.betas
        if cfg.optimizer == "adamw":
            p.mul_(self.decay_flat)
        m, v = self.exp_avg, self.exp_avg_sq
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        torch.sqrt(v, out=s)
        s.div_(math.sqrt(1 - b2**t)).add_(cfg.eps)
        torch.div(m, s, out=s)
        p.sub_(s.mul_(torch.div(lr, 1 - b1**t, out=self.step_size)))

    # -- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> list[dict[str, float]]:
        """Per member: loss and accuracy on every eval split, the lr and the weight norms."""
        cfg = self.train_cfg
        out: list[dict[str, float]] = [{} for _ in range(self.k)]
        widest = max(max(p.shape[1:]) for p in self.params.values())  # activation width
        for name, s in self.splits.items():
            chunk = max(64, EVAL_ELEMENTS // (self.k * widest))
            loss_sum = torch.zeros(self.k, device=self.device)
            correct = torch.zeros(self.k, device=self.device)
            true = torch.zeros(self.k, device=self.device)
            for start in range(0, s.x.shape[1], chunk):
                rows = slice(start, start + chunk)
                x, y, mask = s.x[:, rows], s.y[:, rows], s.mask[:, rows]
                logits = self.forward(self.params, self.buffers, x)
                loss_sum += (per_example_loss(logits, y, cfg.loss) * mask).sum(1)
                correct += ((logits.argmax(-1) == y).float() * mask).sum(1)
                if s.y_true is not None:  # as the objective: corrupted rows vs their truth
                    true += ((logits.argmax(-1) == s.y_true[:, rows]).float() * mask).sum(1)
            for i, (loss, acc) in enumerate(
                zip((loss_sum / s.n).tolist(), (correct / s.n).tolist())
            ):
                out[i][f"{name}/loss"], out[i][f"{name}/acc"] = loss, acc
            if s.y_true is not None:
                for i, acc in enumerate((true / s.n).tolist()):
                    out[i][f"{name}/true_acc"] = acc
        if self.last_losses is not None:  # as the trainer: none before the first step
            for i, loss in enumerate(self.last_losses.tolist()):
                out[i]["train_step/loss"] = loss
        for i, lr in enumerate(self._lr(self.step).tolist()):
            out[i]["lr"] = lr
        for pname, p in self.params.items():
            if p.dim() >= 3:  # a weight matrix of every member (as probes.weights.weight_norms)
                for i, v in enumerate(torch.linalg.vector_norm(p.flatten(1), dim=1).tolist()):
                    out[i][f"weight_norm/{pname}"] = v
        return out

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, batch: Callable[[], contextlib.AbstractContextManager] | None = None) -> None:
        """Train every member for ``train.steps`` steps, as the trainer's loop does member by
        member: evaluate at step 0, every ``eval_every`` steps and when a member ends; a member
        ends at the last step or when ``should_stop`` is set (its divergence guard, a
        callback), the others go on. Ctrl-C ends every running member as ``interrupted``.

        ``batch()``: a context entered around each round of the members' callbacks that may
        write (the evaluations they publish, the checkpoints and probes due at a step, their
        ends), so that the round writes once for all K members (the runner's: one store
        transaction and one sync of the checkpoint files). A member's ``on_step_end``
        callbacks run at the steps where one of them can act (:meth:`Member.acts_at`)."""
        cfg = self.train_cfg
        batch = batch or contextlib.nullcontext
        running = list(self.members)
        with batch():
            for m in running:
                m.emit("on_train_start")
        t0 = self._t0 = time.perf_counter()
        boundary = contextlib.ExitStack()
        interrupted = boundary.enter_context(interrupts_between_steps())
        try:
            while running:
                if interrupted:  # a Ctrl-C during the last step, taken at its end
                    raise KeyboardInterrupt
                # eval: at the first step, every eval_every steps and for a member that ends
                ending = {m.k for m in running if self.step >= cfg.steps or m.should_stop}
                if self.step % cfg.eval_every == 0 or ending:
                    metrics = self.evaluate()
                    with batch():
                        for m in running:
                            if self.step % cfg.eval_every == 0 or m.k in ending:
                                m.metrics = metrics[m.k]
                                m.publish(self.step, m.metrics)
                ended = [m for m in running if m.k in ending or m.should_stop]
                if ended:
                    with batch():
                        for m in ended:
                            m.finish(time.perf_counter() - t0)
                    running = [m for m in running if m.ended_at is None]
                if not running:
                    break

                # one step of every member (those that ended are carried along, unread)
                self._step_end(running, self.train_step(), batch)
        except KeyboardInterrupt:
            with batch():
                for m in running:
                    if m.ended_at is None:
                        m.status = "interrupted"
                        m.finish(time.perf_counter() - t0)
        finally:
            boundary.close()

    def _step_end(self, running: list[Member], losses: torch.Tensor, batch) -> None:
        """``on_step_end`` of the members whose callbacks can act at this step: a non-finite
        loss (the divergence guard), a checkpoint or probe due (:meth:`Member.acts_at`), or a
        callback of unknown kind (every step); the others' would do nothing."""
        step = self.step
        bad = not bool(torch.isfinite(losses).all())
        called = [m for m in running if m.every_step or m.acts_at(step)]
        if bad:
            finite, chosen = torch.isfinite(losses).tolist(), {m.k for m in called}
            called = [m for m in running if m.k in chosen or not finite[m.k]]
        if not called:
            return
        values = losses.tolist()
        with batch() if len(called) > 1 else contextlib.nullcontext():
            for m in called:
                m.emit("on_step_end", step, values[m.k])


class Member:
    """Member ``k`` of an :class:`Ensemble`, as its callbacks see it: the attributes of a
    :class:`~learnscope.train.loop.Trainer` (see :class:`~learnscope.train.loop.Callback`)."""

    def __init__(
        self, ens: Ensemble, k: int, cfg: RunConfig, task: Task, model: nn.Module, rng
    ) -> None:
        self.ens, self.k, self.task = ens, k, task
        self.cfg = cfg.train
        self.device = ens.device
        self.objective = make_objective(task.kind, cfg.train)
        self._model = model.to(self.device).eval()  # the member's slice is copied in on read
        self._synced = -1
        self._rng = rng
        self._splits: dict[str, Any] | None = None
        self.callbacks: list[Callback] = []
        self._handlers: dict[str, list] = {}
        self._every_step, self._periods = False, None
        self.status = "running"
        self.should_stop = False
        self.metrics: dict[str, float] = {}
        self.wall_s = 0.0
        self.ended_at: int | None = None  # the step it ended at; its slice is not read after

    @property
    def step(self) -> int:
        return self.ens.step if self.ended_at is None else self.ended_at

    @property
    def model(self) -> nn.Module:
        """The member's model with its current weights (copied from the stacked ones)."""
        if self._synced != self.step and self.ended_at is None:
            with torch.no_grad():
                for name, p in self._model.named_parameters():
                    p.copy_(self.ens.params[name][self.k])
            self._synced = self.step
        return self._model

    @property
    def splits(self) -> dict[str, Any]:
        if self._splits is None:
            self._splits = {n: self.task.split(n).to(self.device) for n in self.ens.split_names}
        return self._splits

    def add_callback(self, cb: Callback) -> Member:
        self.callbacks.append(cb)
        self._handlers.clear()
        self._periods = None
        return self

    def _step_end_plan(self) -> tuple[bool, list[int]]:
        """Whether a callback's ``on_step_end`` may act at any step (one of unknown kind), and
        the periods of those that act only at multiples of a period (checkpoints every n,
        probes every n; probes at the last step too); the divergence guard acts only on a
        non-finite loss, which the ensemble checks for all members at once."""
        if self._periods is None:
            every_step, periods = False, set()
            for handler in handlers(self.callbacks, "on_step_end", self._handlers):
                cb = handler.__self__
                if type(cb) is DivergenceGuard:
                    continue
                if type(cb) is Checkpointer:
                    periods.update([cb.every] if cb.every else [])
                elif type(cb) is ProbeRecorder:
                    periods.update(item.every for item in cb.plan.items)
                else:
                    every_step = True
            self._every_step, self._periods = every_step, sorted(periods)
        return self._every_step, self._periods

    @property
    def every_step(self) -> bool:
        return self._step_end_plan()[0]

    def acts_at(self, step: int) -> bool:
        """Whether a checkpoint or probe of this member is due at ``step``."""
        periods = self._step_end_plan()[1]
        return bool(periods) and (step >= self.cfg.steps or any(step % p == 0 for p in periods))

    def emit(self, event: str, *args: Any) -> None:
        for handler in handlers(self.callbacks, event, self._handlers):
            handler(self, *args)

    def publish(self, step: int, values: dict[str, float]) -> None:
        self.emit("on_metrics", step, values)

    def finish(self, elapsed_s: float) -> None:
        """End this member at the current step (status as the trainer sets it)."""
        _ = self.model  # the final weights, copied while the slice is still the member's
        self.ended_at = self.ens.step
        self.wall_s = elapsed_s / self.ens.k  # its share of the ensemble's time
        if self.status == "running":
            self.status = "finished" if not self.should_stop else "stopped"
        self.emit("on_train_end", self.status)

    def state_dict(self) -> dict[str, Any]:
        """The member's state in the trainer's checkpoint format
        (:meth:`~learnscope.train.loop.Trainer.state_dict`)."""
        ens, k, cfg = self.ens, self.k, self.cfg
        model = self.model
        opt = make_optimizer(model, cfg)
        t = self.step
        factor = lr_factor(t, cfg)
        if cfg.optimizer == "sgd":  # the momentum buffer, once there is one
            bufs = ens._flat_views(ens.momentum_buf) if ens.momentum_buf is not None else {}
            for name, p in model.named_parameters():
                if name in bufs:
                    opt.state[p] = {"momentum_buffer": bufs[name][k].clone()}
        elif t > 0:  # Adam's moments and step count
            m, v = ens._flat_views(ens.exp_avg), ens._flat_views(ens.exp_avg_sq)
            for name, p in model.named_parameters():
                opt.state[p] = {
                    "step": torch.tensor(float(t)),
                    "exp_avg": m[name][k].clone(),
                    "exp_avg_sq": v[name][k].clone(),
                }
        sched = make_scheduler(opt, cfg)
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * factor
        sched.last_epoch, sched._step_count = t, t + 1
        sched._last_lr = [g["lr"] for g in opt.param_groups]
        n = ens.n_train[k]
        shuffled = not ens.full_batch and ens.cursors[k] <= n
        losses = ens.last_losses
        return {
            "step": t,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "generator": ens.generators[k].get_state(),
            "order": ens.orders[k, :n].clone() if shuffled else torch.empty(0, dtype=torch.long),
            "cursor": ens.cursors[k] if shuffled else 0,
            "torch_rng": self._rng,
            "regularizers": {},
            "scaler": {},
            "last_terms": {} if losses is None else {"train_step/loss": losses[k].clone()},
            "wall_s": self.wall_s if self.ended_at is not None else self._share_so_far(),
        }

    def _share_so_far(self) -> float:
        return (time.perf_counter() - self.ens._t0) / self.ens.k
