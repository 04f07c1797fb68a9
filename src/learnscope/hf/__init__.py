"""Adapters for Hugging Face ``transformers`` causal LMs (the optional extra ``learnscope[hf]``).

``transformers`` is imported only inside these modules' functions, so learnscope works
without it; :func:`require` turns its absence into a :class:`~learnscope.errors.UserError`
naming ``pip install 'learnscope[hf]'`` (:mod:`learnscope.hf.install`, a leaf module: the
others import it, and this package imports none of them, so no import goes in a circle).

- :mod:`learnscope.hf.hooks`: loading a model, and its activations under TransformerLens
  names (``blocks.{i}.hook_resid_pre``, ``blocks.{i}.attn.hook_pattern``, ...);
- :mod:`learnscope.hf.probe`: per-layer probes (``learnscope probe-hf``);
- :mod:`learnscope.hf.prune`: layer pruning with perplexity before and after
  (``learnscope prune-layers --hf``);
- :mod:`learnscope.hf.prompts`: few-shot prompts and answer parsing (``learnscope eval``).
"""

from __future__ import annotations

from learnscope.hf.install import INSTALL, require

__all__ = ["INSTALL", "require"]
