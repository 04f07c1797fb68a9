from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from learnscope.hf.prune import perplexity, prune_hf
from learnscope.interventions.layers import remove_blocks


def test_perplexity_is_exp_of_the_mean_loss(model, batch):
    full = {"input_ids": batch["input_ids"], "attention_mask": torch.ones_like(batch["input_ids"])}
    logits = model(input_ids=full["input_ids"]).logits[:, :-1]
    nll = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), full["input_ids"][:, 1:].reshape(-1)
    )
    assert perplexity(model, full, rows=2) == pytest.approx(math.exp(nll.item()), rel=1e-5)


def test_prune_removes_the_most_similar_block_and_generates(model, batch, tmp_path):
    pruned, r = prune_hf(model, batch, 2)
    assert r.layers == 4 and r.start == min(range(3), key=r.distances.__getitem__)
    layers = pruned.config.num_hidden_layers
    assert layers == 2 and model.config.num_hidden_layers == 4
    assert r.ppl_after == pytest.approx(perplexity(pruned, batch))
    out = pruned.generate(batch["input_ids"][:1], max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 13)  # the KV cache has a slot for each kept layer
    pruned.save_pretrained(tmp_path)
    again = type(model).from_pretrained(tmp_path).eval()
    assert again.config.num_hidden_layers == 2
    torch.testing.assert_close(again(**batch).logits, pruned(**batch).logits)


def test_removing_an_identity_layer_keeps_the_function(model, batch):
    """A layer whose output projections are zero adds nothing: removing it is exact."""
    layer = (model.transformer.h if hasattr(model, "transformer") else model.model.layers)[1]
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith(("c_proj.weight", "c_proj.bias", "o_proj.weight", "down_proj.weight")):
                p.zero_()
    _, r = prune_hf(model, batch, 1)
    assert r.start == 1 and r.distance == pytest.approx(0.0, abs=1e-6)
    assert r.ppl_after == pytest.approx(r.ppl_before, rel=1e-5)
    torch.testing.assert_close(remove_blocks(model, 1, 1)(**batch).logits, model(**batch).logits)
