"""K same-shaped members trained at once, as one batched computation.

The members' parameters are stacked along a leading member axis (``stack_module_state``:
``W: (K, out, in)``) and every layer runs as one batched matmul for all members; autograd
differentiates the sum of the members' losses, whose gradient with respect to member k's slice
is exactly member k's own gradient (the members share no parameter). The forward pass is
``vmap`` of the model's unchanged ``forward`` with each member's weights in its slots
(:func:`stacked_forward`), so a model has one forward; it works for any model without buffers
that change (BatchNorm) or randomness (dropout), the cases :func:`ensemble_key` sends to the
plain loop. The one exception is the MLP on one-hot tokens (:func:`onehot_mlp`), whose
forward and backward are written out (:class:`StackedOneHotMLP`: the first layer a sum of
columns of ``W1`` instead of a matmul with one-hot inputs, the members in blocks that stay in
the CPU's cache; the same function and gradient, tested against ``vmap`` with autograd):
about 2x faster a step at 1000 grokking members (``docs/ensemble.md``). Sequence
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
spread over its elements; AdamW runs as PyTorch's fused kernel, one call per group of members
with equal learning-rate schedule and weight decay (the members sit in slots ordered so that a
group is one contiguous block of every parameter). A member follows the trajectory of its
separate run to float rounding (``tests/train/test_ensemble.py`` checks it against
``runner.execute``). Optimiser state and scratch are allocated once.

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
import gc
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import stack_module_state, vmap

from learnscope import events as events_mod
from learnscope.config import EventsConfig, RunConfig
from learnscope.models import build_model
from learnscope.tasks import Task, make_task
from learnscope.train.callbacks import Checkpointer, DivergenceGuard, ProbeRecorder
from learnscope.train.loop import Callback, handlers, interrupts_between_steps, resolve_device
from learnscope.train.objectives import make_objective
from learnscope.train.optim import lr_factor, make_optimizer, make_scheduler

_DENSE = torch.contiguous_format  # a member's slice of a transposed parameter, copied out
EVAL_ELEMENTS = 2**24  # floats of a (K, rows, width) activation per evaluation chunk
FUSED_ADAMW = True  # PyTorch's fused AdamW kernel per optimiser group (tests switch it off)
FAST = True  # the written-out step of the MLP on one-hot tokens (tests switch it off)
BLOCK_ELEMENTS = 2**17  # floats of a (members, rows, width) activation per block of that step
SCATTER_ELEMENTS = 2**20  # its dW1 by index_add up to this many (K, d_in, width) floats, else bmm


# -- which members can share an ensemble -----------------------------------------------------

_TASK_FREE = ("seed", "train_fraction", "noise")
_MODEL_FREE = ("init_scale", "init_std", "sigma_w", "sigma_b")
_TRAIN_FREE = ("lr", "weight_decay", "schedule", "warmup_steps", "min_lr_ratio")


def _opt_group(cfg: RunConfig) -> tuple:
    """Members with equal tuples have the same learning rate at every step and the same
    weight decay: one optimiser group (:meth:`Ensemble._optimizer_step`)."""
    t = cfg.train
    return (t.lr, t.weight_decay, t.schedule, t.warmup_steps, t.min_lr_ratio)


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


# -- the MLP on one-hot tokens, written out -----------------------------------------------------

_ACTS = ("quadratic", "power", "relu", "tanh", "gelu")


def onehot_mlp(cfg: RunConfig, task: Task):
    """The model config of ``cfg`` if its stacked step can be written out
    (:class:`StackedOneHotMLP`): ``model.kind: mlp`` on one-hot tokens, standard
    parametrisation, an activation of :data:`_ACTS`, no BatchNorm or dropout; else None."""
    if cfg.model.kind != "mlp" or cfg.train.loss not in ("ce", "mse"):
        return None
    from learnscope.models import model_config

    mc = model_config(cfg.model.kind, cfg.model.params, task.model_dims())
    plain = mc.param == "standard" and mc.output_scale is None and not mc.batchnorm
    if mc.embed != "onehot" or not plain or mc.dropout or mc.activation not in _ACTS:
        return None
    return mc


class StackedOneHotMLP:
    """Forward and backward of K :class:`~learnscope.models.mlp.MLP` s with one-hot inputs
    (``embed: onehot``), written out for the member axis instead of ``vmap`` of the model and
    autograd: the same function and the same gradient, in fewer and larger operations.

    The first layer's input is the concatenation of ``n_inputs`` one-hot vectors, so
    ``W1 onehot(x) = sum_j W1[:, j vocab + x_j]``: a sum of ``n_inputs`` columns of ``W1``,
    computed as an ``embedding_bag`` (sum mode) over the members' stacked ``W1^T`` rows
    instead of a ``(b, n_inputs vocab) x (n_inputs vocab, width)`` matmul with a matrix that is
    mostly zeros. Its gradient ``dW1 = dz^T onehot(x)`` is one batched matmul (on a CPU faster
    than the scatter-add of ``dz`` into the columns). Later layers are ``baddbmm`` over the
    member axis; with pre-activation ``z`` and ``h = act(z)``, back-propagation is
    ``dW = dz^T h_prev``, ``db = sum_rows dz``, ``dh_prev = dz W``, ``dz = act'(z) dh``
    (quadratic ``2 z``, power ``P z^(P-1)``, relu ``[z > 0]``, tanh ``1 - h^2``, gelu
    PyTorch's ``gelu_backward``). The loss of member k is ``L_k = sum_i w_ki l_ki`` (``w``:
    the row weights, ``1 / b`` or mask / n); its gradient with respect to the logits is
    ``w_ki (softmax(z_ki) - onehot(y_ki))`` for cross-entropy and ``2 w_ki (z_ki - t_ki)`` for
    the squared error, exactly what autograd of :func:`per_example_loss` computes
    (``tests/train/test_ensemble_fast.py`` compares both to float tolerance)."""

    def __init__(
        self,
        mc,
        params: dict[str, torch.Tensor],
        grads: dict[str, torch.Tensor],
        block: int | None = None,
    ) -> None:
        self.mc, self.params, self.grads = mc, params, grads
        self.k = next(iter(params.values())).shape[0]
        # blocks of members, each its own instance on views of its members' slices, so that a
        # block's activations stay in the CPU's cache
        self.blocks: list[tuple[int, int, StackedOneHotMLP]] = []
        if block is not None and self.k > block:
            for a in range(0, self.k, block):
                sub = {n: v[a : a + block] for n, v in params.items()}
                sub_grads = {n: v[a : a + block] for n, v in grads.items()}
                end = min(a + block, self.k)
                self.blocks.append((a, end, StackedOneHotMLP(mc, sub, sub_grads)))
        n_hidden = mc.depth - 1
        self.layers = [f"layers.{i}.linear" for i in range(n_hidden)] + ["out"]
        self.d_in = mc.n_inputs * mc.vocab
        device = next(iter(params.values())).device
        # offsets of token j of member k in the rows of the stacked W1^T: (K, 1, n_inputs)
        self.offsets = (
            torch.arange(mc.n_inputs, device=device) * mc.vocab
            + (torch.arange(self.k, device=device) * self.d_in)[:, None]
        )[:, None, :]
        self.token_offsets = (torch.arange(mc.n_inputs, device=device) * mc.vocab)[None, None]
        first = params[f"{self.layers[0]}.weight"]
        # dW1 as a scatter-add of dz's rows (cheap while its K x d_in x width table stays in
        # cache) or as dz^T onehot(x) (measured faster beyond: 1000 members, p = 17, w 48)
        self.scatter = first.numel() <= SCATTER_ELEMENTS
        self._table: torch.Tensor | None = None

    def updated(self) -> None:
        """The weights changed (an optimiser step): forget what was made from them."""
        self._table = None
        for _, _, sub in self.blocks:
            sub.updated()

    def _act(self, z: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        a = self.mc.activation
        if a == "quadratic":
            return z.mul_(z) if inplace else z * z
        if a == "power":
            return z.pow_(self.mc.power) if inplace else z**self.mc.power
        if inplace and a != "gelu":
            return {"relu": torch.relu_, "tanh": torch.tanh_}[a](z)
        return {"relu": torch.relu, "tanh": torch.tanh, "gelu": F.gelu}[a](z)

    def _act_grad(self, dh: torch.Tensor, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        a = self.mc.activation
        if a == "quadratic":
            return dh.mul_(z).mul_(2.0)
        if a == "power":
            return dh.mul_(z.pow(self.mc.power - 1)).mul_(float(self.mc.power))
        if a == "relu":
            return torch.ops.aten.threshold_backward(dh, z, 0)
        if a == "tanh":
            return torch.ops.aten.tanh_backward(dh, h)
        return torch.ops.aten.gelu_backward(dh, z)

    def _first(self, x: torch.Tensor) -> torch.Tensor:
        """``W1 onehot(x) (+ b1)`` of every member: ``x: (K, b, n_inputs)`` -> ``(K, b, out)``."""
        name = self.layers[0]
        w = self.params[f"{name}.weight"]  # (K, out, d_in)
        k, b = x.shape[:2]
        if self._table is None:  # the rows of W1^T, once per update (:meth:`updated`); a
            # view where W1 is stored transposed (the ensemble's layout), else a copy
            self._table = w.transpose(1, 2).reshape(k * self.d_in, w.shape[1])
        table = self._table
        z = F.embedding_bag((x + self.offsets).view(k * b, -1), table, mode="sum")
        z = z.view(k, b, w.shape[1])
        bias = self.params.get(f"{name}.bias")
        return z if bias is None else z.add_(bias[:, None, :])

    def _layer(self, i: int, h: torch.Tensor) -> torch.Tensor:
        name = self.layers[i]
        w, bias = self.params[f"{name}.weight"], self.params.get(f"{name}.bias")
        if bias is None:
            return torch.bmm(h, w.transpose(1, 2))
        return torch.baddbmm(bias[:, None, :], h, w.transpose(1, 2))

    def forward(self, params, buffers, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(K, b, n_out)`` of ``x: (K, b, n_inputs)`` (``stacked_forward``'s call);
        the weights are the ones given at construction (``params`` must be them)."""
        if self.blocks:
            return torch.cat([sub.forward(None, None, x[a:b]) for a, b, sub in self.blocks])
        z = self._first(x)
        for i in range(1, len(self.layers)):
            z = self._layer(i, self._act(z, inplace=True))
        return z

    def loss_and_grad(
        self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, loss: str, target
    ) -> torch.Tensor:
        """The members' losses ``(K,)`` on the batch; their gradients written into ``grads``
        (every element: nothing to zero first). ``target``: the one-hot targets (mse)."""
        if self.blocks:
            parts = []
            for a, b, sub in self.blocks:
                t = None if target is None else target[a:b]
                parts.append(sub.loss_and_grad(x[a:b], y[a:b], w[a:b], loss, t))
            return torch.cat(parts)
        zs, hs = [self._first(x)], []
        for i in range(1, len(self.layers)):
            hs.append(self._act(zs[-1]))
            zs.append(self._layer(i, hs[-1]))
        logits = zs[-1]
        minus_one = torch.full_like(y, -1.0, dtype=logits.dtype)[..., None]
        if loss == "ce":
            logp = logits.log_softmax(-1)
            per_example = -logp.gather(-1, y[..., None]).squeeze(-1)
            d = logp.exp_()
            d.scatter_add_(-1, y[..., None], minus_one)
        elif target is None:  # z - onehot(y) in place: -1 added at the class (exactly z - 1)
            diff = logits.scatter_add_(-1, y[..., None], minus_one)
            per_example = diff.pow(2).sum(-1)
            d = diff.mul_(2.0)
        else:
            diff = logits - target
            per_example = diff.pow(2).sum(-1)
            d = diff.mul_(2.0)
        losses = (per_example * w).sum(1)
        dz = d.mul_(w[..., None])
        for i in range(len(self.layers) - 1, 0, -1):
            name = self.layers[i]
            torch.bmm(dz.transpose(1, 2), hs[i - 1], out=self.grads[f"{name}.weight"])
            if f"{name}.bias" in self.grads:
                torch.sum(dz, 1, out=self.grads[f"{name}.bias"])
            dh = torch.bmm(dz, self.params[f"{name}.weight"])
            dz = self._act_grad(dh, zs[i - 1], hs[i - 1])
        name = self.layers[0]
        k, b = x.shape[:2]
        grad = self.grads[f"{name}.weight"]  # (K, out, d_in)
        grad_t = grad.transpose(1, 2)  # (K, d_in, out): contiguous in the ensemble's layout
        in_place = grad_t.is_contiguous()
        if self.scatter:  # dW1^T rows += dz rows (in place, else transposed into place)
            if in_place:
                rows = grad_t.view(k * self.d_in, grad.shape[1]).zero_()
            else:
                rows = torch.zeros(k * self.d_in, grad.shape[1], dtype=dz.dtype, device=dz.device)
            for j in range(self.mc.n_inputs):
                rows.index_add_(0, (x[..., j] + self.offsets[..., j]).view(-1), dz.view(k * b, -1))
            if not in_place:
                grad.copy_(rows.view(k, self.d_in, -1).transpose(1, 2))
        else:
            onehot = torch.zeros(k, b, self.d_in, dtype=dz.dtype, device=dz.device)
            onehot.scatter_(2, x + self.token_offsets, 1.0)
            if in_place:  # dW1^T = onehot^T dz
                torch.bmm(onehot.transpose(1, 2), dz, out=grad_t)
            else:
                torch.bmm(dz.transpose(1, 2), onehot, out=grad)
        if f"{name}.bias" in self.grads:
            torch.sum(dz, 1, out=self.grads[f"{name}.bias"])
        return losses


