"""Reading and writing files safely: a size cap and regular files only on the way in, whole
files or nothing on the way out (torch-free, so the store and the CLI can use it)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from learnscope.errors import UserError, cut


def read_capped(path: Any, where: str, limit: int) -> bytes:
    """The bytes of ``path``: a :class:`UserError` naming ``where`` when it is not a regular
    file (a device such as ``/dev/zero``, a directory, a pipe) or holds more than ``limit``
    bytes; an ``OSError`` when it cannot be read. Never reads more than ``limit + 1`` bytes."""
    with open(path, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise UserError(f"{where}: {cut(str(path))} is not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UserError(f"{where}: {cut(str(path))} is larger than {limit:,} bytes")
    return data


def write_atomic(target: Path, data: bytes | memoryview | str, suffix: str = "") -> Path:
    """Write ``data`` (text as UTF-8) to ``target`` through a temporary file in the same
    directory (fsync, rename, fsync of the directory): ``target`` is either the old file or
    the whole new one, never a part; a failed write (a full disk) leaves no temporary file."""
    target = Path(target)
    data = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target
