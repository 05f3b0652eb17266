"""An in-memory ledger for runs that keep no file (tests, benchmarks of the engine alone)."""

from __future__ import annotations

from typing import Any, Protocol


class LedgerSink(Protocol):
    def append(self, kind: str, actor: str, body: dict[str, Any]) -> int: ...

    def flush(self) -> None:
        """Put every entry appended so far where it is kept (a file: written and flushed)."""
        ...


class MemoryLedger:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def append(self, kind: str, actor: str, body: dict[str, Any]) -> int:
        self.entries.append({"seq": len(self.entries), "kind": kind, "actor": actor, "body": body})
        return len(self.entries) - 1

    def hold(self) -> None:
        """As a file ledger's: nothing to hold back in memory."""

    def flush(self) -> None:
        """As a file ledger's: every entry is already where it is kept."""

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["kind"] == kind]