# -- events from a member's metric columns, without pandas ------------------------------------

#: columns of the detectors of ``events.detect`` that :func:`detect_columns` leaves to it
_OTHER_DETECTORS = ("sas/max", "softmax_collapse/logits")
_RANK_PROBES = ("effective_rank", "rankme")  # as events.rank_collapse's default


def _stays_below(
    values: np.ndarray, steps: np.ndarray, threshold: float, patience: int
) -> tuple[int, float] | None:
    """``events.stays_below`` on a column (NaN: no value): the first step from which the
    values stay below ``threshold`` to the last, if that covers ``patience`` values, and the
    last value."""
    have = ~np.isnan(values)
    s, at = values[have], steps[have]
    above = np.flatnonzero(~(s < threshold))
    start = 0 if len(above) == 0 else above[-1] + 1
    if len(s) - start < max(1, patience):
        return None
    return int(at[start]), float(s[-1])


def detect_columns(
    steps: np.ndarray, cols: dict[str, np.ndarray], cfg: Any = None, sizes=None
) -> list[events_mod.Event]:
    """``events.detect`` of the wide table with index ``steps`` and columns ``cols``
    (:meth:`Member.metric_columns`), the same events in the same order, found on the arrays:
    the grokking (Power et al. 2022), slingshot (Thilak et al. 2022, the rule of
    ``events.slingshot_cycles``) and divergence detectors written with numpy (about 0.2 ms a
    member instead of 5 ms of pandas). A table with a column that another detector reads
    (SAS, softmax collapse) goes to ``events.detect`` itself, as a DataFrame. Attention and
    rank collapse (Zhai et al. 2023; Roy & Vetterli 2007) are ``events.stays_below`` of their
    columns, as ``events.attention_collapse`` and ``events.rank_collapse`` find them."""
    if cfg is None or isinstance(cfg, (int, float)):
        cfg = EventsConfig() if cfg is None else EventsConfig(grok_threshold=cfg)
    if not len(steps) or not cols:
        return []
    if any(name.startswith(_OTHER_DETECTORS) for name in cols):
        import pandas as pd

        table = pd.DataFrame(cols, index=pd.Index(steps, name="step"))
        table.columns.name = "name"
        return events_mod.detect(table, cfg, sizes)

    found: list[events_mod.Event | None] = []
    # grokking: first steps at which train and test accuracy reach the threshold
    train = "train_clean/acc" if "train_clean/acc" in cols else "train/acc"
    grok = None
    if train in cols and "test/acc" in cols:
        grok = events_mod.grokking_steps(steps, cols[train], cols["test/acc"], cfg.grok_threshold)
    found.append(grok)
    # slingshot cycles, on the rows where the loss and the last layer's norm both have values
    loss = next((c for c in ("train/loss", "train_step/loss") if c in cols), None)
    norm = events_mod.last_layer_norm(_Columns(list(cols)))
    if loss is not None and norm is not None:
        both = ~np.isnan(cols[loss]) & ~np.isnan(cols[norm])
        acc = cols["test/acc"][both] if "test/acc" in cols else None
        found += events_mod.slingshot_cycles(
            cols[loss][both], cols[norm][both], steps[both], acc, cfg.slingshot_spike,
            cfg.slingshot_recover, cfg.slingshot_norm_growth, cfg.slingshot_window,
            cfg.slingshot_min_peak, loss, norm,
        )  # fmt: skip
    # attention-entropy collapse, then rank collapse: a column that stays below a threshold
    sizes = sizes or {}
    for col in cols:
        m = events_mod._HEAD.match(col)
        if not m or sizes.get(m["site"], 0) < 2:
            continue
        threshold = cfg.attention_fraction * math.log(sizes[m["site"]])
        hit = _stays_below(cols[col], steps, threshold, cfg.collapse_patience)
        if hit is not None:
            data = {"site": m["site"], "head": int(m["head"]), "entropy": hit[1],
                    "threshold": threshold, "context": int(sizes[m["site"]]),
                    "fraction": cfg.attention_fraction}  # fmt: skip
            found.append(events_mod.Event("attention_collapse", hit[0], data))
    for col in cols:
        probe, _, site = col.partition("/")
        if probe not in _RANK_PROBES or site not in sizes:
            continue
        threshold = cfg.rank_fraction * sizes[site]
        hit = _stays_below(cols[col], steps, threshold, cfg.collapse_patience)
        if hit is not None:
            data = {"site": site, "probe": probe, "rank": hit[1], "threshold": threshold,
                    "width": int(sizes[site]), "fraction": cfg.rank_fraction}  # fmt: skip
            found.append(events_mod.Event("rank_collapse", hit[0], data))
    # divergence: the first non-finite loss (a NaN only where evaluated, after the last finite)
    losses = sorted(
        (c for c in cols if c.endswith("/loss")), key=lambda c: (not c.startswith("train"), c)
    )
    evaluated = ~np.isnan(cols["lr"]) if "lr" in cols else np.zeros(len(steps), bool)
    first: tuple[int, str] | None = None
    for col in losses:
        values = cols[col]
        bad = np.isinf(values)
        finite = np.flatnonzero(np.isfinite(values))
        if len(finite):
            bad |= np.isnan(values) & evaluated & (np.arange(len(values)) > finite[-1])
        if bad.any():
            step = int(steps[np.flatnonzero(bad)[0]])
            if first is None or step < first[0]:
                first = (step, col)
    if first is not None:
        found.append(
            events_mod.Event("divergence", first[0], {"step": first[0], "metric": first[1]})
        )
    events = [e for e in found if e is not None]
    return sorted(events, key=lambda e: (e.step is None, e.step or 0))


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """The objects alive when the block starts (the imports' modules, functions and classes:
    ~330 000 with torch and pandas) moved out of the cyclic garbage collector's view while it
    runs (``gc.freeze``), and back when it ends (``gc.unfreeze``). An ensemble allocates
    enough to trigger full collections, and a full collection re-scans all of them: measured
    0.21 s of CPU each (32 tiny members train in ~0.36 s). Objects made inside the block are
    collected as usual."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def member_events(
    members: list[Member], cfgs: list[RunConfig], sizes: dict[str, int] | None
) -> tuple[list[list[events_mod.Event] | None], list[int]]:
    """Each member's events (:func:`detect_columns` of :meth:`Member.metric_columns`), and
    the indices of the members whose stored table must be read instead (their ``found`` is
    None): a summary that reads the table (claims, a task sequence), a member whose rows do
    not go to the store through exactly one store logger, or a step with a name twice."""
    from learnscope.train.callbacks import StoreLogger

    found: list[list[events_mod.Event] | None] = []
    need: list[int] = []
    for i, (m, cfg) in enumerate(zip(members, cfgs)):
        cols = None
        loggers = sum(type(cb) is StoreLogger for cb in m.callbacks)
        if not cfg.claims and getattr(m.task, "name", None) != "sequence" and loggers == 1:
            cols = m.metric_columns()
        if cols is None:
            found.append(None)
            need.append(i)
        else:
            found.append(detect_columns(*cols, cfg.events, sizes))
    return found, need


@dataclass
class _Columns:
    """What ``events.last_layer_norm`` reads of a table: its column names, in order."""

    columns: list[str]


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
    ``self.members[i]`` is the member of ``cfgs[i]``, to which callbacks are added as to a
    trainer. Internally the members sit in *slots* (``member.k``, the index along the stacked
    axis) ordered by learning-rate schedule and weight decay, so that the members of one
    optimiser group are one contiguous block of every parameter (:meth:`_optimizer_step`)."""

    def __init__(self, cfgs: list[RunConfig]) -> None:
        keys = {ensemble_key(c) for c in cfgs}
        if len(keys) != 1 or None in keys:
            raise ValueError("ensemble members must share one ensemble_key (see ensemble_key)")
        order = sorted(range(len(cfgs)), key=lambda i: _opt_group(cfgs[i]))
        cfgs = [cfgs[i] for i in order]  # slot order
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
        mc = onehot_mlp(cfgs[0], tasks[0])  # the MLP on one-hot tokens: its step written out
        # the written-out step reads W1 as rows of W1^T (its first layer's lookup table) and
        # writes dW1 the same way: W1 is stored transposed, (K, d_in, out) in memory, so the
        # table is a view and dW1 needs no copy (the optimiser is element-wise: any layout)
        first = "layers.0.linear.weight" if mc is not None and mc.depth > 1 else "out.weight"
        self.transposed = {first} if mc is not None and FAST else set()
        self.flat = torch.cat(
            [
                (p.transpose(1, 2) if n in self.transposed else p).flatten()
                for n, p in params.items()
            ]
        ).to(self.device)
        self.flat_grad = torch.zeros_like(self.flat)
        self.params = self._flat_views(self.flat)
        for p, g in zip(self.params.values(), self._flat_views(self.flat_grad).values()):
            p.requires_grad_()
            p.grad = g  # autograd adds each step's gradient into flat_grad in place
        self.buffers = {k: v.to(self.device) for k, v in buffers.items()}
        self.forward = stacked_forward(models[0])
        self.fast: StackedOneHotMLP | None = None
        if mc is not None and FAST:
            grads = self._flat_views(self.flat_grad)
            rows = c0.batch_size or max(self.n_train_rows(tasks))
            widest = max(mc.width if mc.depth > 1 else 0, mc.n_out)
            # blocks of members: measured 1.1-2x faster a step than all K at once (32 tiny
            # members: two blocks of 16 twice as fast as one of 32)
            block = max(1, min(BLOCK_ELEMENTS // (rows * widest), -(-self.k // 2)))
            self.fast = StackedOneHotMLP(mc, self.params, grads, block)
            self.forward = self.fast.forward

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
        self._same_n = len(set(self.n_train)) == 1
        self._order_rows: list[torch.Tensor] | None = None
        self.member_index = torch.arange(self.k, device=self.device)[:, None]
        self._index: torch.Tensor | None = None  # the rows of the latest minibatch (K, b)
        self._onehot: torch.Tensor | None = None  # the one-hot training targets (mse)
        self.step = 0
        self.last_losses: torch.Tensor | None = None  # (K,) of the latest training batch
        self._t0 = time.perf_counter()  # start of training (members' wall time shares)
        self._templates: dict[tuple, tuple] = {}  # Member._optimizer_template's
        # (step, names, (K, names) values, which members published them) per evaluation
        self.eval_log: list[tuple[int, tuple[str, ...], np.ndarray, np.ndarray]] = []
        self.last_eval: tuple[tuple[str, ...], np.ndarray] = ((), np.zeros((self.k, 0)))
        slots = [
            Member(self, k, cfg, task, model, rng)
            for k, (cfg, task, model, rng) in enumerate(zip(cfgs, tasks, models, rng_states))
        ]
        self.members: list[Member] = [slots[0]] * self.k  # in the caller's order
        for slot, i in enumerate(order):
            self.members[i] = slots[slot]
        # the optimiser groups: (first slot, end, the group's train config)
        self.groups: list[tuple[int, int, Any]] = []
        for slot, cfg in enumerate(cfgs):
            if self.groups and _opt_group(cfg) == _opt_group(self.groups[-1][2]):
                self.groups[-1] = (self.groups[-1][0], slot + 1, self.groups[-1][2])
            else:
                self.groups.append((slot, slot + 1, cfg))
        self._fused = c0.optimizer == "adamw" and hasattr(torch, "_fused_adamw_") and FUSED_ADAMW
        if self._fused:  # per group and parameter: contiguous slices, and the step count
            self._step_t = torch.zeros((), dtype=torch.float32, device=self.device)
            tensors = (self.flat, self.flat_grad, self.exp_avg, self.exp_avg_sq)
            self._group_views = [
                [self._flat_blocks(t, a, b) for t in tensors] for a, b, _ in self.groups
            ]

    @staticmethod
    def n_train_rows(tasks: list[Task]) -> list[int]:
        return [len(t.split("train")) for t in tasks]

    def _flat_views(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: (K, *shape)}`` views of a flat tensor laid out parameter by parameter: the
        K members of one parameter form one contiguous block (each member's slice contiguous
        in it), so the optimiser updates all parameters with one operation per formula term.
        Every view is contiguous but those of :attr:`transposed` (stored ``(K, in, out)``, a
        transposed view)."""
        views, start = {}, 0
        for name, shape in self.shapes.items():
            n = self.k * math.prod(shape)
            block = t[start : start + n]
            if name in self.transposed:
                views[name] = block.view(self.k, shape[1], shape[0]).transpose(1, 2).detach()
            else:
                views[name] = block.view(self.k, *shape).detach()
            start += n
        return views

    def _flat_blocks(self, t: torch.Tensor, a: int, b: int) -> list[torch.Tensor]:
        """Members ``a:b`` of every parameter of a flat tensor as 1-D contiguous slices (what
        the fused optimiser needs, whatever the parameter's layout)."""
        out, start = [], 0
        for shape in self.shapes.values():
            size = math.prod(shape)
            out.append(t[start + a * size : start + b * size])
            start += self.k * size
        return out

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
        if self._order_rows is None:  # each member's order, a row view filled in place
            self._order_rows = [self.orders[i, :n] for i, n in enumerate(self.n_train)]
        if self._same_n:  # equal splits: every member starts its epochs at the same step
            c = self.cursors[0]
            if c + bs > self.n_train[0]:  # a new epoch: the trainer's randperm, per member
                n = self.n_train[0]
                for row, gen in zip(self._order_rows, self.generators):
                    torch.randperm(n, generator=gen, out=row)
                c = 0
            self.cursors = [c] * self.k
        for i, n in enumerate([] if self._same_n else self.n_train):
            if self.cursors[i] + bs > n:  # a new epoch of member i
                torch.randperm(n, generator=self.generators[i], out=self._order_rows[i])
                self.cursors[i] = 0
        if self._same_n or len(set(self.cursors)) == 1:
            c = self.cursors[0]
            index = self.orders[:, c : c + bs]
        else:
            start = torch.tensor(self.cursors)[:, None]
            index = self.orders.gather(1, start + torch.arange(bs))
        self.cursors = [c + bs for c in self.cursors]
        index = self._index = index.to(self.device)
        if train.x.stride(0) == 0 and train.y.stride(0) == 0:  # one table shared by all
            rows = index.reshape(-1)  # index_select of its rows: 3x faster than x[k, index]
            x = torch.index_select(train.x[0], 0, rows).view(*index.shape, *train.x.shape[2:])
            return x, torch.index_select(train.y[0], 0, rows).view(index.shape), self.batch_weights
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
        if self.fast is not None:  # forward and backward written out, gradients in flat_grad
            with torch.no_grad():  # (the squared error's one-hot target added in place)
                losses = self.fast.loss_and_grad(x, y, w, cfg.loss, None)
            return self._update(losses)
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
        return self._update(losses)

    def _update(self, losses: torch.Tensor) -> torch.Tensor:
        cfg = self.train_cfg
        with torch.no_grad():
            if cfg.grad_clip is not None:
                self._clip(cfg.grad_clip)
            self._optimizer_step()
        if self.fast is not None:
            self.fast.updated()
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
        if self._fused:
            self._fused_adamw()
            return
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

    def _fused_adamw(self) -> None:
        """AdamW as above, with PyTorch's fused kernel (``torch._fused_adamw_``, what
        ``AdamW(fused=True)`` calls): one call per optimiser group, whose members share the
        learning rate at this step and the weight decay, on the group's contiguous block of
        every parameter and state tensor (one pass over memory instead of about ten)."""
        cfg = self.train_cfg
        b1, b2 = cfg.betas
        self._step_t.add_(1)
        for (_, _, gcfg), (p, g, m, v) in zip(self.groups, self._group_views):
            t = gcfg.train
            torch._fused_adamw_(
                p, g, m, v, [], [self._step_t] * len(p),
                lr=t.lr * lr_factor(self.step, t), beta1=b1, beta2=b2,
                weight_decay=t.weight_decay, eps=cfg.eps, amsgrad=False, maximize=False,
            )  # fmt: skip

    # -- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> list[dict[str, float]]:
        """Per member: loss and accuracy on every eval split, the lr and the weight norms
        (also kept as ``last_eval``: the names and a ``(K, names)`` float64 array)."""
        cfg = self.train_cfg
        columns: dict[str, list[float]] = {}  # name -> the K members' values
        widest = max(max(p.shape[1:]) for p in self.params.values())  # activation width
        for name, s in self.splits.items():
            chunk = max(64, EVAL_ELEMENTS // (self.k * widest))
            loss_sum = torch.zeros(self.k, device=self.device)
            correct = torch.zeros(self.k, device=self.device)
            true = torch.zeros(self.k, device=self.device)
            for start in range(0, s.x.shape[1], chunk):
                rows = slice(start, start + chunk)
                # members a:b at a time (the written-out forward's blocks): each block's
                # logits are reduced while in cache, and never concatenated
                for a, b, logits in self._logits_blocks(s.x[:, rows]):
                    y, mask = s.y[a:b, rows], s.mask[a:b, rows]
                    pred = logits.argmax(-1)
                    correct[a:b] += ((pred == y).float() * mask).sum(1)
                    if s.y_true is not None:  # as the objective: corrupted rows vs their truth
                        true[a:b] += ((pred == s.y_true[a:b, rows]).float() * mask).sum(1)
                    if cfg.loss == "mse" and logits.dtype == torch.float32:  # z - onehot(y)
                        # in place (-1 added at the class: exactly per_example_loss's z - 1)
                        minus_one = torch.full_like(y, -1.0, dtype=logits.dtype)[..., None]
                        diff = logits.scatter_add_(-1, y[..., None], minus_one)
                        per_example = diff.pow_(2).sum(-1)
                    else:
                        per_example = per_example_loss(logits, y, cfg.loss)
                    loss_sum[a:b] += (per_example * mask).sum(1)
            columns[f"{name}/loss"] = (loss_sum / s.n).tolist()
            columns[f"{name}/acc"] = (correct / s.n).tolist()
            if s.y_true is not None:
                columns[f"{name}/true_acc"] = (true / s.n).tolist()
        if self.last_losses is not None:  # as the trainer: none before the first step
            columns["train_step/loss"] = self.last_losses.tolist()
        columns["lr"] = self._lr(self.step).tolist()
        for pname, p in self.params.items():
            if p.dim() >= 3:  # a weight matrix of every member (as probes.weights.weight_norms)
                norms = torch.linalg.vector_norm(p.flatten(1), dim=1)
                columns[f"weight_norm/{pname}"] = norms.tolist()
        names = tuple(columns)
        self.last_eval = (names, np.array(list(columns.values()), dtype=np.float64).T)
        return [dict(zip(names, values)) for values in zip(*columns.values())]

    def _logits_blocks(self, x: torch.Tensor) -> Iterator[tuple[int, int, torch.Tensor]]:
        """``(a, b, logits of members a:b)`` for ``x: (K, rows, ...)``: the written-out
        forward's blocks, else all members at once."""
        if self.fast is not None and self.fast.blocks:
            for a, b, sub in self.fast.blocks:
                yield a, b, sub.forward(None, None, x[a:b])
        else:
            yield 0, self.k, self.forward(self.params, self.buffers, x)

    # -- the loop ------------------------------------------------------------------------------
    def fit(
        self,
        batch: Callable[[], contextlib.AbstractContextManager] | None = None,
        eval_batch: Callable[[], contextlib.AbstractContextManager] | None = None,
    ) -> None:
        """Train every member for ``train.steps`` steps, as the trainer's loop does member by
        member: evaluate at step 0, every ``eval_every`` steps and when a member ends; a member
        ends at the last step or when ``should_stop`` is set (its divergence guard, a
        callback), the others go on. Ctrl-C ends every running member as ``interrupted``.

        ``batch()``: a context entered around each round of the members' callbacks that may
        write (the evaluations they publish, the checkpoints and probes due at a step, their
        ends), so that the round writes once for all K members (the runner's: one store
        transaction and one sync of the checkpoint files). A member's ``on_step_end``
        callbacks run at the steps where one of them can act (:meth:`Member.acts_at`).
        ``eval_batch``: the context of a round that only publishes an evaluation (default
        ``batch``; the runner's lets the rows wait for a later round's commit)."""
        cfg = self.train_cfg
        batch = batch or contextlib.nullcontext
        eval_batch = eval_batch or batch
        running = list(self.members)
        self._plans_of: tuple[list | None, set] = (None, set())
        with batch():
            for m in running:
                m.emit("on_train_start")
        t0 = self._t0 = time.perf_counter()
        boundary = contextlib.ExitStack()
        interrupted = boundary.enter_context(interrupts_between_steps())
        looked = False  # whether no callback ran since should_stop was last read
        try:
            while running:
                if interrupted:  # a Ctrl-C during the last step, taken at its end
                    raise KeyboardInterrupt
                # eval: at the first step, every eval_every steps and for a member that ends
                if self.step >= cfg.steps:
                    ending = {m.k for m in running}
                elif looked:  # should_stop is set only by a callback: none ran since
                    ending = set()
                else:
                    ending = {m.k for m in running if m.should_stop}
                if self.step % cfg.eval_every == 0 or ending:
                    metrics = self.evaluate()
                    published = np.zeros(self.k, dtype=bool)
                    with eval_batch():
                        for m in running:
                            if self.step % cfg.eval_every == 0 or m.k in ending:
                                m.metrics = metrics[m.k]
                                published[m.k] = True
                                m.publish(self.step, m.metrics, logged=True)
                    # the members' evaluations in memory, compactly (Member.metric_columns)
                    self.eval_log.append((self.step, *self.last_eval, published))
                    looked = False
                ended = [] if looked else [m for m in running if m.k in ending or m.should_stop]
                looked = True
                if ended:
                    with batch():
                        for m in ended:
                            m.finish(time.perf_counter() - t0)
                    running = [m for m in running if m.ended_at is None]
                if not running:
                    break

                # one step of every member (those that ended are carried along, unread)
                if self._step_end(running, self.train_step(), batch):
                    looked = False
        except KeyboardInterrupt:
            with batch():
                for m in running:
                    if m.ended_at is None:
                        m.status = "interrupted"
                        m.finish(time.perf_counter() - t0)
        finally:
            boundary.close()

    def _step_end(self, running: list[Member], losses: torch.Tensor, batch) -> bool:
        """``on_step_end`` of the members whose callbacks can act at this step: a non-finite
        loss (the divergence guard), a checkpoint or probe due (:meth:`Member.acts_at`), or a
        callback of unknown kind (every step); the others' would do nothing. Whether any
        callback ran."""
        step = self.step
        bad = not bool(torch.isfinite(losses).all())
        last = step >= self.train_cfg.steps
        if self._plans_of[0] is not running:  # the members' distinct plans, once per change
            self._plans_of = (running, {m._step_end_plan() for m in running})
        acts = {  # per distinct (every_step, periods): whether it acts at this step
            (every, periods): every
            or bool(periods)
            and (last or any(step % p == 0 for p in periods))
            for every, periods in self._plans_of[1]
        }
        if not bad and not any(acts.values()):  # the usual step: nobody's callback can act
            return False
        called = [m for m in running if acts[m._step_end_plan()]]
        if bad:
            finite, chosen = torch.isfinite(losses).tolist(), {m.k for m in called}
            called = [m for m in running if m.k in chosen or not finite[m.k]]
        if not called:
            return False
        values = losses.tolist()
        with batch() if len(called) > 1 else contextlib.nullcontext():
            for m in called:
                m.emit("on_step_end", step, values[m.k])
        return True


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
        self.published: list[tuple[int, dict[str, float]]] = []  # (step, values) in order
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

    def _step_end_plan(self) -> tuple[bool, tuple[int, ...]]:
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
            self._every_step, self._periods = every_step, tuple(sorted(periods))
            self._plan = (self._every_step, self._periods)
        return self._plan

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

    def publish(self, step: int, values: dict[str, float], logged: bool = False) -> None:
        """``on_metrics`` of the member's callbacks; ``values`` kept for
        :meth:`metric_columns` (``logged``: an evaluation the ensemble's ``eval_log`` keeps)."""
        if not logged:
            self.published.append((step, values))
        self.emit("on_metrics", step, values)

    def metric_columns(self) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
        """The member's wide metric table (what ``Store.metric_table`` reads back for its run)
        from what it published, without reading the store: the steps (sorted) and one float
        column per name (sorted; NaN where the name has no value at a step). None where a
        step has a name twice (the store's table then keeps the last non-missing value)."""
        k = self.k
        log = getattr(getattr(self, "ens", None), "eval_log", [])
        evals = [(step, names, values[k]) for step, names, values, done in log if done[k]]
        steps = sorted({step for step, _ in self.published} | {step for step, _, _ in evals})
        at = {step: i for i, step in enumerate(steps)}
        n = len(steps)
        cols: dict[str, list] = {}
        nan = math.nan
        rows = [(step, zip(names, row.tolist())) for step, names, row in evals]
        for step, values in rows + [(step, values.items()) for step, values in self.published]:
            i = at[step]
            for name, v in values:
                col = cols.get(name)
                if col is None:
                    col = cols[name] = [None] * n
                elif col[i] is not None:
                    return None
                col[i] = float(v)
        out = {
            name: np.array([nan if v is None else v for v in cols[name]], dtype=np.float64)
            for name in sorted(cols)
        }
        return np.array(steps, dtype=np.int64), out

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
        t = self.step
        groups, scheduler, indices = self._optimizer_template(model, t)
        state: dict[int, dict[str, torch.Tensor]] = {}  # in the order opt.state was filled
        if cfg.optimizer == "sgd":  # the momentum buffer, once there is one
            bufs = ens._flat_views(ens.momentum_buf) if ens.momentum_buf is not None else {}
            for name, i in indices:
                if name in bufs:
                    state[i] = {"momentum_buffer": bufs[name][k].clone(memory_format=_DENSE)}
        elif t > 0:  # Adam's moments and step count
            m, v = ens._flat_views(ens.exp_avg), ens._flat_views(ens.exp_avg_sq)
            for name, i in indices:
                state[i] = {
                    "step": torch.tensor(float(t)),
                    "exp_avg": m[name][k].clone(memory_format=_DENSE),
                    "exp_avg_sq": v[name][k].clone(memory_format=_DENSE),
                }
        optimizer = {
            "state": state,
            "param_groups": [{**g, "params": list(g["params"])} for g in groups],
        }
        n = ens.n_train[k]
        shuffled = not ens.full_batch and ens.cursors[k] <= n
        losses = ens.last_losses
        return {
            "step": t,
            "model": model.state_dict(),
            "optimizer": optimizer,
            "scheduler": {
                key: list(v) if isinstance(v, list) else v for key, v in scheduler.items()
            },
            "generator": ens.generators[k].get_state(),
            "order": ens.orders[k, :n].clone() if shuffled else torch.empty(0, dtype=torch.long),
            "cursor": ens.cursors[k] if shuffled else 0,
            "torch_rng": self._rng,
            "regularizers": {},
            "scaler": {},
            "last_terms": {} if losses is None else {"train_step/loss": losses[k].clone()},
            "objective": self.objective.state_dict(),  # as the trainer's (members: stateless)
            "gradients": {},  # no gradient filter (its members train alone: ensemble_key)
            "wall_s": self.wall_s if self.ended_at is not None else self._share_so_far(),
        }

    def _optimizer_template(self, model: nn.Module, t: int) -> tuple[list, dict, list]:
        """What the optimiser's and scheduler's state dicts hold besides the member's moments
        at step ``t``: the param groups (learning rate at ``t``), the scheduler's state, and
        ``(name, index)`` of each parameter in the order the trainer's optimiser state is
        filled. Made with PyTorch's optimiser and scheduler, as a trainer's are, once per
        (train config, model config, step): equal for the members that share them."""
        cfg = self.cfg
        key = (repr(cfg), repr(self.ens.cfgs[self.k].model), t)
        found = self.ens._templates.get(key)
        if found is None:
            opt = make_optimizer(model, cfg)
            at = {id(p): i for i, p in enumerate(p for g in opt.param_groups for p in g["params"])}
            indices = [(name, at[id(p)]) for name, p in model.named_parameters() if id(p) in at]
            sched = make_scheduler(opt, cfg)
            factor = lr_factor(t, cfg)
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * factor
            sched.last_epoch, sched._step_count = t, t + 1
            sched._last_lr = [g["lr"] for g in opt.param_groups]
            found = (opt.state_dict()["param_groups"], sched.state_dict(), indices)
            self.ens._templates[key] = found
        return found

    def _share_so_far(self) -> float:
        return (time.perf_counter() - self.ens._t0) / self.ens.k
