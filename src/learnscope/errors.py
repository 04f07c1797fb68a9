"""The one exception a user can cause.

Anything a user gets wrong (a config field, a task parameter, a CLI argument, a checkpoint
that cannot be read) is raised as :class:`UserError`. The CLI prints its message on one
line and exits with code 2; library callers can catch it like any exception.
"""

from __future__ import annotations

import difflib
import reprlib
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

#: a value shown in a message is cut to this many characters
MAX_SHOWN = 80
#: errors named in one message, at most (the rest are counted)
MAX_ERRORS = 3

_REPR = reprlib.Repr()  # bounded: never walks or prints a huge value whole
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 6, 6, 6
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60


class UserError(ValueError):
    """A mistake in the user's input: the message names the field and what is allowed."""


def shown(value: Any) -> str:
    """``repr(value)`` cut to :data:`MAX_SHOWN` characters, without walking a huge value.

    >>> shown(list(range(1000)))
    '[0, 1, 2, 3, 4, 5, ...]'
    >>> len(shown("x" * 10**6)) <= MAX_SHOWN
    True
    """
    return cut(_REPR.repr(value))


def cut(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unknown_field(where: str, name: str, allowed: list[str]) -> UserError:
    """The error for an unknown key: every allowed field, and the closest one.

    >>> print(unknown_field("train", "lrr", ["lr", "steps"]))
    train.lrr: unknown field; did you mean train.lr? allowed: lr, steps
    """
    loc = f"{where}.{name}" if where else str(name)
    close = difflib.get_close_matches(str(name), allowed, n=1)
    hint = f"did you mean {cut(where + '.' if where else '')}{close[0]}? " if close else ""
    return UserError(f"{cut(loc)}: unknown field; {hint}allowed: {', '.join(allowed)}")


def fields_at(model: Any, loc: tuple[Any, ...]) -> list[str] | None:
    """The field names of the pydantic model found at ``loc`` inside ``model`` (through
    nested models, lists, tuples and optional fields), or None where there is none."""
    for part in loc:
        if isinstance(model, type) and issubclass(model, BaseModel):
            if part not in model.model_fields:
                return None
            model = model.model_fields[part].annotation
        else:
            args = [a for a in typing.get_args(model) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if not models:
                return None
            model = models[0]
            if part not in model.model_fields:
                continue  # a list index or a union tag: the model itself
            model = model.model_fields[part].annotation
    while not (isinstance(model, type) and issubclass(model, BaseModel)):
        args = [a for a in typing.get_args(model) if isinstance(a, type)]
        models = [a for a in args if issubclass(a, BaseModel)]
        if not models:
            return None
        model = models[0]
    return list(model.model_fields)


def from_validation(
    err: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> UserError:
    """Turn a pydantic ``ValidationError`` into a :class:`UserError` naming each bad field.

    >>> from pydantic import BaseModel
    >>> class P(BaseModel):
    ...     p: int
    >>> try:
    ...     P(p="x")
    ... except ValidationError as e:
    ...     print(from_validation(e, "task"))
    task.p: Input should be a valid integer, unable to parse string as an integer (got 'x')
    """
    errors = err.errors()
    lines = []
    for e in errors[:MAX_ERRORS]:
        loc = ".".join(str(part) for part in (prefix, *e["loc"]) if part != "")
        allowed = fields_at(model, e["loc"][:-1]) if model is not None else None
        if e["type"] == "extra_forbidden" and allowed is not None:
            parent = ".".join(str(part) for part in (prefix, *e["loc"][:-1]) if part != "")
            lines.append(str(unknown_field(parent, str(e["loc"][-1]), allowed)))
            continue
        msg = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        got = "" if isinstance(got, dict) or e["type"] == "missing" else f" (got {shown(got)})"
        lines.append(f"{cut(loc or prefix or 'config')}: {cut(msg, 4 * MAX_SHOWN)}{got}")
    if len(errors) > MAX_ERRORS:
        lines.append(f"and {len(errors) - MAX_ERRORS} more")
    return UserError("; ".join(lines))


class StorageError(OSError):
    """The disk or the run store failed (full, read-only, an I/O error, a damaged database):
    not the user's input. The CLI prints its message on one line and exits with code 1."""


#: errno values that mean the disk cannot take the write
_FULL = {"ENOSPC", "EDQUOT"}
#: errno values that mean the file cannot be written (read-only, I/O error, not allowed)
_UNWRITABLE = {"EROFS", "EIO", "EACCES", "EPERM", "EFBIG"}


def storage_message(err: BaseException) -> str | None:
    """One line for a storage fault (``disk full: ...``, ``cannot write ...``, a damaged
    store), else None.

    >>> import errno
    >>> storage_message(OSError(errno.ENOSPC, "No space left on device", "/r/x.pt"))
    'disk full: No space left on device (/r/x.pt)'
    >>> storage_message(OSError(errno.EROFS, "Read-only file system", "/r/x.pt"))
    'cannot write /r/x.pt: Read-only file system'
    >>> storage_message(ValueError("x")) is None
    True
    """
    import errno as errno_
    import sqlite3

    if isinstance(err, StorageError) and err.errno is None:
        return str(err)
    if isinstance(err, OSError) and err.errno is not None:
        name = errno_.errorcode.get(err.errno, "")
        where = cut(str(err.filename), 200) if err.filename else "the runs directory"
        if name in _FULL:
            return f"disk full: {err.strerror} ({where})"
        if name in _UNWRITABLE:
            return f"cannot write {where}: {err.strerror}"
        return None
    if isinstance(err, sqlite3.DatabaseError):
        text = str(err)
        if "full" in text:
            return f"disk full: the run store cannot grow ({text})"
        if "malformed" in text or "not a database" in text:
            return damaged_message(None, text)
        if any(s in text for s in ("disk I/O", "readonly", "unable to open", "read-only")):
            return f"cannot write the run store: {text}"
    return None


def damaged_message(path: Any, detail: str) -> str:
    """The line for a damaged run store: which file, and how to recover."""
    where = f" {path}" if path is not None else ""
    return (
        f"damaged run store{where}: {cut(detail, 160)}; the runs' directories still hold their "
        "configs and checkpoints: `learnscope doctor --rebuild` moves the damaged file aside "
        "and re-creates the rows from them"
    )
