"""A Hugging Face causal LM's activations under TransformerLens names.

Forward hooks on the model's own modules (no edit of its forward pass) give, for layer ``i``
of ``L``::

    hook_embed                    # (b, t, d) the stream entering layer 0 (hidden_states[0])
    blocks.{i}.hook_resid_pre     # (b, t, d) the layer's input (hidden_states[i])
    blocks.{i}.hook_attn_out      # (b, t, d) the attention sublayer's output (after o_proj)
    blocks.{i}.attn.hook_pattern  # (b, h, q, k) attention probabilities (output_attentions)
    blocks.{i}.hook_mlp_out       # (b, t, d) the MLP sublayer's output
    blocks.{i}.hook_resid_post    # (b, t, d) the layer's output (hidden_states[i + 1], i < L-1)
    ln_final.hook_normalized      # (b, t, d) after the final norm (hidden_states[L])
    hook_logits                   # (b, t, vocab)

The layers are found by :func:`learnscope.interventions.layers.layer_list` (GPT-2
``transformer.h``, Llama ``model.layers``, ...); a layer's attention and MLP by their child
names (``attn`` / ``self_attn``, ``mlp``). Attention probabilities need the eager attention
implementation: :func:`load` asks for it.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from learnscope.errors import UserError, cut
from learnscope.hf.install import INSTALL, require
from learnscope.interventions.layers import layer_list

ATTENTION_NAMES = ("attn", "self_attn", "attention")
#: files of which a saved tokenizer has at least one
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
    "tokenizer.model",
    "spiece.model",
)
MLP_NAMES = ("mlp", "feed_forward")


def load(name: str | Path, where: str = "MODEL") -> tuple[nn.Module, Any]:
    """A causal LM and its tokenizer, loaded the ordinary way (``from_pretrained``) from a
    directory written by ``save_pretrained`` or a hub name, with eager attention, in eval mode.
    Anything that cannot be loaded is a :class:`UserError` naming ``where``."""
    transformers = require()
    if Path(name).is_dir() and not any((Path(name) / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(
            f"{where}: {cut(str(name))} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
            "save it beside the model with tokenizer.save_pretrained(DIR)"
        )
    transformers.utils.logging.disable_progress_bar()  # the command prints one line or a table
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(name))
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(name), attn_implementation="eager"
        )
    except (OSError, ValueError, KeyError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{where}: cannot load {str(name)!r} as a Hugging Face causal LM ({first}); give a "
            f"directory written by save_pretrained, or a hub name where a hub is reachable "
            f"({INSTALL})"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def positions(model: nn.Module) -> int | None:
    """The most tokens ``model`` takes at once (its position table), where its config says."""
    cfg = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _child(layer: nn.Module, names: tuple[str, ...]) -> nn.Module | None:
    return next(
        (getattr(layer, n) for n in names if isinstance(getattr(layer, n, None), nn.Module)), None
    )


def _first(x: Any) -> torch.Tensor:
    return x[0] if isinstance(x, tuple) else x


@torch.no_grad()
def run_with_sites(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """One forward pass of ``input_ids: (b, t)``; every site of the module docstring."""
    _, layers = layer_list(model)
    acts: dict[str, torch.Tensor] = {}
    handles = []

    def keep(name: str):
        return lambda _m, _args, out: acts.__setitem__(name, _first(out).detach())

    def keep_input(name: str):
        def pre(_m, args, kwargs):
            acts[name] = (args[0] if args else kwargs["hidden_states"]).detach()

        return pre

    for i, block in enumerate(layers):
        handles.append(
            block.register_forward_pre_hook(
                keep_input(f"blocks.{i}.hook_resid_pre"), with_kwargs=True
            )
        )
        handles.append(block.register_forward_hook(keep(f"blocks.{i}.hook_resid_post")))
        if (attn := _child(block, ATTENTION_NAMES)) is not None:
            handles.append(attn.register_forward_hook(keep(f"blocks.{i}.hook_attn_out")))
        if (mlp := _child(block, MLP_NAMES)) is not None:
            handles.append(mlp.register_forward_hook(keep(f"blocks.{i}.hook_mlp_out")))
    try:
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=True,
            output_attentions=True,
            use_cache=False,
        )
    finally:
        for h in handles:
            h.remove()
    acts["hook_embed"] = out.hidden_states[0]
    acts["ln_final.hook_normalized"] = out.hidden_states[-1]
    acts["hook_logits"] = out.logits
    for i, pattern in enumerate(out.attentions or ()):
        if pattern is not None:
            acts[f"blocks.{i}.attn.hook_pattern"] = pattern
    return acts


def tokenize(tokenizer: Any, texts: list[str], max_len: int = 256) -> dict[str, torch.Tensor]:
    """``input_ids``, ``attention_mask: (b, t)``, right-padded (real tokens first in each row),
    each text cut to ``max_len`` tokens."""
    if not texts:
        raise UserError("batch: no text to run the model on")
    tokenizer.padding_side = "right"
    enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_len)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def chunks(tokenizer: Any, text: str, context: int, max_chunks: int) -> dict[str, torch.Tensor]:
    """``text`` tokenized and cut into at most ``max_chunks`` windows of ``context`` tokens (the
    shorter tail dropped when there is a full window): ``input_ids``, ``attention_mask``."""
    ids = tokenizer(text, return_tensors="pt")["input_ids"][0]
    if len(ids) < 2:
        raise UserError("--text: the text has fewer than 2 tokens")
    n = max(1, min(max_chunks, len(ids) // context))
    size = min(context, len(ids))
    windows = ids[: n * size].reshape(n, size)
    return {"input_ids": windows, "attention_mask": torch.ones_like(windows)}
