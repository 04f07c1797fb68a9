"""Models, one file each, and ``build_model`` which sizes them from a task."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import typing
from typing import Any

from pydantic import TypeAdapter, ValidationError
from torch import nn

from learnscope.errors import UserError, from_validation, shown, unknown_field
from learnscope.models.assoc_memory import AssocMemory, AssocMemoryConfig
from learnscope.models.attention import Attention, AttentionConfig
from learnscope.models.gpt import GPT, GPTConfig
from learnscope.models.hooks import (
    HookPoint,
    capture,
    double_backward,
    eval_mode,
    hook_names,
    match_sites,
    site_sizes,
)
from learnscope.models.mlp import MLP, MLPConfig
from learnscope.models.random_features import RandomFeatures, RandomFeaturesConfig
from learnscope.models.two_layer import TwoLayer, TwoLayerConfig
from learnscope.models.ut import UT, UTConfig
from learnscope.strict import check_value

#: kind -> (config dataclass, module class)
MODELS: dict[str, tuple[type, type[nn.Module]]] = {
    "mlp": (MLPConfig, MLP),
    "gpt": (GPTConfig, GPT),
    "ut": (UTConfig, UT),
    "assoc_memory": (AssocMemoryConfig, AssocMemory),
    "random_features": (RandomFeaturesConfig, RandomFeatures),
    "two_layer": (TwoLayerConfig, TwoLayer),
    "attention": (AttentionConfig, Attention),
}

#: bytes a parameter costs to train: fp32 weight, gradient and two Adam moments
BYTES_PER_PARAM = 16


def memory_limit() -> int:
    """The most a model may take to train: half of this machine's memory (8 GiB where
    ``os.sysconf`` cannot tell)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


@functools.cache
def _adapter(cfg_cls: type) -> TypeAdapter:
    """One validator per config class (building one takes about a millisecond)."""
    return TypeAdapter(cfg_cls)


@functools.cache
def _hints(cfg_cls: type) -> dict[str, Any]:
    """The field types of a config class (``typing.get_type_hints`` takes ~1 ms a call: once
    per class, not once per member of a sweep)."""
    return typing.get_type_hints(cfg_cls)


def model_config(kind: str, params: dict[str, Any], dims: dict[str, int] | None = None):
    """Validate ``params`` into model ``kind``'s config dataclass, sizes filled from ``dims``.

    Sizes that come from the task (``dims``) may not be set by hand to something else.
    """
    if kind not in MODELS:
        raise UserError(f"model.kind: unknown model {shown(kind)}; allowed: {', '.join(MODELS)}")
    cfg_cls = MODELS[kind][0]
    allowed = [f.name for f in dataclasses.fields(cfg_cls)]
    unknown = sorted(set(params) - set(allowed), key=str)
    if unknown:
        raise unknown_field("model", str(unknown[0]), allowed)
    wrong = sorted(set(dims or {}) - set(allowed))
    if wrong:  # e.g. a sequence task (vocab_size, block_size) given to the MLP
        fits = [
            k
            for k, (c, _) in MODELS.items()
            if {f.name for f in dataclasses.fields(c)} >= set(dims)
        ]
        raise UserError(
            f"model.kind: {kind} cannot learn this task (it gives {', '.join(wrong)}); "
            f"allowed: {', '.join(fits) or 'none'}"
        )
    for key, value in (dims or {}).items():
        if key in params and params[key] != value:
            raise UserError(f"model.{key}: set by the task to {value} (got {shown(params[key])})")
    hints = _hints(cfg_cls)
    for key, value in params.items():
        try:
            check_value(value, hints[key])
        except ValueError as err:
            raise UserError(f"model.{key}: {err}") from None
    try:
        cfg = _adapter(cfg_cls).validate_python({**params, **(dims or {})})
    except ValidationError as err:
        raise from_validation(err, "model") from None
    for f in dataclasses.fields(cfg):  # a string like "nan" is read as a float
        value = getattr(cfg, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"model.{f.name}: must be a finite number (got {value})")
    need, limit = cfg.n_params() * BYTES_PER_PARAM, memory_limit()
    if need > limit:
        raise UserError(
            f"model: {kind} with these sizes has {_figure(cfg.n_params())} parameters, about "
            f"{_figure(need)} bytes to train (> {_figure(limit)} bytes, half of this machine's "
            "memory); allowed: a smaller width, depth or d_model"
        )
    return cfg


def _figure(n: int) -> str:
    """A count in short scientific form, without overflow (``1.2e+23``).

    >>> _figure(123), _figure(10**400)
    ('123', '1.0e+400')
    """
    if n < 10**6:
        return str(n)
    digits = len(str(n)) if n < 10**4000 else int(n.bit_length() * math.log10(2)) + 1
    lead = int(str(n)[:2]) if n < 10**4000 else 10
    return f"{lead / 10:.1f}e+{digits - 1}"


def build_model(
    kind: str, params: dict[str, Any], dims: dict[str, int], cfg: Any = None
) -> nn.Module:
    """The model ``kind`` sized from a task's ``dims``; ``cfg``: its config already made by
    :func:`model_config` (the runner makes it once, checks the memory, then builds)."""
    cfg = model_config(kind, params, dims) if cfg is None else cfg
    return MODELS[kind][1](cfg)


__all__ = [
    "MODELS",
    "GPT",
    "GPTConfig",
    "MLP",
    "MLPConfig",
    "UT",
    "UTConfig",
    "HookPoint",
    "build_model",
    "capture",
    "double_backward",
    "eval_mode",
    "hook_names",
    "match_sites",
    "model_config",
    "site_sizes",
]
