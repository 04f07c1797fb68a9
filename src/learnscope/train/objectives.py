"""What a batch's loss and accuracy are, for each kind of task.

The trainer does not know about labels, masks or decoding: it asks the objective of the
task's ``kind``. ``classification``: the model maps ``x`` to logits ``(b, C)``; the loss is
cross-entropy, or MSE on one-hot targets (the squared error summed over the C classes and
averaged over the batch, as in Gromov 2023); accuracy is argmax == label. ``sequence``: see
:class:`SequenceObjective`; ``mlm`` (masked tokens): see :class:`MLMObjective`. ``views``
(``learnscope.tasks.views``): supervised as classification, or self-supervised on the views
with ``train.objective: vicreg`` or ``mmcr`` (:class:`~learnscope.train.ssl.ViewsSSLObjective`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from learnscope.errors import UserError
from learnscope.train.base_objective import Objective
from learnscope.train.gradients import stablemax_cross_entropy
from learnscope.train.ssl import ViewsSSLObjective


class ClassificationObjective(Objective):
    """Cross-entropy (or MSE on one-hot targets) of ``logits: (b, C)`` against ``y: (b,)``.

    Training options for class imbalance (Shwartz-Ziv et al. 2023, "Simplifying neural network
    training under class imbalance"): ``label_smoothing = e`` trains against
    ``(1 - e) onehot(y) + e / C``; ``class_weights: (C,)`` weight row ``i``'s loss by
    ``w[y_i]`` and divide by ``sum_i w[y_i]`` (``F.cross_entropy``'s weighted mean). The
    evaluated ``loss`` is always the plain one (no smoothing, no weights), so runs with
    different options compare; ``train_step/loss`` is the objective actually trained.
    """

    def __init__(
        self,
        loss: str = "ce",
        label_smoothing: float = 0.0,
        class_weights: torch.Tensor | None = None,
    ) -> None:
        if loss == "stablemax_ce" and (label_smoothing or class_weights is not None):
            raise UserError(
                "train.loss: stablemax_ce goes without label_smoothing and reweight (plain ce)"
            )
        self.loss_name = loss
        self.label_smoothing = label_smoothing
        self.class_weights = class_weights

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        y = batch["y"]
        if self.loss_name != "ce":
            return self.plain_loss(logits, y)
        if self.class_weights is None:
            return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        # row i weighted by w[y_i] (F.cross_entropy's weight= would also weight the smoothing
        # term's classes, pulling every row towards the heavily weighted classes)
        w = self.class_weights.to(logits.device)[y]
        rows = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing, reduction="none")
        return (w * rows).sum() / w.sum()

    def plain_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "ce":
            return F.cross_entropy(logits, y)
        if self.loss_name == "stablemax_ce":
            return stablemax_cross_entropy(logits, y)
        target = F.one_hot(y, logits.shape[-1]).to(logits.dtype)
        return (logits - target).pow(2).sum(-1).mean()

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["x"])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Loss and exact-match accuracy on one batch (the trainer chunks large splits)."""
        logits = self.forward(model, batch)
        out = {
            "loss": self.plain_loss(logits, batch["y"]).item(),
            "acc": (logits.argmax(-1) == batch["y"]).float().mean().item(),
        }
        if "y_true" in batch:  # rows with corrupted labels: scored against the truth too
            out["true_acc"] = (logits.argmax(-1) == batch["y_true"]).float().mean().item()
        return out


def inverse_frequency(counts: list[int]) -> torch.Tensor:
    """Class weights ``w_c = N / (C n_c)`` (0 for a class without rows): a balanced split
    gets ``w = 1``; the weighted loss counts every class as if it had ``N / C`` rows.

    >>> inverse_frequency([30, 10, 0]).tolist()
    [0.6666666865348816, 2.0, 0.0]
    """
    n = torch.tensor(counts, dtype=torch.float32)
    present = n > 0
    w = torch.zeros_like(n)
    w[present] = n.sum() / (present.sum() * n[present])
    return w


def class_accuracy(pred: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Accuracy per class ``(C,)`` (NaN for a class without rows).

    >>> class_accuracy(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 1]), 3).tolist()
    [0.5, 0.5, nan]
    """
    hits = torch.bincount(y, weights=(pred == y).double(), minlength=n_classes)
    rows = torch.bincount(y, minlength=n_classes).double()
    return hits / rows


class LongTailObjective(ClassificationObjective):
    """A classification objective for a long-tailed training split (``train.info
    ["class_counts"]``, see :func:`learnscope.tasks.base.long_tail`): it also reports, per
    eval split, ``class_acc/{c}`` for every class, ``balanced_acc`` (their mean over the
    classes present) and ``minority_acc`` (their mean over the ``floor(C / 2)`` classes with
    the fewest training rows, ties to the higher class index: the tail).
    """

    def __init__(self, loss: str, label_smoothing: float, class_weights, counts: list[int]):
        super().__init__(loss, label_smoothing, class_weights)
        self.n_classes = len(counts)
        order = sorted(range(self.n_classes), key=lambda c: (counts[c], -c))
        self.minority = torch.tensor(sorted(order[: self.n_classes // 2]), dtype=torch.long)

    @torch.no_grad()
    def evaluate_split(self, model: nn.Module, task, name: str, split) -> dict[str, float]:
        logits = torch.cat(
            [
                self.forward(model, split.rows(torch.arange(i, min(i + EVAL_ROWS, len(split)))))
                for i in range(0, len(split), EVAL_ROWS)
            ]
        )
        y = split["y"]
        per_class = class_accuracy(logits.argmax(-1).cpu(), y.cpu(), self.n_classes)
        out = {
            "loss": self.plain_loss(logits, y).item(),
            "acc": (logits.argmax(-1) == y).float().mean().item(),
            "balanced_acc": per_class.nanmean().item(),
            "minority_acc": per_class[self.minority].nanmean().item(),
        }
        out.update({f"class_acc/{c}": v for c, v in enumerate(per_class.tolist()) if v == v})
        return out


EVAL_ROWS = 512  # rows per forward pass when evaluating or decoding a sequence split


@torch.no_grad()
def greedy_decode(
    model: nn.Module,
    tokens: torch.Tensor,
    prompt_len: torch.Tensor,
    eos_id: int | None = None,
    cache: bool = True,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Batched greedy decoding (rows as in ``learnscope.tasks.sequence``): full rows ``(n, T)``.
    ``positions: (n, T)``: the rows' position ids (``pos_ids``), given to the model with the
    tokens (a GPT with ``pos`` coupled or abacus).

    For ``t`` from ``min(prompt_len)`` to ``T - 1``: ``next = argmax model(out[:, :t])[:, -1]``
    and ``out[:, t] = next`` where ``t >= prompt_len`` (the prompt is kept). Once every row has
    generated ``eos_id``, the remaining positions are set to 0 (``<pad>``) and decoding stops.

    With ``cache`` and a model in eval mode that has one (``new_cache``: the causal GPT's
    :class:`~learnscope.models.gpt.KVCache`, the UT's :class:`~learnscope.models.ut.UTCache`),
    the logits come from it: ``out[:, :min(prompt_len)]`` in one pass, then only
    ``out[:, t - 1]`` per step.
    They equal the uncached logits up to float rounding, so the tokens are the same unless two
    logits tie to within ~1e-6; ``cache=False`` (or any other model) runs the prefix each step.

    >>> from learnscope.models.gpt import GPT, GPTConfig
    >>> net = GPT(GPTConfig(vocab_size=5, block_size=6, d_model=8, n_head=2, n_layer=1)).eval()
    >>> out = greedy_decode(net, torch.tensor([[1, 2, 3, 0, 0, 0]]), torch.tensor([3]))
    >>> out.shape, out[0, :3].tolist()
    (torch.Size([1, 6]), [1, 2, 3])
    """
    return _decode(model, tokens, prompt_len, eos_id, cache, lambda z: z.argmax(-1), positions)


@torch.no_grad()
def sample_decode(
    model: nn.Module,
    tokens: torch.Tensor,
    prompt_len: torch.Tensor,
    eos_id: int | None = None,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    cache: bool = True,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Batched sampling, as :func:`greedy_decode` but ``next ~ softmax(logits / temperature)``
    (drawn with ``generator``, on the logits' device). Rows that end earlier than others keep
    sampling after their ``<eos>``; a reader cuts each row at its first ``<eos>``.

    >>> from learnscope.models.gpt import GPT, GPTConfig
    >>> net = GPT(GPTConfig(vocab_size=5, block_size=6, d_model=8, n_head=2, n_layer=1)).eval()
    >>> out = sample_decode(net, torch.tensor([[1, 2, 3, 0, 0, 0]]), torch.tensor([3]))
    >>> out.shape, out[0, :3].tolist()
    (torch.Size([1, 6]), [1, 2, 3])
    """

    def pick(logits: torch.Tensor) -> torch.Tensor:
        probs = (logits.float() / temperature).softmax(-1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]

    return _decode(model, tokens, prompt_len, eos_id, cache, pick, positions)


def _decode(model, tokens, prompt_len, eos_id, cache, pick, positions=None) -> torch.Tensor:
    """The decoding loop of :func:`greedy_decode`; ``pick: (n, V) logits -> (n,) tokens``."""
    out = tokens.clone()
    done = torch.zeros(len(out), dtype=torch.bool, device=out.device)
    new_cache = getattr(model, "new_cache", None)  # the GPT's and the UT's
    kv = new_cache(out.shape[1]) if cache and new_cache and not model.training else None
    for t in range(int(prompt_len.min()), out.shape[1]):
        first = 0 if kv is None else kv.len
        extra = {} if positions is None else {"positions": positions[:, first:t]}
        args = (out[:, first:t],) if kv is None else (out[:, first:t], kv)
        logits = model(*args, **extra)
        nxt = pick(logits[:, -1])
        gen = t >= prompt_len
        out[:, t] = torch.where(gen, nxt, out[:, t])
        if eos_id is not None:
            done |= gen & (nxt == eos_id)
            if bool(done.all()):
                out[:, t + 1 :] = 0
                break
    return out


class SequenceObjective(Objective):
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
        n = self._length(batch) - 1
        if "pos_ids" in batch:  # the task's position ids (model.pos coupled or abacus)
            return model(batch["tokens"][:, :n], positions=batch["pos_ids"][:, :n])
        return model(batch["tokens"][:, :n])

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
            pos = split.tensors.get("pos_ids")
            predictions[rows] = greedy_decode(
                model,
                split["tokens"][rows],
                split["prompt_len"][rows],
                eos,
                positions=None if pos is None else pos[rows],
            )
        score = task.score(predictions, name)
        return score if m == n else (round(score * n) - (n - m)) / m


class MLMObjective(Objective):
    """Masked-token prediction with a bidirectional encoder (BERT; Chen et al. 2024, "Sudden
    drops in the loss"), on rows of a task of kind ``mlm`` (``learnscope.tasks.pcfg``).

    ``logits = model(inputs)``, ``(b, T, V)``, the inputs having ``<mask>`` at the masked
    positions; ``loss = mean over (i, t) with loss_mask[i, t] of -log softmax(logits[i, t])
    [tokens[i, t]]`` (the mean is over masked tokens). Eval, per split: that ``loss`` and
    ``acc``, the argmax accuracy on the masked tokens, over the whole split.
    """

    def __init__(self, loss: str = "ce") -> None:
        if loss != "ce":
            raise UserError(f"train.loss: masked-LM tasks train with 'ce' (got {loss!r})")

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["inputs"])

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["loss_mask"]
        return F.cross_entropy(logits[mask].float(), batch["tokens"][mask])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        logits = self.forward(model, batch)
        mask = batch["loss_mask"]
        hits = logits[mask].argmax(-1) == batch["tokens"][mask]
        return {"loss": self.loss(logits, batch).item(), "acc": hits.float().mean().item()}

    @torch.no_grad()
    def evaluate_split(self, model: nn.Module, task, name: str, split) -> dict[str, float]:
        """``loss`` and ``acc`` over every masked token of the split."""
        loss_sum = hits = count = 0.0
        for start in range(0, len(split), EVAL_ROWS):
            rows = torch.arange(start, min(start + EVAL_ROWS, len(split)), device=_dev(split))
            batch = split.rows(rows)
            logits = self.forward(model, batch)
            mask = batch["loss_mask"]
            picked, target = logits[mask].float(), batch["tokens"][mask]
            loss_sum += F.cross_entropy(picked, target, reduction="sum").item()
            hits += (picked.argmax(-1) == target).sum().item()
            count += mask.sum().item()
        return {"loss": loss_sum / max(count, 1), "acc": hits / max(count, 1)}


def _dev(split) -> torch.device:
    return next(iter(split.tensors.values())).device


def make_objective(kind: str, cfg, task=None):
    """The objective for tasks of ``kind``, configured from a ``TrainConfig`` (and, for the
    class weights and per-class metrics of a long-tailed split, the ``task``).
    ``train.objective``: ``task`` for the task kind's own, or a self-supervised one; the
    trainer builds :class:`~learnscope.train.rft.RFTObjective` for ``rft``."""
    name = getattr(cfg, "objective", "task")
    if name in ("vicreg", "mmcr"):
        if kind != "views":
            raise UserError(
                f"train.objective: {name} trains on augmented views; allowed for this task: "
                "task, rft (sequence tasks)"
            )
        return ViewsSSLObjective(name, cfg.ssl)
    if getattr(cfg, "loss", "ce") == "stablemax_ce" and kind != "classification":
        raise UserError(f"train.loss: stablemax_ce is for classification tasks (this is {kind})")
    if kind == "sequence":
        return SequenceObjective(cfg.loss, getattr(cfg, "eval_examples", None))
    if kind == "regression":  # learnscope.tasks.teacher
        from learnscope.train.regression import RegressionObjective

        return RegressionObjective(cfg.loss, task.params.tolerance if task is not None else 0.1)
    if kind != "classification":
        return OBJECTIVES[kind](cfg.loss)
    smoothing = getattr(cfg, "label_smoothing", 0.0)
    counts = None if task is None else task.split("train").info.get("class_counts")
    if getattr(cfg, "reweight", "none") == "inverse_frequency":
        if counts is None:
            counts = torch.bincount(task.split("train")["y"], minlength=task.model_dims()["n_out"])
            counts = counts.tolist()
        weights = inverse_frequency(counts)
    else:
        weights = None
    if task is not None and "class_counts" in task.split("train").info:
        return LongTailObjective(cfg.loss, smoothing, weights, counts)
    return ClassificationObjective(cfg.loss, smoothing, weights)


OBJECTIVES = {
    "classification": ClassificationObjective,
    "views": ClassificationObjective,  # supervised on the clean inputs x and labels y
    "sequence": SequenceObjective,
    "mlm": MLMObjective,
}
