"""Sentences of a small probabilistic context-free grammar, with their dependency trees, for
masked-language modelling (Chen et al. 2024, "Sudden drops in the loss: syntax acquisition,
phase transitions, and simplicity bias in MLMs"; toy stand-in for BERT's corpus).

The grammar (:data:`GRAMMAR`) has subject-verb number agreement, transitive and intransitive
verbs, adjectives and prepositional phrases attached to nouns or verbs (recursive, so lengths
vary)::

    S      -> NP_n VP_n                       (n = sg or pl, drawn 1/2 each; head: the VP)
    NP_n   -> Det_n N_n | Det_n Adj N_n | NP_n PP  (head: the noun)
    VP_n   -> Vi_n | Vt_n NP | VP_n PP         (head: the verb; the object NP of either number)
    PP     -> P NP                             (head: the preposition)

Every rule names its head child; a word's parent (its syntactic head) is the head word of the
constituent it attaches to, the sentence's main verb is the root (parent -1). So ``the big
dog sees a cat`` has parents ``[2, 2, 3, -1, 5, 3]``: determiner and adjective -> noun,
subject noun -> verb, object noun -> verb (a Stanford-style tree, prepositions heading PPs).

Rows (``kind: "mlm"``): ``tokens: (n, T)`` the sentence's word ids then ``<pad>`` (0), ``T =
max_len``; ``inputs``: the same with each word replaced by ``<mask>`` (1) with probability
``mask_prob`` (at least one word per sentence; always ``<mask>``, not BERT's 80/10/10 split);
``loss_mask``: the masked positions; ``parents: (n, T)`` the position of each word's head
(-1 for the root and for padding). Sentences longer than ``max_len`` words are drawn again.

>>> task = make_task("pcfg", n_train=2, n_test=1, seed=0)
>>> train = task.split("train")
>>> tuple(train["tokens"].shape), tuple(train["parents"].shape)
((2, 16), (2, 16))
>>> int((train["parents"][0] == -1).sum() - (train["tokens"][0] == 0).sum())  # one root
1
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from learnscope.tasks.base import Split, Task, TaskParams, make_task

__all__ = ["GRAMMAR", "LEXICON", "PCFGParams", "PCFGTask", "make_task"]

#: nonterminal -> [(probability, children, index of the head child)]
GRAMMAR: dict[str, list[tuple[float, tuple[str, ...], int]]] = {
    "S": [(0.5, ("NP_sg", "VP_sg"), 1), (0.5, ("NP_pl", "VP_pl"), 1)],
    **{
        f"NP_{n}": [
            (0.55, (f"Det_{n}", f"N_{n}"), 1),
            (0.3, (f"Det_{n}", "Adj", f"N_{n}"), 2),
            (0.15, (f"NP_{n}", "PP"), 0),
        ]
        for n in ("sg", "pl")
    },
    **{
        f"VP_{n}": [
            (0.35, (f"Vi_{n}",), 0),
            (0.5, (f"Vt_{n}", "NP"), 0),
            (0.15, (f"VP_{n}", "PP"), 0),
        ]
        for n in ("sg", "pl")
    },
    "NP": [(0.5, ("NP_sg",), 0), (0.5, ("NP_pl",), 0)],
    "PP": [(1.0, ("P", "NP"), 0)],
}

#: preterminal -> its words (drawn uniformly)
LEXICON: dict[str, tuple[str, ...]] = {
    "Det_sg": ("the", "a", "every", "this"),
    "Det_pl": ("the", "some", "many", "these"),
    "Adj": ("big", "small", "red", "old", "happy", "quiet"),
    "N_sg": ("dog", "cat", "bird", "child", "teacher", "farmer", "house", "tree"),
    "N_pl": ("dogs", "cats", "birds", "children", "teachers", "farmers", "houses", "trees"),
    "Vi_sg": ("sleeps", "runs", "laughs", "waits"),
    "Vi_pl": ("sleep", "run", "laugh", "wait"),
    "Vt_sg": ("sees", "likes", "follows", "finds", "helps"),
    "Vt_pl": ("see", "like", "follow", "find", "help"),
    "P": ("near", "with", "under", "behind"),
}

SPECIALS = ("<pad>", "<mask>")


class PCFGParams(TaskParams):
    n_train: int = Field(4096, ge=1, le=10**6, description="training sentences (fixed set)")
    n_test: int = Field(512, ge=1, le=10**6)
    max_len: int = Field(16, ge=3, le=256, description="longest sentence, in words")
    mask_prob: float = Field(0.15, gt=0, lt=1, description="fraction of words masked")
    fresh: bool = Field(False, description="draw fresh sentences for every training batch")


def generate(symbol: str, rng: np.random.Generator) -> tuple[list[str], list[int], int]:
    """A random derivation of ``symbol``: its words, each word's parent (an index into the
    words, -1 for the constituent's head) and the index of its head word."""
    if symbol in LEXICON:
        words = LEXICON[symbol]
        return [words[int(rng.random() * len(words))]], [-1], 0
    rules, u = GRAMMAR[symbol], rng.random()
    k = 0
    while k < len(rules) - 1 and u >= rules[k][0]:
        u -= rules[k][0]
        k += 1
    _, children, head_child = rules[k]
    words: list[str] = []
    parents: list[int] = []
    heads: list[int] = []
    for child in children:
        w, p, h = generate(child, rng)
        offset = len(words)
        words += w
        parents += [q + offset if q >= 0 else -1 for q in p]
        heads.append(h + offset)
    head = heads[head_child]
    for i, h in enumerate(heads):  # each non-head child's head word attaches to the head
        if i != head_child:
            parents[h] = head
    return words, parents, head


