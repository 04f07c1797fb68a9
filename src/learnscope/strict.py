"""Strict values for every config section, task ``Params`` and model config dataclass.

pydantic (lax mode) reads ``True`` as ``1`` and accepts ``nan`` and ``inf`` as floats; a run
config never means either. :class:`StrictModel` refuses, in every field and in the lists and
mappings inside a field:

- a boolean where the field's type has no ``bool`` (``train.steps: true``),
- a float that is not finite (``.nan``, ``.inf``, ``1e400``),
- text that cannot be written as UTF-8 (a lone surrogate such as ``"\\ud83d"``),
- nesting deeper than :data:`MAX_DEPTH`.

>>> class P(StrictModel):
...     steps: int = 1
>>> P(steps=True)
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for P
steps
  Value error, must be a number, not a boolean ...
"""

from __future__ import annotations

import math
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

#: seeds are 64-bit (torch and NumPy take 0..2**63 - 1)
MAX_SEED = 2**63 - 1
#: a count of steps (train.steps, warmup_steps, checkpoint_every, ...), at most
MAX_STEPS = 10**9
#: a count of rows (batch_size, probe_batch.size, eval_examples), at most
MAX_SIZE = 10**8
#: a regulariser's projector width, at most
MAX_PROJ_DIM = 16_384
#: lists and mappings nested inside one field, at most
MAX_DEPTH = 16


def takes_bool(annotation: Any) -> bool:
    """Whether ``annotation`` accepts a boolean anywhere (``bool``, ``bool | None``, ``Any``).

    >>> takes_bool(bool | None), takes_bool(int), takes_bool(list[tuple[int, int]])
    (True, False, False)
    """
    if annotation is bool or annotation is Any:
        return True
    return any(takes_bool(a) for a in typing.get_args(annotation) if not isinstance(a, str))


def _has_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_has_model(a) for a in typing.get_args(annotation) if not isinstance(a, str))


def check_value(value: Any, annotation: Any) -> None:
    """Raise ``ValueError`` for a boolean the annotation does not take, a non-finite float or
    nesting deeper than :data:`MAX_DEPTH`, anywhere in ``value`` (iteratively)."""
    if _has_model(annotation):
        return  # a nested section checks its own fields
    bools = takes_bool(annotation)
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(v, bool):
            if not bools:
                raise ValueError("must be a number, not a boolean")
        elif isinstance(v, float) and not math.isfinite(v):
            raise ValueError("must be a finite number")
        elif isinstance(v, str) and not v.isascii():
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as err:
                raise ValueError(
                    f"text must be Unicode that UTF-8 can encode (character {err.start} is a "
                    "lone surrogate)"
                ) from None
        elif isinstance(v, (list, tuple)):
            stack.extend((x, depth + 1) for x in v)
        elif isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())


class StrictModel(BaseModel):
    """Unknown keys refused, floats finite, no booleans for numbers (see the module doc)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _strict(cls, v: Any, info: ValidationInfo) -> Any:
        check_value(v, cls.model_fields[info.field_name].annotation)
        return v
