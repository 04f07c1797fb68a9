"""How to train a group of compatible sweep members: one ensemble, chunks of k members, or
member after member with the plain trainer; chosen by a short calibration.
"""

from __future__ import annotations

import math
import time

import torch

from learnscope.config import RunConfig
from learnscope.train.ensemble import Ensemble, ensemble_key, member_shapes, member_task
from learnscope.train.loop import Callback, resolve_device

CANDIDATES = (8, 32, 128, 512)
MEMORY_BUDGET = 4 * 2**30  # bytes of activations an ensemble step may use


def _fastest_step(marks: list[float]) -> float | None:
    """The shortest interval between step-end times ``marks``, the first step left out (a
    warm-up). The fastest, not the mean: on a shared machine it is the measurement least
    disturbed by other processes."""
    return min((b - a for a, b in zip(marks[1:], marks[2:])), default=None)


class _StepTimer(Callback):
    """Marks the end time of every step; stops the run after ``steps`` + 2 marks."""

    def __init__(self, steps: int) -> None:
        self.steps, self.marks = steps, []

    def on_step_end(self, trainer, step, loss) -> None:
        self.marks.append(time.perf_counter())
        if len(self.marks) > self.steps + 1:
            trainer.should_stop = True


def time_alone(cfg: RunConfig, steps: int = 5) -> float:
    """Seconds of the fastest of ``steps`` training steps of the plain trainer, after two
    warm-up steps (a throw-away trainer of ``cfg``, recorded nowhere). Ctrl-C propagates."""
    from learnscope.runner import build

    trainer = build(cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": 10**9})}))
    timer = _StepTimer(steps)
    trainer.add_callback(timer)
    trainer.fit()
    if trainer.status == "interrupted":
        raise KeyboardInterrupt
    return _fastest_step(timer.marks)


def _time_ensemble(cfgs: list[RunConfig], steps: int) -> float:
    """Seconds of the fastest of ``steps`` training steps of an ensemble of ``cfgs``."""
    ens = Ensemble(cfgs)
    ens.train_step()
    ens.train_step()
    best = float("inf")
    for _ in range(steps):
        t0 = time.perf_counter()
        ens.train_step()
        best = min(best, time.perf_counter() - t0)
    return best


def _activation_bytes(cfg: RunConfig, k: int) -> int:
    """A rough cost model of one ensemble step's memory: rows x widest layer x 8 tensors."""
    task = member_task(cfg)
    rows = cfg.train.batch_size or len(task.split("train"))
    rows = min(rows, len(task.split("train")))
    sizes = sum(v for v in task.model_dims().values() if isinstance(v, int))  # not embed
    width = max(int(cfg.model.params.get("width", 512)), sizes)
    return 4 * 8 * k * rows * width


_PEAK: dict[str, float] = {}


#: The share of a group's member-steps that timing candidate ensembles may spend: the runner's
#: choice can then cost at most about this much more than the loop when the loop wins.
CALIBRATION_SHARE = 0.05


def peak_flops(device: str = "cpu") -> float:
    """Measured FLOP/s of a 512^3 float32 matmul on ``device`` (once per process)."""
    if device not in _PEAK:
        a = torch.randn(512, 512, device=device)
        b = torch.randn(512, 512, device=device)
        best = float("inf")
        for _ in range(10):  # the fastest of ten, the least disturbed on a shared machine
            t0 = time.perf_counter()
            a @ b
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        _PEAK[device] = 2 * 512**3 / best
    return _PEAK[device]


def member_step_flops(cfg: RunConfig) -> float:
    """Cost model of one member's training step: ``6 x rows x weights`` (forward 2, backward 4
    multiply-adds per weight and row, Kaplan et al. 2020), for a member that can join an
    ensemble (see :func:`~learnscope.train.ensemble.member_shapes`)."""
    n_train = len(member_task(cfg).split("train"))
    rows = min(cfg.train.batch_size or n_train, n_train)
    weights = [math.prod(s) for s in member_shapes(cfg).values() if len(s) >= 2]
    return 6.0 * rows * sum(weights)


#: Above this fraction of the device's matmul rate one member keeps the hardware busy.
BUSY = 0.5
#: Steps of one member timed with the plain trainer (after two warm-up steps) before choosing.
TIMED_STEPS = 5


def utilisation(cfg: RunConfig, step_s: float) -> float:
    """The fraction of the device's matmul rate that one member of ``cfg`` uses when a step
    takes ``step_s`` seconds (cost model :func:`member_step_flops`)."""
    return member_step_flops(cfg) / step_s / peak_flops(str(resolve_device(cfg.train.device)))


def candidate_sizes(cfgs: list[RunConfig], steps: int = 5) -> list[int]:
    """Ensemble sizes :func:`choose_chunk` may time (``steps`` + 2 steps each): those of
    :data:`CANDIDATES` below ``len(cfgs)``, and ``len(cfgs)``, while their timing stays within
    :data:`CALIBRATION_SHARE` of the group's member-steps and their activations within
    :data:`MEMORY_BUDGET`."""
    budget = CALIBRATION_SHARE * len(cfgs) * cfgs[0].train.steps  # member-steps it may spend
    sizes = []
    for k in [c for c in CANDIDATES if c < len(cfgs)] + [len(cfgs)]:
        if k * (steps + 2) > budget or _activation_bytes(cfgs[0], k) > MEMORY_BUDGET:
            break
        sizes.append(k)
    return sizes


def choose_chunk(
    cfgs: list[RunConfig], steps: int = 5, alone_s: float | None = None
) -> tuple[int, dict[str, float]]:
    """How many members to train at once: 1 (the plain trainer, in turn) or an ensemble size.

    1. Time a few steps of one member with the plain trainer (:func:`time_alone`, unless
       ``alone_s`` is given). If its FLOP rate
       (cost model :func:`member_step_flops`) is already over half of the device's matmul rate
       (:func:`peak_flops`), one member keeps the hardware busy and stacking cannot pay
       for its larger, freshly allocated activations: members go in turn.
    2. Otherwise time ensembles of 8, 32, 128... members (:func:`candidate_sizes`), moving
       to a larger one only when it is at least 10% cheaper per member-step than the best so
       far, and stopping at the first that is not.

    Returns the chunk size and the measured seconds per member-step by size (``"util"``: the
    single member's fraction of the peak rate).
    """
    if len(cfgs) == 1 or ensemble_key(cfgs[0]) is None:
        return 1, {}
    cfg0 = cfgs[0]
    cost: dict = {1: alone_s if alone_s is not None else time_alone(cfg0, steps)}
    cost["util"] = utilisation(cfg0, cost[1])
    if cost["util"] > BUSY:
        return 1, cost
    best = 1
    for k in candidate_sizes(cfgs, steps):
        cost[k] = _time_ensemble(cfgs[:k], steps) / k
        if cost[k] >= 0.9 * cost[best]:  # within timing noise: keep the smaller (less memory)
            break
        best = k
    return best, cost
