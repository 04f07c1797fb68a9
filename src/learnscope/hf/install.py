"""The optional ``transformers`` dependency: how to install it, and the module when it is
there."""

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
