"""Modular arithmetic written as token sequences, for Transformer grokking (Power et al. 2022).

The examples, labels, train/test split and label noise are exactly those of the ``modular``
family (same parameters, same seed, same table); each example ``(a, b) -> c`` becomes the row

    <bos> a op b = c <eos>

with one token per residue (``"0" .. "p-1"``), one for the operation and one for ``=``. As in
Power et al. (2022) only the right-hand side is trained on: ``loss_mask`` is True at ``c`` and
``<eos>``, ``answer_mask`` at ``c``; the model is prompted with ``<bos> a op b =``.

>>> task = make_task("modular_seq", op="add", p=5, train_fraction=0.6, seed=0)
>>> task.decode(task.split("train")["tokens"][0])
'<bos> 3 + 4 = 2 <eos>'
>>> task.model_dims()
{'vocab_size': 11, 'block_size': 7}

Many-term addition (``n_terms: k``) writes ``a1 + a2 + ... + ak =``. The table is small, so the
training set is fixed (needed for grokking); ``sample`` draws rows of it.
"""

from __future__ import annotations

import torch

from learnscope.tasks.base import Split, Task, make_task
from learnscope.tasks.modular import ModularParams, ModularTask

__all__ = ["ModularSeqTask", "make_task"]

SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


class ModularSeqParams(ModularParams):
    pass


class ModularSeqTask(Task):
    """``f(a, b) mod p`` as ``<bos> a op b = c <eos>``, on the ``modular`` family's splits."""

    name = "modular_seq"
    Params = ModularSeqParams
    kind = "sequence"

    def __init__(self, params: ModularSeqParams) -> None:
        super().__init__(params)
        table = ModularTask(ModularParams(**params.model_dump()))
        p, k = table.p, table.n_terms
        self.op_symbol = SYMBOLS.get(params.op, params.op)
        self.vocab = ["<pad>", "<bos>", "<eos>", "<pause>", "=", self.op_symbol]
        self.vocab += [str(i) for i in range(p)]
        self.index = {tok: i for i, tok in enumerate(self.vocab)}
        self.pad_id, self.bos_id, self.eos_id, self.pause_id = 0, 1, 2, 3
        self.digit0 = 6
        self.residue_tokens = list(range(self.digit0, self.digit0 + p))  # "0" .. "p-1"
        self.prompt = 2 * k + 1  # <bos> a1 op ... ak =
        self.splits = {name: self._rows(split["x"], split["y"]) for name, split in table}

    def _rows(self, x: torch.Tensor, y: torch.Tensor) -> Split:
        n, k = x.shape
        tokens = torch.zeros(n, self.prompt + 2, dtype=torch.long)
        tokens[:, 0] = self.bos_id
        tokens[:, 1 : 2 * k : 2] = x + self.digit0
        tokens[:, 2 : 2 * k - 1 : 2] = self.index[self.op_symbol]
        tokens[:, 2 * k] = self.index["="]
        tokens[:, self.prompt] = y + self.digit0
        tokens[:, self.prompt + 1] = self.eos_id
        loss_mask = torch.zeros_like(tokens, dtype=torch.bool)
        loss_mask[:, self.prompt :] = True
        answer_mask = torch.zeros_like(loss_mask)
        answer_mask[:, self.prompt] = True
        prompt_len = torch.full((n,), self.prompt, dtype=torch.long)
        return Split(
            {
                "tokens": tokens,
                "loss_mask": loss_mask,
                "answer_mask": answer_mask,
                "prompt_len": prompt_len,
            }
        )

    def encode(self, text_tokens: list[str]) -> list[int]:
        return [self.index[t] for t in text_tokens]

    def decode(self, ids) -> str:
        return " ".join(self.vocab[int(i)] for i in ids if int(i) != self.pad_id)

    def model_dims(self) -> dict[str, int]:
        return {"vocab_size": len(self.vocab), "block_size": self.prompt + 2}

    def answers(self, split: str) -> list[int]:
        return (self.split(split)["tokens"][:, self.prompt] - self.digit0).tolist()

    def score(self, predictions: torch.Tensor, split: str) -> float:
        """Fraction of rows whose generated answer token equals ``c``."""
        truth = self.split(split)["tokens"][:, self.prompt]
        return (predictions[:, self.prompt].to(truth.device) == truth).float().mean().item()

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``n`` rows of the (fixed) training split, drawn with replacement."""
        train = self.split("train")
        return train.rows(torch.randint(len(train), (n,), generator=generator))
