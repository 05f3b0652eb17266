"""Text that is safe to print or to write into a UTF-8 file.

A file name that is not valid UTF-8 reaches Python as a string with surrogate
escapes (``b'\\xff.yaml'`` becomes ``'\\udcff.yaml'``), which no UTF-8 stream or
file can encode. govern escapes such text one way everywhere: as Python's
``backslashreplace`` does. The command line sets that error handler on its
output streams; text that goes into files passes through :func:`printable`.
"""

from __future__ import annotations

import os

ERRORS = "backslashreplace"


def printable(text: str | os.PathLike[str]) -> str:
    """``text`` with anything UTF-8 cannot encode backslash-escaped; other text unchanged."""
    return os.fspath(text).encode("utf-8", ERRORS).decode("utf-8")
