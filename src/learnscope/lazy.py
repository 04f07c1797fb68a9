"""Lazy re-exports for package ``__init__`` files (PEP 562): a name is imported from its
module on first use, so that importing a package (and the commands that use only its light
parts: ``--help``, ``ls``, ``show``, ``sweep show``) does not pay for torch or matplotlib."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def exports(
    package: str, names: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose public ``names`` (name -> the
    module that defines it) are imported when first read, then kept in the package."""
    import sys

    def getattr_(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return getattr_, dir_