def sentence(rng: np.random.Generator, max_len: int) -> tuple[list[str], list[int]]:
    """A sentence of at most ``max_len`` words and its dependency parents (root: -1)."""
    while True:
        try:
            words, parents, _ = generate("S", rng)
        except RecursionError:  # a runaway recursion (probability ~0): draw again
            continue
        if len(words) <= max_len:
            return words, parents


class PCFGTask(Task):
    name = "pcfg"
    Params = PCFGParams
    kind = "mlm"

    def __init__(self, params: PCFGParams) -> None:
        super().__init__(params)
        self.vocab = list(SPECIALS) + sorted({w for ws in LEXICON.values() for w in ws})
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.pad_id, self.mask_id = 0, 1
        rng = np.random.default_rng(params.seed)
        self.splits = {
            "train": Split(self._rows(params.n_train, rng)),
            "test": Split(self._rows(params.n_test, np.random.default_rng([params.seed, 1]))),
        }

    def _rows(self, n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        t = self.params.max_len
        tokens = np.zeros((n, t), dtype=np.int64)
        parents = np.full((n, t), -1, dtype=np.int64)
        for i in range(n):
            words, heads = sentence(rng, t)
            tokens[i, : len(words)] = [self.ids[w] for w in words]
            parents[i, : len(words)] = heads
        words_at = tokens != self.pad_id
        masked = (rng.random((n, t)) < self.params.mask_prob) & words_at
        for i in np.flatnonzero(~masked.any(1)):  # at least one masked word per sentence
            masked[i, rng.integers(words_at[i].sum())] = True
        inputs = np.where(masked, self.mask_id, tokens)
        return {
            "tokens": torch.from_numpy(tokens),
            "inputs": torch.from_numpy(inputs),
            "loss_mask": torch.from_numpy(masked),
            "parents": torch.from_numpy(parents),
        }

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``n`` fresh sentences, masked anew (seeded by ``generator``)."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return self._rows(n, np.random.default_rng(seed))

    def words(self, tokens: torch.Tensor) -> list[str]:
        """The words of a row ``tokens: (T,)`` (padding dropped)."""
        return [self.vocab[i] for i in tokens.tolist() if i != self.pad_id]

    def model_dims(self) -> dict[str, int]:
        return {"vocab_size": len(self.vocab), "block_size": self.params.max_len}

    def score(self, predictions: torch.Tensor, split: str) -> float:
        """Accuracy of predicted tokens ``(n, T)`` at the split's masked positions."""
        s = self.split(split)
        mask = s["loss_mask"]
        return (predictions.to(mask.device)[mask] == s["tokens"][mask]).float().mean().item()
