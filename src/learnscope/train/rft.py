"""Reinforcement fine-tuning (RFT): REINFORCE on answers the model samples itself.

Razin et al. 2024, "Vanishing gradients in reinforcement finetuning of language models"
(ICLR 2024): RFT maximises ``V(theta) = E_x V(x; theta)``,
``V(x; theta) = E_{y ~ p_theta(.|x)} r(x, y)``, by policy gradients. The expected gradient of
an input vanishes when the reward's standard deviation under the model is small, even far
from the optimum (their Theorem: ``||grad V(x)|| <= 6 gamma(x) L_out Std[r(x, y)]^(2/3)``).
For one softmax over answers ``z`` the gradient is ``dV/dz = p (r - V)``, so
``||dV/dz||_1 = E_p |r - V| <= Std_p[r]``.

The estimator (``train.objective: rft``): for each input ``x_i`` of a batch, ``k`` answers
``y_ij`` are sampled at temperature ``tau`` from ``softmax(logits / tau)`` (KV-cached,
:func:`~learnscope.train.objectives.sample_decode`), the reward ``r_ij`` is the task's score
of the answer (exact match, or the fraction of target tokens right), and the loss is

    loss = -(1 / nk) sum_ij (r_ij - b_ij) log p_tau(y_ij | x_i) + beta KL(p_tau || p_ref)

with the leave-one-out baseline ``b_ij = (1 / (k - 1)) sum_{l != j} r_il``. ``b_ij`` does not
depend on ``y_ij``, so the gradient of the first term is an unbiased estimate of
``-grad (1/n) sum_i V(x_i)`` (:func:`reinforce_loss`), and it is exactly 0 for an input whose
``k`` rewards are equal. ``log p(y | x)`` sums the log-probabilities of the generated tokens up
to and including the first ``<eos>``. The KL term (``train.rft.kl``) is the exact per-token
``sum_v p(v) (log p(v) - log p_ref(v))`` at the generated positions, summed over each answer
and averaged over answers; ``p_ref`` is the policy at the run's first training step (the
``init_from`` checkpoint), kept in the run's checkpoints so that a resumed run measures the KL
against the same reference as an uninterrupted one.

:class:`~learnscope.train.callbacks.RFTStats` logs, on a fixed set of training inputs, each
input's reward mean and standard deviation over ``probe_samples`` answers and the norm of its
policy-gradient estimate ``||grad_theta (1/k) sum_j (r_j - b_j) log p(y_j | x)||`` (0 when
the rewards are equal): the paper's per-input relation between gradient norm and reward std.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from learnscope.errors import UserError
from learnscope.train.objectives import SequenceObjective, sample_decode


def generated_mask(samples: torch.Tensor, prompt_len: torch.Tensor, eos_id: int) -> torch.Tensor:
    """``(n, T)`` bool: the generated positions of each row, up to and including its first
    ``<eos>`` (to the end when it has none).

    >>> generated_mask(torch.tensor([[1, 5, 2, 7], [1, 5, 6, 6]]), torch.tensor([1, 1]), 2)
    tensor([[False,  True,  True, False],
            [False,  True,  True,  True]])
    """
    t = torch.arange(samples.shape[1], device=samples.device)
    gen = t >= prompt_len[:, None]
    eos = gen & (samples == eos_id)
    first = torch.where(eos.any(1), eos.float().argmax(1), samples.shape[1])  # (n,)
    return gen & (t <= first[:, None])


def reinforce_loss(logp: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """REINFORCE surrogate with the leave-one-out baseline (Razin et al. 2024; Williams 1992).

    ``logp, rewards: (n, k)``, ``k >= 2`` answers per input; ``rewards`` carry no gradient.
    ``loss = -(1/nk) sum_ij (r_ij - b_ij) logp_ij``, ``b_ij = mean_{l != j} r_il``; its
    gradient's expectation is ``-grad (1/n) sum_i E_y r(x_i, y)``.

    >>> z = torch.zeros(2, requires_grad=True)
    >>> logp = torch.log_softmax(z, 0)[[0, 1]].view(1, 2)
    >>> reinforce_loss(logp, torch.tensor([[1.0, 0.0]])).backward()
    >>> z.grad.tolist()
    [-0.5, 0.5]
    """
    n, k = rewards.shape
    if k < 2:
        raise ValueError("the leave-one-out baseline needs k >= 2 answers per input")
    rewards = rewards.detach().to(logp.dtype)
    # r_ij - b_ij = (1/(k-1)) sum_l (r_ij - r_il): exactly 0 when an input's rewards are equal
    advantage = (rewards[:, :, None] - rewards[:, None, :]).sum(-1) / (k - 1)
    return -(advantage * logp).mean()


def answer_logprob(
    model: nn.Module, samples: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``log p_tau(y | x)`` of each row ``(n,)``: the sum over its ``mask`` positions ``t`` of
    ``log softmax(logits[t - 1] / tau)[samples[t]]``; and the log-probabilities
    ``(n, L - 1, V)`` they come from (for the KL term)."""
    cols = mask.any(0).nonzero()
    length = int(cols.max()) + 1 if len(cols) else 2
    logits = model(samples[:, : length - 1]).float() / temperature
    logprobs = logits.log_softmax(-1)
    picked = logprobs.gather(-1, samples[:, 1:length, None])[..., 0]
    return (picked * mask[:, 1:length]).sum(1), logprobs


