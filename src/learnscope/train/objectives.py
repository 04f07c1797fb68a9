"""What a batch's loss and accuracy are, for each kind of task.

The trainer does not know about labels, masks or decoding: it asks the objective of the
task's ``kind``. ``classification``: the model maps ``x`` to logits ``(b, C)``; the loss is
cross-entropy, or MSE on one-hot targets (the squared error summed over the C classes and
averaged over the batch, as in Gromov 2023); accuracy is argmax == label. ``sequence``: see
:class:`SequenceObjective`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from learnscope.errors import UserError
from learnscope.models.gpt import GPT, KVCache


class ClassificationObjective:
    def __init__(self, loss: str = "ce") -> None:
        self.loss_name = loss

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        y = batch["y"]
        if self.loss_name == "ce":
            return F.cross_entropy(logits, y)
        target = F.one_hot(y, logits.shape[-1]).to(logits.dtype)
        return (logits - target).pow(2).sum(-1).mean()

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["x"])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Loss and exact-match accuracy on one batch (the trainer chunks large splits)."""
        logits = self.forward(model, batch)
        out = {
            "loss": self.loss(logits, batch).item(),
            "acc": (logits.argmax(-1) == batch["y"]).float().mean().item(),
        }
        if "y_true" in batch:  # rows with corrupted labels: scored against the truth too
            out["true_acc"] = (logits.argmax(-1) == batch["y_true"]).float().mean().item()
        return out


EVAL_ROWS = 512  # rows per forward pass when evaluating or decoding a sequence split


@torch.no_grad()
def greedy_decode(
    model: nn.Module,
    tokens: torch.Tensor,
    prompt_len: torch.Tensor,
    eos_id: int | None = None,
    cache: bool = True,
) -> torch.Tensor:
    """Batched greedy decoding (rows as in ``learnscope.tasks.sequence``): full rows ``(n, T)``.

    For ``t`` from ``min(prompt_len)`` to ``T - 1``: ``next = argmax model(out[:, :t])[:, -1]``
    and ``out[:, t] = next`` where ``t >= prompt_len`` (the prompt is kept). Once every row has
    generated ``eos_id``, the remaining positions are set to 0 (``<pad>``) and decoding stops.

    With ``cache`` and a :class:`~learnscope.models.gpt.GPT` in eval mode, the logits come from
    a KV cache: ``out[:, :min(prompt_len)]`` in one pass, then only ``out[:, t - 1]`` per step.
    They equal the uncached logits up to float rounding, so the tokens are the same unless two
    logits tie to within ~1e-6; ``cache=False`` (or any other model) runs the prefix each step.

    >>> from learnscope.models.gpt import GPT, GPTConfig
    >>> net = GPT(GPTConfig(vocab_size=5, block_size=6, d_model=8, n_head=2, n_layer=1)).eval()
    >>> out = greedy_decode(net, torch.tensor([[1, 2, 3, 0, 0, 0]]), torch.tensor([3]))
    >>> out.shape, out[0, :3].tolist()
    (torch.Size([1, 6]), [1, 2, 3])
    """
    out = tokens.clone()
    done = torch.zeros(len(out), dtype=torch.bool, device=out.device)
    kv = KVCache(out.shape[1]) if cache and isinstance(model, GPT) and not model.training else None
    for t in range(int(prompt_len.min()), out.shape[1]):
        logits = model(out[:, :t]) if kv is None else model(out[:, kv.len : t], kv)
        nxt = logits[:, -1].argmax(-1)
        gen = t >= prompt_len
        out[:, t] = torch.where(gen, nxt, out[:, t])
        if eos_id is not None:
            done |= gen & (nxt == eos_id)
            if bool(done.all()):
                out[:, t + 1 :] = 0
                break
    return out


