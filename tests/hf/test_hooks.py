"""The TransformerLens sites of a Hugging Face model against what the model itself returns
(output_hidden_states / output_attentions)."""

from __future__ import annotations

import torch

from learnscope.hf.hooks import run_with_sites


def test_sites_match_hidden_states_and_attentions(model, batch):
    acts = run_with_sites(model, batch["input_ids"], batch["attention_mask"])
    out = model(**batch, output_hidden_states=True, output_attentions=True)
    layers = len(out.hidden_states) - 1
    assert layers == 4
    for i in range(layers):
        torch.testing.assert_close(acts[f"blocks.{i}.hook_resid_pre"], out.hidden_states[i])
        torch.testing.assert_close(acts[f"blocks.{i}.attn.hook_pattern"], out.attentions[i])
    for i in range(layers - 1):  # the last hidden state is after the final norm
        torch.testing.assert_close(acts[f"blocks.{i}.hook_resid_post"], out.hidden_states[i + 1])
    torch.testing.assert_close(acts["ln_final.hook_normalized"], out.hidden_states[-1])
    torch.testing.assert_close(acts["hook_logits"], out.logits)
    # a layer's output is its input plus its two sublayers' outputs (pre-norm residual blocks)
    for i in range(layers):
        total = (
            acts[f"blocks.{i}.hook_resid_pre"]
            + acts[f"blocks.{i}.hook_attn_out"]
            + acts[f"blocks.{i}.hook_mlp_out"]
        )
        torch.testing.assert_close(acts[f"blocks.{i}.hook_resid_post"], total)
    assert acts["blocks.0.attn.hook_pattern"].shape == (3, 2, 10, 10)
