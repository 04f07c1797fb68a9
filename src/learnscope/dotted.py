"""Dotted paths into nested config dicts (``train.lr``): the one helper that ``--set``
overrides, sweep axes, sweep tables and the report's run labels share."""

from __future__ import annotations

import json
from typing import Any

from learnscope.errors import UserError


def set_path(data: dict[str, Any], path: str, value: Any, where: str = "") -> None:
    """Set ``data[a][b][c] = value`` for ``path = "a.b.c"``, creating sections on the way; a
    part that is not a section is a :class:`UserError` starting with ``where``.

    >>> d = {"train": {"lr": 1.0}}
    >>> set_path(d, "train.lr", 0.1); set_path(d, "task.p", 7); d
    {'train': {'lr': 0.1}, 'task': {'p': 7}}
    """
    node = data
    parts = path.split(".")
    for i, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"{where or path}: {'.'.join(parts[: i + 1])} is not a section")
    node[parts[-1]] = value


def get_path(data: dict[str, Any], path: str) -> Any:
    """``data[a][b][c]`` for ``path = "a.b.c"``, or None where a part is missing.

    >>> get_path({"train": {"lr": 0.1}}, "train.lr"), get_path({}, "train.lr")
    (0.1, None)
    """
    node: Any = data
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every leaf of a nested dict by its dotted path; lists as JSON text, so that every value
    can be a table cell.

    >>> flatten({"seed": 0, "train": {"lr": 0.1, "betas": [0.9, 0.98]}})
    {'seed': 0, 'train.lr': 0.1, 'train.betas': '[0.9, 0.98]'}
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = json.dumps(value) if isinstance(value, (list, tuple)) else value
    return out
