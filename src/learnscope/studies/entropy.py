"""Label-free accuracy estimation by entropy minimisation (Press et al. 2024, "The Entropy
Enigma: Success and Failure of Entropy Minimization", ICML 2024).

Test-time entropy minimisation (EM) adapts a model on unlabelled inputs by minimising the
entropy of its own predictions. The paper's findings: accuracy first rises for a few steps
(EM pulls the test embeddings towards the training embeddings), then falls as EM pushes them
far away; and how much the predictions move under EM estimates the accuracy without labels.

What :func:`entropy_minimise` does on a sequence task (our adaptation of the paper's image
classifier setting):

- *Predictions*: the greedy answer of each input (``greedy_decode``, up to its ``<eos>``);
  its confidence ``c_i`` is the probability of that whole answer, ``prod_t max_v p_t(v)``
  (the sequence analogue of the max-softmax; :func:`naive` averages it: the baseline).
- *EM step*: the entropy ``H_i`` of input ``i`` is the mean over its generated positions of
  ``-sum_v p_t(v) log p_t(v)``, the positions read teacher-forced on its current greedy
  answer. As in the paper's code (EATA/RDumb-style), only inputs with ``H_i < E_0 = 0.4 ln V``
  (``V`` the vocabulary) count, each weighted by ``exp(E_0 - H_i)``; the loss is the weighted
  sum divided by the number of inputs. SGD with momentum 0.9 updates the LayerNorm gains and
  biases (Tent; ``params='all'``: every weight). Every step uses all ``n`` inputs of the split
  (the paper streams batches of 64 and resets the model; neither is done here).
- *Weighted flips* (the paper's estimator, code ``main.py``): after ``k`` steps the inputs are
  predicted again; ``flip_i = 1`` if the answer changed; ``w_i`` is the percentile rank of
  ``c_i`` among the ``n`` inputs at step 0; ``WF = sum_i flip_i w_i``. We report
  ``wf = WF / n`` (``WF`` on 1000 inputs is ``1000 wf``).
- *Accuracy from wf*: :func:`paper_estimate` applies the paper's fitted quadratic
  ``acc% = 3.5555e-4 WF^2 - 0.32145 WF + 75.662`` at ``WF = 1000 wf`` (fitted on ImageNet-C
  holdout noises; transferred unchanged); :func:`fit_quadratic` fits the same form on shifts
  whose labels are known (our calibration), as the paper did on its holdout shifts.
- *Embeddings*: ``ln_final.hook_normalized`` at the last prompt position (the one that
  predicts the first answer token). ``dist_to_train`` is the mean distance of each input's
  embedding to its nearest training embedding divided by the mean distance of a training
  embedding to its nearest other training embedding, both under the current (adapted)
  model; ``drift`` is the mean distance each input's embedding moved since step 0, divided by
  the mean nearest-neighbour distance among training embeddings at step 0.

Shifts: ``noise`` adds fixed Gaussian noise of standard deviation ``noise`` (one draw per
input and position, seeded) to the token embeddings (``hook_embed``), the sequence analogue
of ImageNet-C's pixel noise; the split chooses lengths, hops or operand ranges.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from learnscope.errors import UserError
from learnscope.models.gpt import GPT
from learnscope.models.hooks import capture
from learnscope.train.objectives import greedy_decode
from learnscope.train.rft import answer_logprob, generated_mask

EMBED_SITE = "ln_final.hook_normalized"


@dataclass
class EMTrace:
    """What :func:`entropy_minimise` measured. ``steps[j]`` is the EM step of the j-th record;
    ``acc``, ``entropy``, ``dist_to_train``, ``drift``, ``flips`` and ``wf`` follow it."""

    steps: list[int] = field(default_factory=list)
    acc: list[float] = field(default_factory=list)  # true accuracy (labels: diagnostic only)
    entropy: list[float] = field(default_factory=list)  # mean H_i
    dist_to_train: list[float] = field(default_factory=list)
    drift: list[float] = field(default_factory=list)
    flips: list[float] = field(default_factory=list)  # fraction of inputs whose answer changed
    wf: list[float] = field(default_factory=list)  # weighted flips / n
    confidence: float = 0.0  # mean c_i at step 0: the naive estimate


class _Noise:
    """Fixed Gaussian noise ``(n, T, d)`` added to ``hook_embed`` (rows: the whole split), on
    while the shifted inputs are read and off for the training inputs."""

    def __init__(self, model: nn.Module, n: int, sigma: float, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        d, t = model.cfg.d_model, model.cfg.block_size
        self.noise = sigma * torch.randn(n, t, d, generator=gen)
        self.model, self.sigma, self.handle = model, sigma, None
        self.on()

    def add(self, module, inputs, out):  # noqa: ANN001 - a forward hook
        return out + self.noise[: out.shape[0], : out.shape[1]].to(out)

    def on(self) -> None:
        if self.sigma > 0 and self.handle is None:
            self.handle = self.model.hook_embed.register_forward_hook(self.add)

    def off(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


def _answers(model: nn.Module, rows: dict[str, torch.Tensor], eos: int):
    """Greedy answers ``(n, T)``, their generated mask and the confidences ``c_i``."""
    model.eval()
    pred = greedy_decode(model, rows["tokens"], rows["prompt_len"], eos, cache=False)
    mask = generated_mask(pred, rows["prompt_len"], eos)
    with torch.no_grad():
        logp, _ = answer_logprob(model, pred, mask)
    return pred, mask, logp.exp()


def _entropy(model: nn.Module, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``H_i``: mean next-token entropy over the generated positions of each row ``(n,)``."""
    _, logprobs = answer_logprob(model, pred, mask)
    h = -(logprobs.exp() * logprobs).sum(-1)  # (n, L - 1)
    m = mask[:, 1 : h.shape[1] + 1].to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1)


