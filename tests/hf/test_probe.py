"""probe-hf's values against the same probes computed from output_hidden_states and
output_attentions directly."""

from __future__ import annotations

import pytest
import torch

from learnscope.errors import UserError
from learnscope.hf.probe import probe
from learnscope.probes.attention import attention_entropy
from learnscope.probes.distance import angular_distance
from learnscope.probes.rank import effective_rank, matrix_entropy


def test_probes_equal_the_reference(model, batch):
    values = probe(model, None, batch, n=2)
    out = model(**batch, output_hidden_states=True, output_attentions=True)
    hs, mask = out.hidden_states, batch["attention_mask"].bool()
    for i in range(3):  # hidden_states[i + 1] is layer i's output (but the last, normed)
        site = f"blocks.{i}.hook_resid_post"
        assert values[f"effective_rank/{site}"] == pytest.approx(effective_rank(hs[i + 1][mask]))
        assert values[f"matrix_entropy/{site}"] == pytest.approx(matrix_entropy(hs[i + 1][mask]))
    # attention entropy over real queries only: rows 0 and 2 have 10, row 1 has 6
    for i in range(4):
        a = out.attentions[i]
        full = torch.cat([a[0], a[2]], dim=1)  # (h, 20 queries, 10 keys)
        short = a[1, :, :6, :6]
        want = (attention_entropy(full) * 20 + attention_entropy(short) * 6) / 26
        for h in range(2):
            key = f"attention_entropy/blocks.{i}.attn.hook_pattern/h{h}"
            assert values[key] == pytest.approx(want[h].item(), rel=1e-5)
    last = torch.tensor([9, 5, 9])
    rows = torch.arange(3)
    for start in range(2):  # l + n < L: both ends are plain hidden states
        got = values[f"angular_distance/blocks.{start}.hook_resid_pre/n2"]
        want = angular_distance(hs[start][rows, last], hs[start + 2][rows, last])
        assert got == pytest.approx(want)
    assert "angular_distance/blocks.2.hook_resid_pre/n2" in values  # ends at the last output
    assert "angular_distance/blocks.3.hook_resid_pre/n2" not in values


def test_probe_selection_and_errors(model, batch):
    values = probe(model, None, batch, ["effective_rank"])
    assert set(values) == {f"effective_rank/blocks.{i}.hook_resid_post" for i in range(4)}
    with pytest.raises(UserError, match="unknown probe 'rank'"):
        probe(model, None, batch, ["rank"])
    with pytest.raises(UserError, match="--n: must be in 1..4"):
        probe(model, None, batch, n=5)
