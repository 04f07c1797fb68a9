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


def test_the_default_grammar_is_unchanged_by_the_harder_options() -> None:
    from learnscope.tasks.pcfg import PP_PROB, grammar

    assert grammar() is GRAMMAR and grammar(PP_PROB) is GRAMMAR
    assert [p for p, _, _ in GRAMMAR["NP_sg_animal"]] == [0.55, 0.3, 0.15]
    a = make_task("pcfg", n_train=50, n_test=5, seed=4)
    b = make_task("pcfg", n_train=50, n_test=5, seed=4, pp_prob=PP_PROB, min_len=1)
    assert torch.equal(a.split("train")["tokens"], b.split("train")["tokens"])


def test_pp_prob_sets_the_recursive_rules_and_keeps_the_other_proportions() -> None:
    from learnscope.tasks.pcfg import grammar

    g = grammar(0.35)
    for symbol, rules in g.items():
        assert sum(p for p, _, _ in rules) == pytest.approx(1.0)
        assert [c for _, c, _ in rules] == [c for _, c, _ in GRAMMAR[symbol]]  # same rules
    np_rules = [p for p, _, _ in g["NP_pl_thing"]]
    assert np_rules[2] == 0.35 and np_rules[0] / np_rules[1] == pytest.approx(0.55 / 0.3)
    assert [p for p, _, _ in g["VP_sg_person"]][-1] == 0.35
    assert g["S"] == GRAMMAR["S"] and g["PP"] == GRAMMAR["PP"]
    assert [p for p, _, _ in grammar(0.0)["NP_sg_animal"]][2] == 0.0


def subject_verb_distance(task) -> float:
    """Mean number of words between the subject noun (the root's first dependent before it)
    and the root verb."""
    gaps = []
    for _words, parents in sentences(task):
        root = parents.index(-1)
        subject = min(i for i, p in enumerate(parents) if p == root)
        gaps.append(root - subject)
    return sum(gaps) / len(gaps)


def test_the_harder_grammar_gives_longer_sentences_and_distant_agreement() -> None:
    easy = make_task("pcfg", n_train=400, n_test=5, max_len=20, seed=2)
    hard = make_task("pcfg", n_train=400, n_test=5, max_len=20, min_len=8, pp_prob=0.35, seed=2)
    lengths = (hard.split("train")["tokens"] != hard.pad_id).sum(1)
    assert int(lengths.min()) >= 8 and int(lengths.max()) <= 20
    assert subject_verb_distance(hard) > subject_verb_distance(easy) + 1
    for words, parents in list(sentences(hard))[:60]:  # still sentences of the grammar
        assert parents in parses(words), words


def test_bad_harder_options_are_refused(monkeypatch) -> None:
    from learnscope.tasks import pcfg

    with pytest.raises(UserError, match="min_len"):
        make_task("pcfg", min_len=13, max_len=12)
    with pytest.raises(UserError, match="pp_prob"):
        make_task("pcfg", pp_prob=0.6)
    monkeypatch.setattr(pcfg, "MAX_DRAWS", 2000)  # the refusal after that many draws
    with pytest.raises(UserError, match="min_len"):  # no sentence that long without recursion
        make_task("pcfg", n_train=1, n_test=1, min_len=12, max_len=12, pp_prob=0.0)
