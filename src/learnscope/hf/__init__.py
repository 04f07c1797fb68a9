"""Adapters for Hugging Face ``transformers`` causal LMs (the optional extra ``learnscope[hf]``).

``transformers`` is imported only inside these modules' functions, so learnscope works
without it; :func:`require` turns its absence into a :class:`~learnscope.errors.UserError`
naming ``pip install 'learnscope[hf]'``.

- :mod:`learnscope.hf.hooks`: loading a model, and its activations under TransformerLens
  names (``blocks.{i}.hook_resid_pre``, ``blocks.{i}.attn.hook_pattern``, ...);
- :mod:`learnscope.hf.probe`: per-layer probes (``learnscope probe-hf``, :func:`probe`);
- :mod:`learnscope.hf.prune`: layer pruning with perplexity before and after
  (``learnscope prune-layers --hf``);
- :mod:`learnscope.hf.prompts`: few-shot prompts and answer parsing (``learnscope eval``).
"""

from __future__ import annotations

from typing import Any

from learnscope.errors import UserError

INSTALL = "pip install 'learnscope[hf]'"


def require() -> Any:
    """The ``transformers`` module, or a :class:`UserError` saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise UserError(f"Hugging Face models need the transformers package: {INSTALL}") from None
    return transformers


def probe(model, tokenizer, batch, probes=None, n: int = 1) -> dict[str, float]:
    """Per-layer probes of a Hugging Face causal LM (see :func:`learnscope.hf.probe.probe`)."""
    from learnscope.hf.probe import probe as run

    return run(model, tokenizer, batch, probes, n)


__all__ = ["INSTALL", "probe", "require"]
