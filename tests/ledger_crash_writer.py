"""Append ledger entries forever, so that tests/test_ledger_crash.py can SIGKILL it mid-write.

    python tests/ledger_crash_writer.py LEDGER_PATH [chunked|held]

Prints the seq of every 500th appended entry (flushed), so the test knows which entries
were complete before the kill. The writer puts each line down in one write(2), which a
kill almost never splits; with ``chunked`` each line goes down in 64-byte write(2)s, so
that a kill often leaves a torn last line, as a crash on a slow or networked disk would.
With ``held`` the writer holds its entries (as a run does) and flushes every 500th, as a
run flushes at each item's end: the 500 go down in one write(2) of about a megabyte.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import BinaryIO

from govern.ledger.keys import keyring_from_secrets
from govern.ledger.writer import LedgerWriter

SECRET = "11" * 32  # the test keyring of tests/test_ledger.py
PADDING = "x" * 2048
CHUNK = 64


class ChunkedFile:
    """The ledger's locked handle, written unbuffered in small pieces."""

    def __init__(self, handle: BinaryIO) -> None:
        handle.flush()
        self._handle = handle

    def write(self, data: bytes) -> int:
        for start in range(0, len(data), CHUNK):
            os.write(self._handle.fileno(), data[start : start + CHUNK])
        return len(data)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._handle.fileno()

    def close(self) -> None:
        self._handle.close()


def main() -> None:
    ring = keyring_from_secrets(SECRET, "33" * 32, "test")
    writer = LedgerWriter.create(
        Path(sys.argv[1]), ring, "crash", {"purpose": "crash test"}, seal_every=1000, fsync="never"
    )
    if sys.argv[2:] == ["chunked"]:
        writer._file = ChunkedFile(writer._file)  # type: ignore[assignment]
    if sys.argv[2:] == ["held"]:
        writer.hold()
    appended = 0
    while True:
        seq = writer.append("transition", "engine", {"n": appended, "padding": PADDING})
        appended += 1
        if appended % 500 == 0:
            writer.flush()
            print(seq, flush=True)


if __name__ == "__main__":
    main()
