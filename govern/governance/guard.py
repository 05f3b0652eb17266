"""The manifest is immutable during a run: its files are hashed at the start and checked
before every item; a change halts the run."""

from __future__ import annotations

import hashlib
from pathlib import Path

from govern.ledger.memory import LedgerSink


class ManifestChanged(Exception):
    """A file of the manifest changed while the run was going on."""


def file_digests(paths: list[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


class ManifestGuard:
    def __init__(self, paths: list[Path]) -> None:
        self.digests = file_digests(paths)

    def check(self, ledger: LedgerSink) -> None:
        for path, expected in self.digests.items():
            try:
                found = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            except OSError:
                found = None
            if found != expected:
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
