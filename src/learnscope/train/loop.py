"""The training loop, read top to bottom (nanoGPT ``train.py``), extras on callbacks (minGPT).

Steps count optimiser updates: metrics logged "at step s" are measured after s updates, so
step 0 is the network at initialisation. The loop evaluates at step 0, every ``eval_every``
steps and at the last step; everything else (the store, checkpoints, the progress bar,
probes, the divergence guard) is a :class:`Callback`. Values leave the trainer one way:
:meth:`Trainer.publish` hands them to every callback's ``on_metrics`` (the eval metrics, and
the probe values the probe recorder computes).
"""

from __future__ import annotations

import contextlib
import time
from functools import partial
from typing import Any

import torch
from torch import nn

from learnscope.config import TrainConfig
from learnscope.errors import UserError
from learnscope.models.hooks import capture
from learnscope.probes.weights import weight_norms
from learnscope.tasks import Task
from learnscope.train.gradients import GradientSteps
from learnscope.train.objectives import make_objective
from learnscope.train.optim import make_optimizer, make_scheduler
from learnscope.train.regularizers import Regularizers
from learnscope.train.rft import RFTObjective
from learnscope.train.robust import input_noise, sharpness_aware
from learnscope.train.sampling import ClassBalancedSampler

EVAL_CHUNK = 16384  # rows per forward pass when evaluating a split


class Callback:
    """Hooks into the loop; override what you need. ``trainer.should_stop = True`` stops it.

    ``trainer`` is a :class:`Trainer` or a member of a stacked ensemble
    (``learnscope.train.ensemble.Member``), which offer callbacks the same attributes:
    ``cfg``, ``task``, ``model``, ``objective``, ``splits``, ``device``, ``step``, ``metrics``,
    ``status``, ``should_stop``, ``state_dict()`` and ``publish(step, values)``.
    ``on_step_end`` gets the step's training loss (regularisers included) as a float; a plain
    trainer also offers ``last_batch``, the batch that step trained on (the linearised twin of
    ``ntk_distance`` trains on it; such runs never join an ensemble).
    """

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None: ...

    def on_metrics(self, trainer: Trainer, step: int, values: dict[str, float]) -> None:
        """Values measured at ``step``: an evaluation's metrics, or probe values."""

    def on_train_end(self, trainer: Trainer, status: str) -> None: ...


def handlers(callbacks: list[Callback], event: str, cache: dict[str, list]) -> list:
    """The bound ``event`` methods of ``callbacks`` that override :class:`Callback`'s no-op,
    cached in ``cache`` (the loop emits ``on_step_end`` every step, for every ensemble member:
    calling methods that do nothing is most of its cost for small models)."""
    if event not in cache:
        base = getattr(Callback, event)
        cache[event] = [
            getattr(cb, event) for cb in callbacks if getattr(type(cb), event) is not base
        ]
    return cache[event]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@contextlib.contextmanager
def interrupts_between_steps():
    """Inside the block, Ctrl-C and SIGTERM are recorded (the list yielded) instead of raised
    in the middle of a step, where they would leave the data order, the optimiser and the step
    count out of step with each other (the checkpoint written on the interrupt then resumes to
    another run); the loop raises ``KeyboardInterrupt`` at the next step boundary. A second
    signal is raised at once (a step that hangs can still be stopped). Only in the main thread
    (Python's signal handlers run there); elsewhere the block changes nothing."""
    import signal
    import threading

    pending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    numbers = [n for n in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(n) is not None]
    previous = {n: signal.getsignal(n) for n in numbers}

    def record(signum, frame):
        if pending:
            raise KeyboardInterrupt
        pending.append(signum)

    for n in numbers:
        if n == signal.SIGINT or callable(previous[n]):  # SIGTERM only where made a Ctrl-C
            signal.signal(n, record)
    try:
        yield pending
    finally:
        for n, handler in previous.items():
            signal.signal(n, handler)


