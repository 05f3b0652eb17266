"""Writing a file so that a crash at any moment leaves either the old file or the new one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
