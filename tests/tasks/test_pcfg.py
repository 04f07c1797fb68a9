"""The PCFG task: its trees parse its sentences (an independent chart parser over the grammar),
every tree is a valid projective dependency tree, rows are seeded and masked as documented."""

from __future__ import annotations

import functools

import pytest
import torch

from learnscope.errors import UserError
from learnscope.tasks import make_task
from learnscope.tasks.pcfg import GRAMMAR, LEXICON


def parses(words: list[str]) -> set[tuple[int, ...]]:
    """Every dependency tree (parents, root -1) the grammar gives ``words``: a CKY chart over
    spans, each cell mapping a symbol to the set of (head position, parents within the span)."""
    n = len(words)

    @functools.cache
    def chart(symbol: str, i: int, j: int) -> frozenset[tuple[int, tuple[tuple[int, int], ...]]]:
        """Analyses of words[i:j] as ``symbol``: (head, ((word, parent), ...))."""
        if symbol in LEXICON:
            return (
                frozenset({(i, ())}) if j == i + 1 and words[i] in LEXICON[symbol] else frozenset()
            )
        out = set()
        for _, children, head_child in GRAMMAR[symbol]:
            for analysis in split(children, i, j):
                heads = [h for h, _ in analysis]
                arcs = tuple(a for _, arcs in analysis for a in arcs)
                head = heads[head_child]
                arcs += tuple((h, head) for k, h in enumerate(heads) if k != head_child)
                out.add((head, tuple(sorted(arcs))))
        return frozenset(out)

    def split(children: tuple[str, ...], i: int, j: int):
        """Every way to cover words[i:j] by ``children`` in order (each non-empty)."""
        if len(children) == 1:
            yield from ([a] for a in chart(children[0], i, j))
            return
        for k in range(i + 1, j - len(children) + 2):
            for first in chart(children[0], i, k):
                for rest in split(children[1:], k, j):
                    yield [first, *rest]

    trees = set()
    for _head, arcs in chart("S", 0, n):
        parents = [-1] * n
        for word, parent in arcs:
            parents[word] = parent
        trees.add(tuple(parents))
    return trees


def sentences(task, split: str = "train"):
    s = task.split(split)
    for tokens, parents in zip(s["tokens"], s["parents"]):
        words = task.words(tokens)
        yield words, tuple(parents[: len(words)].tolist())


def test_the_parser_reads_a_known_sentence() -> None:
    words = "the wild dog chases a cat".split()
    assert parses(words) == {(2, 2, 3, -1, 5, 3)}
    assert parses("the dog chase a cat".split()) == set()  # agreement is enforced
    assert parses("the dog chases a tree".split()) == set()  # so is selection
    # PP attachment is ambiguous: to the object noun or to the verb
    assert parses("the dog chases a cat under the tree".split()) == {
        (1, 2, -1, 4, 2, 4, 7, 5),
        (1, 2, -1, 4, 2, 2, 7, 5),
    }


def test_every_generated_tree_parses_its_sentence() -> None:
    task = make_task("pcfg", n_train=300, n_test=10, max_len=12, seed=3)
    for words, parents in sentences(task):
        assert parents in parses(words), words


def test_trees_are_valid_projective_dependency_trees() -> None:
    task = make_task("pcfg", n_train=500, n_test=10, seed=1)
    for words, parents in sentences(task):
        n = len(words)
        assert parents.count(-1) == 1 and all(-1 <= p < n and p != i for i, p in enumerate(parents))
        for i in range(n):  # every word reaches the root without a cycle
            seen, j = set(), i
            while parents[j] != -1:
                assert j not in seen
                seen.add(j)
                j = parents[j]
        for i, p in enumerate(parents):  # projective: no two arcs cross
            for k, q in enumerate(parents):
                if p >= 0 and q >= 0:
                    a, b, c, d = min(i, p), max(i, p), min(k, q), max(k, q)
                    assert not (a < c < b < d)


def test_rows_are_seeded_masked_and_padded() -> None:
    a = make_task("pcfg", n_train=200, n_test=20, seed=0)
    b = make_task("pcfg", n_train=200, n_test=20, seed=0)
    c = make_task("pcfg", n_train=200, n_test=20, seed=1)
    train = a.split("train")
    assert torch.equal(train["tokens"], b.split("train")["tokens"])
    assert not torch.equal(train["tokens"], c.split("train")["tokens"])
    words = train["tokens"] != a.pad_id
    mask = train["loss_mask"]
    assert bool((mask <= words).all()) and bool(mask.any(1).all())  # >= 1 masked word per row
    assert bool((train["inputs"][mask] == a.mask_id).all())
    assert torch.equal(train["inputs"][~mask], train["tokens"][~mask])
    assert bool((train["parents"][~words] == -1).all())
    rate = mask.sum() / words.sum()
    assert 0.12 < rate < 0.3  # 15% plus the one forced on short sentences


def test_fresh_batches_follow_the_generator() -> None:
    task = make_task("pcfg", n_train=8, n_test=8, fresh=True)
    one = task.sample(16, torch.Generator().manual_seed(5))
    two = task.sample(16, torch.Generator().manual_seed(5))
    assert torch.equal(one["tokens"], two["tokens"]) and torch.equal(one["inputs"], two["inputs"])
    assert one["tokens"].shape == (16, 16)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(UserError, match="mask_prob"):
        make_task("pcfg", mask_prob=0.0)
    with pytest.raises(UserError, match="max_len"):
        make_task("pcfg", max_len=2)
