"""The one exception a user can cause.

Anything a user gets wrong (a config field, a task parameter, a CLI argument, a checkpoint
that cannot be read) is raised as :class:`UserError`. The CLI prints its message on one
line and exits with code 2; library callers can catch it like any exception.
"""

from __future__ import annotations

from pydantic import ValidationError


class UserError(ValueError):
    """A mistake in the user's input: the message names the field and what is allowed."""


def from_validation(err: ValidationError, prefix: str = "") -> UserError:
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
    lines = []
    for e in err.errors():
        loc = ".".join(str(part) for part in (prefix, *e["loc"]) if part != "")
        msg = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        shown = "" if isinstance(got, dict) or e["type"] == "missing" else f" (got {got!r})"
        lines.append(f"{loc or prefix or 'config'}: {msg}{shown}")
    return UserError("; ".join(lines))