class RFTObjective(SequenceObjective):
    """Sequence objective whose training loss is the REINFORCE loss of the module doc;
    evaluation (teacher-forced loss, greedy-decoding accuracy) is the supervised one's."""

    def __init__(self, cfg, task) -> None:
        if task.kind != "sequence":
            raise UserError(
                f"train.objective: rft needs a sequence task (task {task.name} is {task.kind})"
            )
        super().__init__(cfg.loss, cfg.eval_examples)
        self.rft, self.task = cfg.rft, task
        self.reference: nn.Module | None = None  # p_ref, for the KL term
        self.last: dict[str, float] = {}  # of the latest training batch

    def sample(
        self, model: nn.Module, rows: dict[str, torch.Tensor], k: int, generator=None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """``k`` answers per row, row-major ``(n k, T)``; the rows repeated to match; rewards
        ``(n k,)``. The model samples in eval mode (KV cache) and is left as it was."""
        rep = {key: v.repeat_interleave(k, 0) for key, v in rows.items()}
        was_training = model.training
        model.eval()
        samples = sample_decode(
            model,
            rep["tokens"],
            rep["prompt_len"],
            self.task.eos_id,
            self.rft.temperature,
            generator,
        )
        model.train(was_training)
        partial = self.rft.reward == "partial"
        rewards = self.task.row_scores(samples, rep, partial).to(samples.device)
        return samples, rep, rewards

    def train_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        k = self.rft.samples
        samples, rep, rewards = self.sample(model, batch, k)
        mask = generated_mask(samples, rep["prompt_len"], self.task.eos_id)
        logp, logprobs = answer_logprob(model, samples, mask, self.rft.temperature)
        loss = reinforce_loss(logp.view(-1, k), rewards.view(-1, k))
        self.last = {"rft/train_reward": rewards.mean().item()}
        if self.rft.kl > 0:
            if self.reference is None:
                self.reference = copy.deepcopy(model).eval().requires_grad_(False)
            with torch.no_grad():
                _, ref = answer_logprob(self.reference, samples, mask, self.rft.temperature)
            m = mask[:, 1 : logprobs.shape[1] + 1]
            kl = (logprobs.exp() * (logprobs - ref)).sum(-1)  # (n, L - 1)
            kl = (kl * m).sum(1).mean()
            loss = loss + self.rft.kl * kl
            self.last["rft/kl"] = kl.item()
        return loss

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"last": self.last}  # logged at the next evaluation
        if self.reference is not None:
            state["reference"] = self.reference.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        self.last, self.reference = dict(state.get("last", {})), None
        if "reference" in state:
            self.reference = copy.deepcopy(model).eval().requires_grad_(False)
            self.reference.load_state_dict(state["reference"])

    def input_stats(
        self, model: nn.Module, rows: dict[str, torch.Tensor], k: int, generator=None
    ) -> dict[str, torch.Tensor]:
        """Per input of ``rows``: ``reward_mean``, ``reward_std`` (population std over ``k``
        sampled answers) and ``grad_norm``, the norm over every trainable parameter of the
        gradient of ``(1/k) sum_j (r_j - b_j) log p(y_j | x)``; each ``(n,)``."""
        samples, rep, rewards = self.sample(model, rows, k, generator)
        r = rewards.view(-1, k)
        params = [p for p in model.parameters() if p.requires_grad]
        norms = []
        for i in range(len(r)):
            if bool((r[i] == r[i, 0]).all()):  # the estimate is exactly 0: no pass needed
                norms.append(0.0)
                continue
            sl = slice(i * k, (i + 1) * k)
            one = {key: v[sl] for key, v in rep.items()}
            mask = generated_mask(samples[sl], one["prompt_len"], self.task.eos_id)
            logp, _ = answer_logprob(model, samples[sl], mask, self.rft.temperature)
            grads = torch.autograd.grad(-reinforce_loss(logp.view(1, k), r[i : i + 1]), params)
            norms.append(torch.sqrt(sum(g.pow(2).sum() for g in grads)).item())
        return {
            "reward_mean": r.mean(1),
            "reward_std": r.std(1, unbiased=False),
            "grad_norm": torch.tensor(norms),
        }