class Trainer:
    def __init__(self, model: nn.Module, task: Task, cfg: TrainConfig, seed: int = 0) -> None:
        self.cfg, self.task, self.seed = cfg, task, seed
        self.device = resolve_device(cfg.device)
        self.model = model.to(self.device)
        self.objective = (
            RFTObjective(cfg, task)
            if cfg.objective == "rft"
            else make_objective(task.kind, cfg, task)
        )
        if task.kind == "mlm" and getattr(getattr(model, "cfg", None), "causal", True):
            raise UserError("model.causal: a masked-LM task needs causal: false (bidirectional)")
        self.splits = {name: task.split(name).to(self.device) for name in task.eval_splits}
        self.fresh = bool(getattr(task.params, "fresh", False))  # a new batch every step
        if self.fresh and cfg.batch_size is None:
            raise UserError("train.batch_size: a task with fresh=True needs a batch size")
        if task.kind != "classification" and (cfg.label_smoothing or cfg.reweight != "none"):
            raise UserError("train.label_smoothing, train.reweight: classification tasks only")
        self.sampler = None
        if cfg.sampler == "class_balanced":
            if task.kind != "classification" or self.fresh:
                raise UserError("train.sampler: class_balanced needs a classification task")
            self.sampler = ClassBalancedSampler(self.splits["train"]["y"])
        self.regularizers = self._regularizers()
        self.optimizer = make_optimizer(self.model, cfg)
        if len(list(self.regularizers.parameters())):  # the regularisers' projectors
            self.optimizer.add_param_group({"params": list(self.regularizers.parameters())})
        self.scheduler = make_scheduler(self.optimizer, cfg)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.gradients = GradientSteps(cfg, params)  # Grokfast, ⊥Grad (when configured)
        self.sam_params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.vocab = task.model_dims().get("vocab") if cfg.input_noise else None
        if cfg.input_noise and task.kind not in ("classification", "regression"):
            raise UserError("train.input_noise: for tasks with inputs x (classification)")
        self.autocast, self.scaler = self._precision()
        self.train_model = self._compiled()  # the training forward (torch.compile or not)
        if cfg.optimizer == "sam" and self.scaler.is_enabled():
            raise UserError("train.optimizer: sam does not train in fp16 (use bf16 or fp32)")
        self.last_terms: dict[str, torch.Tensor] = {}  # of the latest training batch
        self.last_batch: dict[str, torch.Tensor] | None = None  # the latest training batch
        self.generator = torch.Generator().manual_seed(seed)  # data order
        self.order, self.cursor = torch.empty(0, dtype=torch.long), 0  # the current epoch
        self.callbacks: list[Callback] = []
        self._handlers: dict[str, list] = {}  # event -> the callbacks' methods that do something
        self.step = 0
        self.should_stop = False
        self.status = "running"
        self.metrics: dict[str, float] = {}  # the latest eval
        self.init_summary: dict[str, Any] = {}  # how the runner initialised the model (AutoInit)
        self.wall_s = 0.0  # training time of the finished segments (a resumed run's too)
        self._t0: float | None = None  # start of the segment now training

    def add_callback(self, cb: Callback) -> Trainer:
        self.callbacks.append(cb)
        self._handlers.clear()
        return self

    def _regularizers(self) -> Regularizers:
        n = min(2, len(self.splits["train"]))
        probe = self.splits["train"].rows(torch.arange(n, device=self.device))
        regs = Regularizers(
            self.cfg.regularizers, self.model, lambda: self.objective.forward(self.model, probe)
        )
        return regs.to(self.device)

    def _precision(self):
        """Autocast context and gradient scaler: mixed precision on CUDA; on CPU bf16 only
        (``auto`` and ``fp16`` stay fp32 there; see config)."""
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.precision)
        if self.device.type == "cpu" and dtype == torch.bfloat16:
            return lambda: torch.autocast("cpu", dtype=dtype), torch.amp.GradScaler(
                "cuda", enabled=False
            )
        if self.device.type != "cuda" or self.cfg.precision == "fp32":
            return contextlib.nullcontext, torch.amp.GradScaler("cuda", enabled=False)
        if dtype is None:  # auto
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        return lambda: torch.autocast("cuda", dtype=dtype), scaler

    def _compiled(self) -> nn.Module:
        """``train.compile``: the model's training forward through ``torch.compile`` (the
        same parameters; evaluation, probes and checkpoints use the plain module)."""
        if not self.cfg.compile:
            return self.model
        if self.cfg.regularizers:
            raise UserError("train.compile: not with train.regularizers (their hooks)")
        return torch.compile(self.model)

    def _training_loss(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss trained on for ``batch`` at the current weights: the objective's, plus the
        regularisers on the activations the hooks capture, plus the model's auxiliary loss
        (e.g. the UT's ponder cost); and its terms, detached, as ``last_terms`` logs them."""
        with self.autocast(), capture(self.model, self.regularizers.sites, False) as acts:
            loss = self.objective.train_loss(self.train_model, batch)
        terms = {"train_step/loss": loss.detach()}
        if self.regularizers.sites:
            reg_loss, reg_terms = self.regularizers(acts, batch, self.step)
            loss = loss + reg_loss
            terms.update({f"reg/{k}": v for k, v in reg_terms.items()})
        aux = getattr(self.model, "aux_loss", None)
        if aux is not None:
            loss = loss + aux
            terms["train_step/aux_loss"] = aux.detach()
        return loss, terms

    def _loss_again(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of ``batch`` at the current weights (SAM's second pass)."""
        return self._training_loss(batch)[0]

    def _emit(self, event: str, *args: Any) -> None:
        for handler in handlers(self.callbacks, event, self._handlers):
            handler(self, *args)

    def publish(self, step: int, values: dict[str, float]) -> None:
        """Hand values measured at ``step`` to every callback (``on_metrics``)."""
        self._emit("on_metrics", step, values)

    # -- the loop ----------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        cfg = self.cfg
        self._emit("on_train_start")
        t0 = self._t0 = time.perf_counter()
        boundary = contextlib.ExitStack()
        interrupted = boundary.enter_context(interrupts_between_steps())
        try:
            while True:
                if interrupted:  # Ctrl-C or SIGTERM during the last step: taken here, whole
                    raise KeyboardInterrupt
                # eval: at the first step, every eval_every steps and at the end
                done = self.step >= cfg.steps or self.should_stop
                if self.step % cfg.eval_every == 0 or done:
                    self.metrics = self.evaluate()
                    self.publish(self.step, self.metrics)
                if done or self.should_stop:
                    break

                # data: fresh samples, the whole training split, or the next minibatch of a
                # shuffled epoch (a callback may swap the split: a task sequence)
                train = self.splits["train"]
                full_batch = cfg.batch_size is None or cfg.batch_size >= len(train)
                if self.fresh:
                    batch = self.task.sample(cfg.batch_size, self.generator)
                    batch = {k: v.to(self.device) for k, v in batch.items()}
                elif self.sampler is not None:  # class-balanced, with replacement
                    index = self.sampler.draw(cfg.batch_size, self.generator)
                    batch = train.rows(index.to(self.device))
                elif full_batch:
                    batch = train.tensors
                else:
                    if self.cursor + cfg.batch_size > len(self.order):
                        self.order = torch.randperm(len(train), generator=self.generator)
                        self.cursor = 0
                    index = self.order[self.cursor : self.cursor + cfg.batch_size]
                    batch = train.rows(index.to(self.device))
                    self.cursor += cfg.batch_size

                if cfg.input_noise:  # augmentation, afresh each step (train.robust)
                    batch = input_noise(batch, cfg.input_noise, self.vocab, self.generator)
                self.last_batch = batch  # read by callbacks (the linearised twin)

                # forward and loss (+ regularisers on the activations captured by hooks)
                self.model.train()
                loss, self.last_terms = self._training_loss(batch)

                # backward, the gradient's transforms (Grokfast's filter, ⊥Grad), clip, step
                # (the scaler is a no-op unless training in fp16)
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if cfg.optimizer == "sam":  # the gradient at w + rho g / ||g|| (train.robust)
                    sharpness_aware(self.sam_params, partial(self._loss_again, batch), cfg.sam_rho)
                if self.gradients.active or cfg.grad_clip is not None:
                    self.scaler.unscale_(self.optimizer)
                    self.gradients()
                if cfg.grad_clip is not None:
                    nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                self.step += 1
                self._emit("on_step_end", self.step, loss.item())
        except KeyboardInterrupt:
            self.status = "interrupted"
        finally:
            boundary.close()
            self.wall_s += time.perf_counter() - t0
            self._t0 = None
            if self.status == "running":
                self.status = "finished" if not self.should_stop else "stopped"
            self._emit("on_train_end", self.status)
        return self.metrics

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Loss and accuracy on every eval split, the learning rate and the weight norms."""
        self.model.eval()
        out: dict[str, float] = {}
        for name, split in self.splits.items():
            if hasattr(self.objective, "evaluate_split"):  # sequence tasks decode
                metrics = self.objective.evaluate_split(self.model, self.task, name, split)
                out.update({f"{name}/{key}": value for key, value in metrics.items()})
                continue
            totals: dict[str, float] = {}
            for start in range(0, len(split), EVAL_CHUNK):
                rows = torch.arange(start, min(start + EVAL_CHUNK, len(split)), device=self.device)
                batch = split.rows(rows) if len(split) > EVAL_CHUNK else split.tensors
                for key, value in self.objective.evaluate(self.model, batch).items():
                    totals[key] = totals.get(key, 0.0) + value * len(rows)
            out.update({f"{name}/{key}": value / len(split) for key, value in totals.items()})
        out.update({k: v.item() for k, v in self.last_terms.items()})
        group = self.optimizer.param_groups[0]  # the base lr, without a layer's factor
        out["lr"] = group["lr"] / group.get("lr_mult", 1.0)
        out.update({f"weight_norm/{k}": v for k, v in weight_norms(self.model).items()})
        return out

    # -- checkpoints -------------------------------------------------------------------------
    def elapsed_s(self) -> float:
        """Seconds of training so far, the segment now running included."""
        running = time.perf_counter() - self._t0 if self._t0 is not None else 0.0
        return self.wall_s + running

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "order": self.order,
            "cursor": self.cursor,
            "torch_rng": torch.get_rng_state(),
            "regularizers": self.regularizers.state_dict(),
            "scaler": self.scaler.state_dict(),
            "last_terms": self.last_terms,
            "objective": self.objective.state_dict(),  # e.g. RFT's KL reference
            "gradients": self.gradients.state_dict(),  # Grokfast's filter
            "wall_s": self.elapsed_s(),  # training time so far, every segment of a resumed run
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        self.order, self.cursor = state["order"], state["cursor"]
        torch.set_rng_state(state["torch_rng"])
        self.regularizers.load_state_dict(state.get("regularizers", {}))
        self.last_terms = state.get("last_terms", {})
        self.objective.load_state_dict(state.get("objective", {}), self.model)
        self.gradients.load_state_dict(state.get("gradients", {}))
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.wall_s = float(state.get("wall_s", 0.0))
        self.step = state["step"]
