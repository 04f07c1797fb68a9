"""Position ids given by the task (``task.positions``) and read by the GPT (``model.pos``
coupled or abacus): position coupling (Cho et al. 2024) and Abacus (McLeish et al. 2024)."""

from __future__ import annotations

import pytest
import torch

from learnscope.config import validate_config
from learnscope.errors import UserError
from learnscope.models.gpt import GPT, GPTConfig
from learnscope.runner import build
from learnscope.tasks import make_task
from learnscope.tasks.sequence import abacus_ids
from learnscope.train.objectives import greedy_decode


def _rows(positions: str, **params):
    task = make_task(
        "addition", lo=1, hi=4, test_lengths=[7], n_train=40, n_test=10, reverse=True,
        positions=positions, seed=3, **params,
    )  # fmt: skip
    return task, task.split("test_len_7").rows(torch.arange(10))


@pytest.mark.parametrize("reverse_operands", [False, True])
def test_coupled_ids_give_each_significance_one_id(reverse_operands):
    task, rows = _rows("coupled", reverse_operands=reverse_operands)
    for tokens, ids in zip(rows["tokens"], rows["pos_ids"], strict=True):
        text = [task.vocab[t] for t in tokens.tolist()]
        plus, eq, eos = text.index("+"), text.index("="), text.index("<eos>")
        a, b, s = text[1:plus], text[plus + 1 : eq], text[eq + 1 : eos]
        if not reverse_operands:
            a, b = a[::-1], b[::-1]  # least significant first, like the sum
        # the digit of 10^i has id i + 2 in a, b and the sum; + and = have 1 (the paper's
        # start s, shifted with the digits); <bos> and pads 0
        assert ids[1:plus].tolist() == (list(range(2, 9)) if reverse_operands else
                                        list(range(8, 1, -1)))  # fmt: skip
        assert ids[plus + 1 : eq].tolist() == ids[1:plus].tolist()
        assert ids[eq + 1 : eos].tolist() == list(range(2, len(s) + 2))
        assert ids[eos] == len(s) + 2 and ids[plus] == ids[eq] == 1 and ids[0] == 0
        assert (ids[eos + 1 :] == 0).all()
        assert int("".join(a[::-1])) + int("".join(b[::-1])) == int("".join(s[::-1]))


def test_abacus_ids_count_along_each_run_of_digits():
    task, rows = _rows("abacus", reverse_operands=True)
    digits = [task.token_id[d] for d in "0123456789"]
    assert torch.equal(rows["pos_ids"], abacus_ids(rows["tokens"], digits))
    tokens = rows["tokens"][0].tolist()
    plus = tokens.index(task.token_id["+"])
    assert rows["pos_ids"][0, 1 : plus + 1].tolist() == [*range(1, 8), 0]


def test_the_offset_shifts_a_rows_ids_together_while_training_only():
    torch.manual_seed(0)
    net = GPT(GPTConfig(vocab_size=20, block_size=12, d_model=16, n_head=2, n_layer=1,
                        pos="coupled", max_pos=30))  # fmt: skip
    ids = torch.tensor([[0, 3, 2, 1, 0, 3, 2, 1, 0, 1, 2, 3]] * 400)
    shifted = net.train()._position_ids(ids, ids)
    k = (shifted - ids)[:, 1]
    assert ((shifted - ids)[ids > 0].view(400, -1) == k[:, None]).all()  # one k per row
    assert (shifted[ids == 0] == 0).all()
    assert k.min() == 0 and k.max() == 30 - 1 - 3  # every row of the table is reached
    assert torch.equal(net.eval()._position_ids(ids, ids), ids)
    with pytest.raises(ValueError, match="reads position ids"):
        net(ids[:1])
    with pytest.raises(ValueError, match="max_pos 30"):
        net(ids[:1], positions=ids[:1] + 30)


@pytest.mark.parametrize("id_rope", [False, True])
def test_cached_decoding_reads_the_same_positions(id_rope):
    task, rows = _rows("coupled")
    torch.manual_seed(1)
    net = GPT(GPTConfig(vocab_size=len(task.vocab), block_size=task.block_size, d_model=32,
                        n_head=2, n_layer=2, pos="coupled", id_rope=id_rope)).eval()  # fmt: skip
    args = (net, rows["tokens"], rows["prompt_len"], task.eos_id)
    cached = greedy_decode(*args, cache=True, positions=rows["pos_ids"])
    plain = greedy_decode(*args, cache=False, positions=rows["pos_ids"])
    assert torch.equal(cached, plain)
    logits = net(rows["tokens"], positions=rows["pos_ids"])
    other = net(rows["tokens"], positions=rows["pos_ids"] * 2)
    assert (other - logits).abs().max() > 1e-4  # the ids are read