class SequenceObjective:
    """Next-token cross-entropy on the target tokens of a sequence task (rows as in
    ``learnscope.tasks.sequence``).

    ``loss = mean over (i, t) with loss_mask[i, t+1] of -log softmax(logits[i, t])[tokens[i, t+1]]``
    (the mean is over target tokens, not rows). Columns after the batch's last target token
    are cut before the forward pass. Eval, per split: ``loss`` (the same, over the split),
    ``token_acc`` (teacher-forced argmax == target on the loss mask), ``acc``
    (``task.score`` of batched greedy decoding, :func:`greedy_decode`) on the first
    ``eval_examples`` rows of the split (all rows when None), and for a model with adaptive
    depth (``ponder_steps``, the UT) ``steps``: the mean steps taken at the target positions.
    """

    def __init__(self, loss: str = "ce", eval_examples: int | None = None) -> None:
        if loss != "ce":
            raise UserError(f"train.loss: sequence tasks train with 'ce' (got {loss!r})")
        self.eval_examples = eval_examples

    @staticmethod
    def _length(batch: dict[str, torch.Tensor]) -> int:
        """Columns up to and including the last target token of the batch."""
        cols = batch["loss_mask"].any(0).nonzero()
        return int(cols.max()) + 1 if len(cols) else 2

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """logits ``(b, L - 1, V)`` for the inputs ``tokens[:, :L-1]``."""
        return model(batch["tokens"][:, : self._length(batch) - 1])

    def _targets(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]):
        cols = logits.shape[1] + 1
        return batch["tokens"][:, 1:cols], batch["loss_mask"][:, 1:cols]

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        target, mask = self._targets(logits, batch)
        return F.cross_entropy(logits[mask].float(), target[mask])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Teacher-forced ``loss`` and ``token_acc`` of one batch."""
        logits = self.forward(model, batch)
        target, mask = self._targets(logits, batch)
        return {
            "loss": self.loss(logits, batch).item(),
            "token_acc": (logits[mask].argmax(-1) == target[mask]).float().mean().item(),
        }

    @torch.no_grad()
    def evaluate_split(self, model: nn.Module, task, name: str, split) -> dict[str, float]:
        """``loss`` and ``token_acc`` over the whole split, ``acc`` by greedy decoding."""
        n = len(split)
        loss_sum = hits = count = steps = 0.0
        for start in range(0, n, EVAL_ROWS):
            batch = split.rows(torch.arange(start, min(start + EVAL_ROWS, n), device=_dev(split)))
            logits = self.forward(model, batch)
            target, mask = self._targets(logits, batch)
            picked = logits[mask].float()
            loss_sum += F.cross_entropy(picked, target[mask], reduction="sum").item()
            hits += (picked.argmax(-1) == target[mask]).sum().item()
            count += mask.sum().item()
            if getattr(model, "ponder_steps", None) is not None:  # adaptive depth (the UT)
                steps += model.ponder_steps[mask].sum().item()
        out = {
            "loss": loss_sum / max(count, 1),
            "token_acc": hits / max(count, 1),
            "acc": self.decode_accuracy(model, task, name, split),
        }
        if getattr(model, "ponder_steps", None) is not None:  # steps taken at the targets
            out["steps"] = steps / max(count, 1)
        return out

    def decode_accuracy(self, model: nn.Module, task, name: str, split) -> float:
        """``task.score`` on the first ``eval_examples`` rows decoded greedily.

        ``task.score`` scores whole splits, so the rows not decoded are given their true
        tokens (which score as correct) and then taken out again:
        ``acc = (score * n - (n - m)) / m`` for ``m`` decoded rows out of ``n``.
        """
        n = len(split)
        m = n if self.eval_examples is None else min(n, self.eval_examples)
        predictions = split["tokens"].clone()
        eos = getattr(task, "eos_id", None)
        for start in range(0, m, EVAL_ROWS):
            rows = slice(start, min(start + EVAL_ROWS, m))
            predictions[rows] = greedy_decode(
                model, split["tokens"][rows], split["prompt_len"][rows], eos
            )
        score = task.score(predictions, name)
        return score if m == n else (round(score * n) - (n - m)) / m


def _dev(split) -> torch.device:
    return next(iter(split.tensors.values())).device


def make_objective(kind: str, cfg):
    """The objective for tasks of ``kind``, configured from a ``TrainConfig``."""
    if kind == "sequence":
        return SequenceObjective(cfg.loss, getattr(cfg, "eval_examples", None))
    return OBJECTIVES[kind](cfg.loss)


OBJECTIVES = {"classification": ClassificationObjective, "sequence": SequenceObjective}
