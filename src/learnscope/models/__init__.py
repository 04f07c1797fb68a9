"""Models, one file each, and ``build_model`` which sizes them from a task."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from pydantic import TypeAdapter, ValidationError
from torch import nn

from learnscope.errors import UserError, from_validation
from learnscope.models.gpt import GPT, GPTConfig
from learnscope.models.hooks import (
    HookPoint,
    capture,
    eval_mode,
    hook_names,
    match_sites,
    site_sizes,
)
from learnscope.models.mlp import MLP, MLPConfig

#: kind -> (config dataclass, module class)
MODELS: dict[str, tuple[type, type[nn.Module]]] = {
    "mlp": (MLPConfig, MLP),
    "gpt": (GPTConfig, GPT),
}


@functools.cache
def _adapter(cfg_cls: type) -> TypeAdapter:
    """One validator per config class (building one takes about a millisecond)."""
    return TypeAdapter(cfg_cls)


def model_config(kind: str, params: dict[str, Any], dims: dict[str, int] | None = None):
    """Validate ``params`` into model ``kind``'s config dataclass, sizes filled from ``dims``.

    Sizes that come from the task (``dims``) may not be set by hand to something else.
    """
    if kind not in MODELS:
        raise UserError(f"model.kind: unknown model {kind!r}; allowed: {', '.join(MODELS)}")
    cfg_cls = MODELS[kind][0]
    for key, value in (dims or {}).items():
        if key in params and params[key] != value:
            raise UserError(f"model.{key}: set by the task to {value} (got {params[key]})")
    allowed = [f.name for f in dataclasses.fields(cfg_cls)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise UserError(f"model.{unknown[0]}: unknown field for {kind}; allowed: {allowed}")
    try:
        return _adapter(cfg_cls).validate_python({**params, **(dims or {})})
    except ValidationError as err:
        raise from_validation(err, "model") from None


def build_model(kind: str, params: dict[str, Any], dims: dict[str, int]) -> nn.Module:
    cfg = model_config(kind, params, dims)
    return MODELS[kind][1](cfg)


__all__ = [
    "MODELS",
    "GPT",
    "GPTConfig",
    "MLP",
    "MLPConfig",
    "HookPoint",
    "build_model",
    "capture",
    "eval_mode",
    "hook_names",
    "match_sites",
    "model_config",
    "site_sizes",
]