def test_id_rope_scores_depend_on_id_differences_only():
    """RoPE at the task's ids (``model.id_rope``): no table, and the logits are unchanged when
    every id of a row moves by the same amount (the rotation of q_i . k_j is by id_i - id_j),
    in training too (no random offset is drawn: it would change nothing but <bos>'s ids)."""
    task, rows = _rows("coupled")
    torch.manual_seed(2)
    net = GPT(GPTConfig(vocab_size=len(task.vocab), block_size=task.block_size, d_model=32,
                        n_head=2, n_layer=2, pos="coupled", id_rope=True))  # fmt: skip
    assert not hasattr(net, "pos_embed")
    ids, tokens = rows["pos_ids"], rows["tokens"]
    for mode in (net.train, net.eval):
        mode()
        base = net(tokens, positions=ids)
        assert (net(tokens, positions=ids + 7) - base).abs().max() < 1e-5
        assert (net(tokens, positions=ids * 2) - base).abs().max() > 1e-4
    with pytest.raises(ValueError, match="id_rope goes with pos coupled or abacus"):
        GPTConfig(vocab_size=5, block_size=8, d_model=16, n_head=2, pos="learned", id_rope=True)


@pytest.mark.parametrize(
    "task, model, words",
    [
        ({"positions": "coupled"}, {"pos": "learned"}, "goes with the same task.positions"),
        ({}, {"pos": "abacus"}, "goes with the same task.positions"),
        ({"positions": "coupled", "index_hints": True}, {"pos": "coupled"}, "index_hints"),
    ],
)
def test_mismatched_positions_are_user_errors(task, model, words):
    cfg = {
        "task": {"name": "addition", "lo": 1, "hi": 2, "test_lengths": [3], "n_train": 20,
                 "n_test": 5, **task},
        "model": {"kind": "gpt", "n_layer": 1, "d_model": 16, "n_head": 2, **model},
        "train": {"steps": 2},
    }  # fmt: skip
    with pytest.raises(UserError, match=words):
        build(validate_config(cfg))


def test_id_alibi_bias_is_minus_slope_times_id_distance():
    from learnscope.models.gpt import id_bias

    ids = torch.tensor([[0, 3, 1, 2]])
    bias = id_bias(ids, n_head=2, causal=True)
    slopes = [2.0**-4, 2.0**-8]  # 2^(-8 (h + 1) / H), H = 2
    for h, m in enumerate(slopes):
        for i in range(4):
            for j in range(4):
                want = -m * abs(ids[0, i] - ids[0, j]).item() if j <= i else float("-inf")
                assert bias[0, h, i, j].item() == pytest.approx(want)
    assert torch.isfinite(id_bias(ids, 2, causal=False)).all()
    window = id_bias(ids, 2, causal=False, alibi=False, window=1)  # 0 within, -inf beyond
    far = (ids[0, :, None] - ids[0, None, :]).abs() > 1
    assert (window[0, :][:, far] == float("-inf")).all() and (window[0, :][:, ~far] == 0).all()


@pytest.mark.parametrize("id_rope, window", [(False, None), (True, None), (False, 2)])
def test_id_bias_decodes_with_the_cache_and_reads_the_ids(id_rope, window):
    task, rows = _rows("coupled")
    torch.manual_seed(3)
    net = GPT(GPTConfig(vocab_size=len(task.vocab), block_size=task.block_size, d_model=32,
                        n_head=2, n_layer=2, pos="coupled", id_rope=id_rope,
                        id_alibi=window is None, id_window=window)).eval()  # fmt: skip
    args = (net, rows["tokens"], rows["prompt_len"], task.eos_id)
    out = greedy_decode(*args, positions=rows["pos_ids"])  # the cache keeps the keys' ids
    assert torch.equal(out, greedy_decode(*args, cache=False, positions=rows["pos_ids"]))
    x, ids, cache = rows["tokens"][:, :12], rows["pos_ids"][:, :12], net.new_cache(12)
    steps = torch.cat([net(x[:, :7], cache, ids[:, :7]), net(x[:, 7:], cache, ids[:, 7:])], 1)
    assert torch.allclose(steps, net(x, positions=ids), atol=1e-5)
    assert torch.equal(out[:, : int(rows["prompt_len"].min())],
                       rows["tokens"][:, : int(rows["prompt_len"].min())])  # fmt: skip
    logits = net(rows["tokens"], positions=rows["pos_ids"])
    assert (net(rows["tokens"], positions=rows["pos_ids"] * 2) - logits).abs().max() > 1e-4
    if id_rope:  # relative in ids: a common shift changes nothing
        assert (net(rows["tokens"], positions=rows["pos_ids"] + 5) - logits).abs().max() < 1e-5
    explicit = GPT(net.cfg).eval()
    explicit.load_state_dict(net.state_dict())
    for block in explicit.blocks:
        block.attn.explicit = True
    assert torch.allclose(explicit(rows["tokens"], positions=rows["pos_ids"]), logits, atol=1e-5)
