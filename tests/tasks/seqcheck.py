"""Checks every sequence task must pass (the contract of ``tasks/sequence.py``)."""

from __future__ import annotations

import torch


def rows_text(task, split: str) -> list[dict]:
    """Each row of ``split`` cut into its parts, as token strings."""
    s = task.split(split)
    out = []
    for tok, lm, am, p in zip(s["tokens"], s["loss_mask"], s["answer_mask"], s["prompt_len"]):
        ids = tok.tolist()
        end = ids.index(task.eos_id)
        words = [task.vocab[i] for i in ids]
        answer_pos = am.nonzero().flatten().tolist()
        out.append(
            {
                "words": words,
                "end": end,
                "prompt": words[1 : int(p)],
                "generated": words[int(p) : end],
                "answer": [words[i] for i in answer_pos],
                "answer_pos": answer_pos,
                "loss_pos": lm.nonzero().flatten().tolist(),
                "prompt_len": int(p),
            }
        )
    return out


def check_contract(task, targets_in_prompt: bool = False) -> None:
    """Shapes, padding, masks and prompt lengths of every split; train disjoint from tests."""
    T = task.model_dims()["block_size"]
    assert task.model_dims()["vocab_size"] == len(task.vocab)
    assert task.vocab[:4] == ["<pad>", "<bos>", "<eos>", "<pause>"]
    assert task.eval_splits[0] == "train"
    questions = {}
    for name in task.eval_splits:
        s = task.split(name)
        assert s["tokens"].shape == s["loss_mask"].shape == s["answer_mask"].shape
        assert s["tokens"].shape[1] == T and s["tokens"].dtype == torch.int64
        assert s["loss_mask"].dtype == torch.bool and s["answer_mask"].dtype == torch.bool
        assert (s["tokens"][:, 0] == task.bos_id).all()
        qs = []
        for r in rows_text(task, name):
            end, p = r["end"], r["prompt_len"]
            assert all(w == "<pad>" for w in r["words"][end + 1 :])
            assert "<pad>" not in r["words"][: end + 1]
            # the loss covers exactly the generated part, eos included (plus marked prompt tokens)
            generated = [i for i in r["loss_pos"] if i >= p]
            assert generated == list(range(p, end + 1))
            if not targets_in_prompt:
                assert min(r["loss_pos"]) == p
            assert all(r["words"][i] not in ("<pause>", "<bos>", "<pad>") for i in r["loss_pos"])
            # the answer is contiguous and ends right before eos
            assert r["answer_pos"] == list(range(end - len(r["answer"]), end))
            assert r["answer"] and r["answer_pos"][0] >= p
            qs.append(tuple(r["words"][1:p]))
        assert len(set(qs)) == len(qs), f"{name}: repeated questions"
        questions[name] = set(qs)
    for name, qs in questions.items():
        if name != "train":
            assert not qs & questions["train"], f"{name} overlaps train"


def check_score(task, split: str = "test") -> None:
    """1.0 on the ground truth, lower when one answer token of one row is corrupted."""
    s = task.split(split)
    truth = s["tokens"].clone()
    assert task.score(truth, split) == 1.0
    bad = truth.clone()
    i = 0
    j = int(s["answer_mask"][i].nonzero()[0])
    bad[i, j] = (bad[i, j] + 1) % len(task.vocab) or 4  # another token, not pad
    if bad[i, j] == truth[i, j]:
        bad[i, j] = 5
    assert task.score(bad, split) == (len(truth) - 1) / len(truth)
    # garbage after eos does not matter; a missing eos does
    junk = truth.clone()
    junk[junk == task.pad_id] = 4
    assert task.score(junk, split) == 1.0
    noeos = truth.clone()
    noeos[noeos == task.eos_id] = task.pause_id
    assert task.score(noeos, split) == 0.0


def check_determinism(make) -> None:
    a, b = make(0), make(0)
    for name in a.eval_splits:
        for k in ("tokens", "loss_mask", "answer_mask", "prompt_len"):
            assert torch.equal(a.split(name)[k], b.split(name)[k])
    c = make(1)
    assert not torch.equal(a.split("train")["tokens"], c.split("train")["tokens"])


def check_sample(task, n: int = 64) -> None:
    g = torch.Generator().manual_seed(0)
    batch = task.sample(n, g)
    train = task.split("train")
    assert set(batch) == set(train.tensors)
    for k, v in batch.items():
        assert v.shape[0] == n and v.shape[1:] == train[k].shape[1:] and v.dtype == train[k].dtype
    again = task.sample(n, torch.Generator().manual_seed(0))
    assert all(torch.equal(batch[k], again[k]) for k in batch)
    held = set()
    for name in task.eval_splits[1:]:
        s = task.split(name)
        for tok, p in zip(s["tokens"].tolist(), s["prompt_len"].tolist()):
            held.add(tuple(tok[:p]))
    for tok, p in zip(batch["tokens"].tolist(), batch["prompt_len"].tolist()):
        assert tuple(tok[:p]) not in held
