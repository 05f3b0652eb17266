"""Reading and writing files that a crash, a careless user or an attacker may have touched.

Reads take only regular files, opened without waiting, so a FIFO, a device or a
folder in a file's place is refused at once instead of blocking or reading
forever; writes go through a temporary file and a rename, so a crash at any
moment leaves either the old file or the new one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class NotRegularFile(OSError):
    """A path that names something other than a regular file; ``kind`` says what."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(errno.EINVAL, f"is {kind}, not a regular file", str(path))
        self.kind = kind


def kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file, at most ``limit + 1`` of them when a limit is given (so a
    caller can tell the file is too large); NotRegularFile or another OSError otherwise."""
    return b"".join(regular_chunks(path, limit))


def digest_regular(path: Path) -> tuple[str, int]:
    """The SHA-256 (hex) and size of a regular file, read a megabyte at a time (a run's
    results can be gigabytes); NotRegularFile or another OSError otherwise."""
    digest, size = hashlib.sha256(), 0
    for chunk in regular_chunks(path):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def regular_chunks(path: Path, limit: int | None = None) -> Iterator[bytes]:
    """A regular file's bytes a megabyte at a time, as ``read_regular`` reads them."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, kind_of(mode))
        left = -1 if limit is None else limit + 1
        while left != 0:
            chunk = os.read(fd, 1 << 20 if left < 0 else min(left, 1 << 20))
            if not chunk:
                break
            yield chunk
            left = left if left < 0 else left - len(chunk)
    finally:
        os.close(fd)


def parse_json(data: bytes | str) -> Any:
    """JSON from an untrusted source: ValueError for anything that is not (nesting deep
    enough to exhaust the parser's recursion included)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def write_atomic(
    path: Path, data: bytes | str, *, private: bool = False, fsync: bool = False
) -> None:
    """Write through a fresh temporary file in the same folder (O_EXCL, so a planted
    symlink cannot redirect it), then rename it over ``path``. ``private`` keeps mode 0600;
    ``fsync`` forces the bytes to disk before the rename."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        if not private:
            os.chmod(partial, 0o644)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
