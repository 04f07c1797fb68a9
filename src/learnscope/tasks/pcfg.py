"""Sentences of a small probabilistic context-free grammar, with their dependency trees, for
masked-language modelling (Chen et al. 2024, "Sudden drops in the loss: syntax acquisition,
phase transitions, and simplicity bias in MLMs"; toy stand-in for BERT's corpus).

The grammar (:data:`GRAMMAR`) has number agreement (determiner-noun, subject-verb) and
selection: nouns come in three classes ``k`` (animal, person, thing); an intransitive verb
selects its subject's class, a transitive verb its object's, an adjective and a preposition
the class of their noun. Prepositional phrases attach to nouns or verbs (recursive, so lengths
vary). Each word is then predictable mostly from its syntactic neighbours, which is what
makes attention along dependency edges pay::

    S        -> NP_n_k VP_n_k                  (n = sg/pl, k = class, 1/6 each; head: the VP)
    NP_n_k   -> Det_n N_n_k | Det_n Adj_k N_n_k | NP_n_k PP           (head: the noun)
    VP_n_k   -> Vi_n_k | Vt_n_m NP_o_m | VP_n_k PP  (head: the verb; m, o drawn uniformly)
    PP       -> P_m NP_o_m                                            (head: the preposition)

Every rule names its head child; a word's parent (its syntactic head) is the head word of the
constituent it attaches to, the sentence's main verb is the root (parent -1). So ``the wild
dog chases a cat`` has parents ``[2, 2, 3, -1, 5, 3]``: determiner and adjective -> noun,
subject noun -> verb, object noun -> verb (a Stanford-style tree, prepositions heading PPs).

Harder settings (defaults leave the grammar above unchanged): ``pp_prob`` sets the
probability of the two recursive rules (0.15 above; the other NP and VP rules keep their
proportions), so more prepositional phrases come between a noun and its verb (``the dog
behind the teachers under the trees barks``: agreement at a distance); ``min_len`` redraws
sentences shorter than that many words.

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
from pydantic import Field, model_validator

from learnscope.errors import UserError
from learnscope.tasks.base import Split, Task, TaskParams, make_task

__all__ = ["GRAMMAR", "LEXICON", "PCFGParams", "PCFGTask", "grammar", "make_task"]

NUMBERS = ("sg", "pl")
KINDS = ("animal", "person", "thing")  # noun classes that heads select


def _np(n: str, k: str) -> list[tuple[float, tuple[str, ...], int]]:
    return [
        (0.55, (f"Det_{n}", f"N_{n}_{k}"), 1),
        (0.3, (f"Det_{n}", f"Adj_{k}", f"N_{n}_{k}"), 2),
        (0.15, (f"NP_{n}_{k}", "PP"), 0),
    ]


def _vp(n: str, k: str) -> list[tuple[float, tuple[str, ...], int]]:
    objects = [(0.5 / 3 / 2, (f"Vt_{n}_{m}", f"NP_{o}_{m}"), 0) for m in KINDS for o in NUMBERS]
    return [(0.35, (f"Vi_{n}_{k}",), 0), *objects, (0.15, (f"VP_{n}_{k}", "PP"), 0)]


#: nonterminal -> [(probability, children, index of the head child)]
GRAMMAR: dict[str, list[tuple[float, tuple[str, ...], int]]] = {
    "S": [(1 / 6, (f"NP_{n}_{k}", f"VP_{n}_{k}"), 1) for n in NUMBERS for k in KINDS],
    **{f"NP_{n}_{k}": _np(n, k) for n in NUMBERS for k in KINDS},
    **{f"VP_{n}_{k}": _vp(n, k) for n in NUMBERS for k in KINDS},
    "PP": [(1 / 6, (f"P_{k}", f"NP_{n}_{k}"), 0) for n in NUMBERS for k in KINDS],
}

#: the probability of the recursive rules (NP -> NP PP, VP -> VP PP) in :data:`GRAMMAR`
PP_PROB = 0.15


def grammar(pp_prob: float = PP_PROB) -> dict[str, list[tuple[float, tuple[str, ...], int]]]:
    """:data:`GRAMMAR` with its two recursive rules (``NP -> NP PP``, ``VP -> VP PP``) at
    probability ``pp_prob`` and the other NP and VP rules scaled by ``(1 - pp_prob) / 0.85``
    (their proportions kept); ``pp_prob = 0.15`` is :data:`GRAMMAR` itself. A larger
    ``pp_prob`` gives longer sentences with more nouns between a word and its head (e.g. the
    subject noun and its verb: agreement at a distance)."""
    if pp_prob == PP_PROB:
        return GRAMMAR
    scale = (1 - pp_prob) / (1 - PP_PROB)
    out = {}
    for symbol, rules in GRAMMAR.items():
        if symbol.startswith(("NP_", "VP_")):
            rules = [
                (pp_prob if children[-1] == "PP" else p * scale, children, head)
                for p, children, head in rules
            ]
        out[symbol] = rules
    return out


#: preterminal -> its words (drawn uniformly); a word belongs to one preterminal (but "the")
LEXICON: dict[str, tuple[str, ...]] = {
    "Det_sg": ("the", "a", "this"),
    "Det_pl": ("the", "some", "these"),
    "N_sg_animal": ("dog", "cat"),
    "N_pl_animal": ("dogs", "cats"),
    "N_sg_person": ("child", "teacher"),
    "N_pl_person": ("children", "teachers"),
    "N_sg_thing": ("house", "tree"),
    "N_pl_thing": ("houses", "trees"),
    "Adj_animal": ("hungry", "wild"),
    "Adj_person": ("happy", "tall"),
    "Adj_thing": ("red", "old"),
    "Vi_sg_animal": ("barks", "sleeps"),
    "Vi_pl_animal": ("bark", "sleep"),
    "Vi_sg_person": ("laughs", "waits"),
    "Vi_pl_person": ("laugh", "wait"),
    "Vi_sg_thing": ("falls", "breaks"),
    "Vi_pl_thing": ("fall", "break"),
    "Vt_sg_animal": ("feeds", "chases"),  # the object's class
    "Vt_pl_animal": ("feed", "chase"),
    "Vt_sg_person": ("helps", "meets"),
    "Vt_pl_person": ("help", "meet"),
    "Vt_sg_thing": ("buys", "paints"),
    "Vt_pl_thing": ("buy", "paint"),
    "P_animal": ("beside",),
    "P_person": ("behind",),
    "P_thing": ("under", "inside"),
}

SPECIALS = ("<pad>", "<mask>")


class PCFGParams(TaskParams):
    n_train: int = Field(4096, ge=1, le=10**6, description="training sentences (fixed set)")
    n_test: int = Field(512, ge=1, le=10**6)
    max_len: int = Field(16, ge=3, le=256, description="longest sentence, in words")
    mask_prob: float = Field(0.15, gt=0, lt=1, description="fraction of words masked")
    fresh: bool = Field(False, description="draw fresh sentences for every training batch")
    pp_prob: float = Field(
        PP_PROB,
        ge=0,
        le=0.45,
        description="probability of NP -> NP PP and VP -> VP PP (more: longer sentences, "
        "agreement across intervening nouns)",
    )
    min_len: int = Field(1, ge=1, le=256, description="shortest sentence, in words")

    @model_validator(mode="after")
    def _lengths(self) -> PCFGParams:
        if self.min_len > self.max_len:
            raise ValueError(f"min_len ({self.min_len}) must be <= max_len ({self.max_len})")
        return self


#: draws of a sentence before a length window that no sentence meets is refused
MAX_DRAWS = 100_000


def generate(
    symbol: str, rng: np.random.Generator, rules_of: dict | None = None
) -> tuple[list[str], list[int], int]:
    """A random derivation of ``symbol`` (under ``rules_of``, default :data:`GRAMMAR`): its
    words, each word's parent (an index into the words, -1 for the constituent's head) and the
    index of its head word."""
    if symbol in LEXICON:
        words = LEXICON[symbol]
        return [words[int(rng.random() * len(words))]], [-1], 0
    rules_of = GRAMMAR if rules_of is None else rules_of
    rules, u = rules_of[symbol], rng.random()
    k = 0
    while k < len(rules) - 1 and u >= rules[k][0]:
        u -= rules[k][0]
        k += 1
    _, children, head_child = rules[k]
    words: list[str] = []
    parents: list[int] = []
    heads: list[int] = []
    for child in children:
        w, p, h = generate(child, rng, rules_of)
        offset = len(words)
        words += w
        parents += [q + offset if q >= 0 else -1 for q in p]
        heads.append(h + offset)
    head = heads[head_child]
    for i, h in enumerate(heads):  # each non-head child's head word attaches to the head
        if i != head_child:
            parents[h] = head
    return words, parents, head


def sentence(
    rng: np.random.Generator, max_len: int, min_len: int = 1, rules_of: dict | None = None
) -> tuple[list[str], list[int]]:
    """A sentence of ``min_len`` to ``max_len`` words and its dependency parents (root: -1),
    drawn from ``rules_of`` (default :data:`GRAMMAR`)."""
    for _ in range(MAX_DRAWS):
        try:
            words, parents, _ = generate("S", rng, rules_of)
        except RecursionError:  # a runaway recursion (probability ~0): draw again
            continue
        if min_len <= len(words) <= max_len:
            return words, parents
    raise UserError(
        f"task: no sentence of {min_len} to {max_len} words in {MAX_DRAWS} draws: lower "
        f"task.min_len, raise task.max_len or task.pp_prob"
    )


class PCFGTask(Task):
    name = "pcfg"
    Params = PCFGParams
    kind = "mlm"

    def __init__(self, params: PCFGParams) -> None:
        super().__init__(params)
        self.vocab = list(SPECIALS) + sorted({w for ws in LEXICON.values() for w in ws})
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.pad_id, self.mask_id = 0, 1
        self.rules = grammar(params.pp_prob)
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
            words, heads = sentence(rng, t, self.params.min_len, self.rules)
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