def _embeddings(model: nn.Module, rows: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(n, d)`` final-norm output at the last prompt position."""
    model.eval()
    with torch.no_grad(), capture(model, [EMBED_SITE]) as acts:
        model(rows["tokens"][:, : int(rows["prompt_len"].max())])
    z = acts[EMBED_SITE]
    return z[torch.arange(len(z)), rows["prompt_len"] - 1]


def _nn_dist(a: torch.Tensor, b: torch.Tensor, exclude_self: bool = False) -> float:
    d = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")
    if exclude_self:
        d.fill_diagonal_(float("inf"))
    return d.min(1).values.mean().item()


def _changed(a: torch.Tensor, ma: torch.Tensor, b: torch.Tensor, mb: torch.Tensor):
    """Rows whose generated answers differ."""
    return ((a * ma) != (b * mb)).any(1) | (ma != mb).any(1)


def entropy_minimise(
    model: nn.Module,
    task,
    split: str,
    steps: int = 50,
    lr: float = 0.01,
    params: str = "norm",
    noise: float = 0.0,
    record_every: int = 5,
    rows: int = 200,
    train_rows: int = 256,
    seed: int = 0,
) -> EMTrace:
    """Adapt a copy of ``model`` by entropy minimisation for ``steps`` steps on the first
    ``rows`` inputs of ``split`` (labels unused except for ``EMTrace.acc``), the embeddings
    compared with those of the first ``train_rows`` training inputs; see the module doc."""
    if not isinstance(model, GPT):
        raise UserError("estimate-accuracy: needs a GPT on a sequence task")
    model = copy.deepcopy(model).cpu()
    rows = {k: v[:rows] for k, v in task.split(split).tensors.items()}
    train = task.split("train").tensors
    train = {k: v[:train_rows] for k, v in train.items()}
    eos, e0 = task.eos_id, 0.4 * math.log(len(task.vocab))
    shift = _Noise(model, len(rows["tokens"]), noise, seed)
    try:
        trainable = [p for n, p in model.named_parameters() if params == "all" or "ln" in n]
        for p in model.parameters():
            p.requires_grad_(any(p is q for q in trainable))
        opt = torch.optim.SGD(trainable, lr=lr, momentum=0.9)
        pred0, mask0, conf0 = _answers(model, rows, eos)
        rank = torch.from_numpy(
            (np.argsort(np.argsort(conf0.numpy(), kind="stable"), kind="stable") + 1) / len(conf0)
        ).float()  # percentile rank of c_i in (0, 1]
        trace = EMTrace(confidence=conf0.mean().item())
        shift.off()
        train_emb0 = _embeddings(model, train)
        scale0 = _nn_dist(train_emb0, train_emb0, True)
        shift.on()
        emb0 = _embeddings(model, rows)
        for step in range(steps + 1):
            if step % record_every == 0 or step == steps:
                pred, mask, _ = _answers(model, rows, eos) if step else (pred0, mask0, conf0)
                flip = _changed(pred, mask, pred0, mask0)
                emb = _embeddings(model, rows)
                shift.off()
                train_emb = _embeddings(model, train)
                shift.on()
                trace.steps.append(step)
                trace.acc.append(task.row_scores(pred, rows).double().mean().item())
                trace.flips.append(flip.float().mean().item())
                trace.wf.append((flip.float() * rank).sum().item() / len(flip))
                trace.dist_to_train.append(
                    _nn_dist(emb, train_emb) / _nn_dist(train_emb, train_emb, True)
                )
                trace.drift.append((emb - emb0).norm(dim=1).mean().item() / scale0)
                with torch.no_grad():
                    trace.entropy.append(_entropy(model, pred, mask).mean().item())
            if step == steps:
                break
            # an EM step on the current greedy answers (the paper's reliable-sample weighting)
            pred, mask, _ = _answers(model, rows, eos)
            model.train()
            h = _entropy(model, pred, mask)
            keep = (h < e0).to(h.dtype) * torch.exp(e0 - h.detach())
            loss = (keep * h).sum() / len(h)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        shift.off()
    return trace


def naive(trace: EMTrace) -> float:
    """The baseline: the average confidence of the initial predictions (mean ``c_i``)."""
    return trace.confidence


def paper_estimate(wf: float) -> float:
    """Accuracy (a fraction) from ``wf = WF / n`` by the paper's fit on ImageNet
    (``f(WF) = 3.5555e-4 WF^2 - 0.32145 WF + 75.662`` percent, ``WF`` on 1000 images),
    clipped to [0, 1].

    >>> round(paper_estimate(0.0), 4), round(paper_estimate(0.5), 4)
    (0.7566, 0.0382)
    """
    big = 1000.0 * wf
    return min(1.0, max(0.0, (3.5555e-4 * big**2 - 0.32145 * big + 75.662) / 100))


def fit_quadratic(wf: list[float], acc: list[float]) -> np.ndarray:
    """Least-squares ``acc = a wf^2 + b wf + c`` (the paper's form) on calibration shifts
    (a line when there are only two distinct ``wf``; their mean accuracy for one):
    coefficients, highest first.

    >>> np.round(fit_quadratic([0.0, 0.1, 0.2], [0.9, 0.5, 0.3]), 6).tolist()
    [10.0, -5.0, 0.9]
    """
    degree = min(2, len(set(np.round(wf, 12).tolist())) - 1)
    return np.polyfit(np.asarray(wf, float), np.asarray(acc, float), degree)


def apply_fit(coef: np.ndarray, wf: float) -> float:
    return float(min(1.0, max(0.0, np.polyval(coef, wf))))


def estimate_shifts(
    model: nn.Module, task, shifts: list[tuple[str, float]], **options
) -> tuple[list[dict], list[EMTrace]]:
    """:func:`entropy_minimise` on each ``(split, noise)`` shift; one row per shift with the
    true accuracy ``acc`` (of the unadapted model), the estimates ``naive`` (mean confidence),
    ``paper`` (:func:`paper_estimate` of the final ``wf``) and ``loo`` (the quadratic fitted on
    every other shift: leave-one-shift-out, None with fewer than 3 shifts), and, along EM,
    the best accuracy and its step, the final accuracy and ``dist_to_train`` at 0 and at the
    end. Also the traces."""
    traces = [entropy_minimise(model, task, name, noise=sd, **options) for name, sd in shifts]
    wf, acc = [t.wf[-1] for t in traces], [t.acc[0] for t in traces]
    out = []
    for i, ((split, noise), t) in enumerate(zip(shifts, traces)):
        others = [j for j in range(len(traces)) if j != i]
        loo = None
        if len(others) >= 2:
            loo = apply_fit(fit_quadratic([wf[j] for j in others], [acc[j] for j in others]), wf[i])
        best = int(np.argmax(t.acc))
        out.append(
            {
                "split": split,
                "noise": noise,
                "acc": acc[i],
                "naive": naive(t),
                "wf": wf[i],
                "paper": paper_estimate(wf[i]),
                "loo": loo,
                "best_acc": t.acc[best],
                "best_step": t.steps[best],
                "final_acc": t.acc[-1],
                "dist0": t.dist_to_train[0],
                "dist_end": t.dist_to_train[-1],
            }
        )
    return out, traces


def mae(rows: list[dict], key: str) -> float | None:
    """Mean absolute error of the estimate ``key`` against ``acc`` over ``rows``."""
    errors = [abs(r[key] - r["acc"]) for r in rows if r.get(key) is not None]
    return sum(errors) / len(errors) if errors else None
