"""The manifest is immutable during a run: its files are hashed at the start and checked
before every item; a change halts the run.

A file is hashed again only when its status says it may have changed: any write to a
file moves its ctime, which no program can set back, and replacing it changes its
inode. As git does with its index, a status taken too soon after the file was last
changed is not trusted (on a file system with coarse timestamps a second edit could
share the first's), so such a file is hashed at every check until it has settled.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from govern.ledger.memory import LedgerSink

SETTLED_NS = 2_000_000_000  # a status this much older than its hashing can be trusted


class ManifestChanged(Exception):
    """A file of the manifest changed while the run was going on."""


def file_digests(paths: list[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _status(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ManifestGuard:
    def __init__(self, paths: list[Path]) -> None:
        self.digests = file_digests(paths)
        self._trusted: dict[str, tuple[int, ...]] = {}  # path -> a status its digest holds for

    def check(self, ledger: LedgerSink) -> None:
        for path, expected in self.digests.items():
            status = _status(path)
            if status is not None and self._trusted.get(path) == status:
                continue
            hashed_at = time.time_ns()
            try:
                found = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            except OSError:
                found = None
            if found == expected:
                unchanged_meanwhile = status is not None and _status(path) == status
                if unchanged_meanwhile and hashed_at - max(status[3:]) >= SETTLED_NS:
                    self._trusted[path] = status
                continue
            ledger.append(
                "halt",
                "controller",
                {
                    "reason": "manifest changed",
                    "file": path,
                    "expected_sha256": expected,
                    "found_sha256": found,
                },
            )
            raise ManifestChanged(
                f"{path} changed during the run; it ran under sha256 "
                f"{expected[:12]}..., so the run stops here"
            )
