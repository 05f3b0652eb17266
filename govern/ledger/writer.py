"""Append entries to a run's ledger: one writer at a time, a line flushed per entry (or, once
``hold`` is called, at each ``flush``), seals every N entries and at close, and recovery
from a torn last line after a crash."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, BinaryIO, Literal

from govern.files import write_atomic
from govern.ledger.format import CLOSING_REASONS, GENESIS, encode, head_statement, parse
from govern.ledger.keys import Keyring
from govern.ledger.merkle import MerkleFrontier, leaf_hash

FsyncPolicy = Literal["never", "seal", "always"]
HELD_AT_MOST = 512  # entries a held writer keeps in memory before it writes them anyway


class LedgerBusy(Exception):
    """Another process holds this ledger open for writing."""


def head_path(ledger: Path) -> Path:
    return ledger.with_name(ledger.stem + ".head")


class LedgerWriter:
    """The only thing that writes a ledger file. Use ``create`` or ``reopen``."""

    def __init__(
        self, path: Path, keyring: Keyring, handle: BinaryIO, *, seal_every: int, fsync: FsyncPolicy
    ) -> None:
        self.path = path
        self.keyring = keyring
        self._file = handle
        self.seal_every = seal_every
        self.fsync = fsync
        self._frontier = MerkleFrontier()
        self.run = ""
        self.seq = 0  # the next entry's number
        self._prev = GENESIS
        self._key = keyring.active_key.id
        self._signer = keyring.active_signer  # a separate secret: the HMAC key cannot sign
        self.closed = False
        self._held: list[bytes] | None = None  # lines not yet written, once hold() is called

    @classmethod
    def create(
        cls,
        path: Path,
        keyring: Keyring,
        run: str,
        header: dict[str, Any],
        *,
        seal_every: int = 1000,
        fsync: FsyncPolicy = "seal",
    ) -> LedgerWriter:
        keyring.require_writer()  # refuse before creating the file
        handle = _open_locked(path, "xb")
        writer = cls(path, keyring, handle, seal_every=seal_every, fsync=fsync)
        writer.run = run
        writer.append("header", "govern", header)
        return writer

    @classmethod
    def reopen(
        cls, path: Path, keyring: Keyring, *, seal_every: int = 1000, fsync: FsyncPolicy = "seal"
    ) -> LedgerWriter:
        """Continue a ledger: cut a torn last line, record the recovery, switch keys if rotated."""
        handle = _open_locked(path, "r+b")
        writer = cls(path, keyring, handle, seal_every=seal_every, fsync=fsync)
        try:
            writer._recover()
        except BaseException:
            handle.close()  # and with it the lock
            raise
        return writer

    def _recover(self) -> None:
        data = self._file.read()
        good_end = data.rfind(b"\n") + 1
        torn = data[good_end:]
        lines = data[:good_end].splitlines()
        last = parse(lines[-1]) if lines else None
        if last is None:
            raise ValueError(f"{self.path} has no intact entry to continue from")
        for line in lines:
            self._frontier.append(leaf_hash(line))
        if last["kind"] == "seal" and last["body"].get("reason") == "complete":
            raise ValueError(f"{self.path} was closed as complete; it cannot be continued")
        self.run, self.seq, self._prev = last["run"], last["seq"] + 1, last["mac"]
        if last["key"] not in self.keyring.keys:
            raise ValueError(
                f"{self.path} was written with key {last['key']}, which the "
                "keyring does not hold; reopen it with that key"
            )
        self._key = last["key"]
        if torn:
            self._file.seek(good_end)
            self._file.truncate()
        self._file.seek(0, os.SEEK_END)
        reason = (
            "torn last line"
            if torn
            else (
                "reopened after close"
                if last["kind"] == "seal" and last["body"].get("closing")
                else "unsealed"
            )
        )
        self.append(
            "recovery",
            "govern",
            {
                "reason": reason,
                "after_seq": last["seq"],
                "torn_bytes": len(torn),
                "torn_sha256": hashlib.sha256(torn).hexdigest() if torn else None,
            },
        )
        if self._key != self.keyring.active:
            previous, self._key = self._key, self.keyring.active_key.id
            self.append("segment", "govern", {"from_key": previous, "to_key": self._key})

    def append(self, kind: str, actor: str, body: dict[str, Any]) -> int:
        """Write one entry; returns its sequence number."""
        if self.closed:
            raise ValueError("the ledger is closed")
        entry = {
            "actor": actor,
            "body": body,
            "key": self._key,
            "kind": kind,
            "prev": self._prev,
            "run": self.run,
            "seq": self.seq,
            "ts": time.time_ns() // 1000,
        }
        secret = self.keyring.keys[self._key].secret
        line, mac = encode(entry, secret)
        if self._held is None or self.fsync == "always":
            self._file.write(line + b"\n")
            self._file.flush()
            if self.fsync == "always":
                os.fsync(self._file.fileno())
        else:
            self._held.append(line + b"\n")
            if kind == "seal" or len(self._held) >= HELD_AT_MOST:
                self.flush()
        self._frontier.append(leaf_hash(line))
        seq, self.seq, self._prev = self.seq, self.seq + 1, mac
        if kind != "seal" and self.seq % self.seal_every == 0:
            self.seal()
        return seq

    def hold(self) -> None:
        """From now on keep entries in memory and write them, in order and in one write, at
        the next ``flush``, seal or close, or once ``HELD_AT_MOST`` are waiting (with
        ``fsync="always"`` every entry is still written and synced at once).

        So a kill loses the entries appended since the last flush, and only those: what is
        on disk is always the ledger up to some entry, never with a gap. A run flushes at
        every item's end, so what a kill loses is entries of items still in flight, which
        vouch for no result and which resume redoes."""
        if self._held is None:
            self._held = []

    def flush(self) -> None:
        """Write the held entries and flush them (a no-op for a writer that holds none)."""
        if self._held:
            self._file.write(b"".join(self._held))
            self._held.clear()
            self._file.flush()

    def seal(self, *, reason: str | None = None) -> int:
        """Sign the tree of every entry so far, and whether (and why) the ledger closes here;
        the head goes to the entry and to ledger.head."""
        tree_size, root, head_mac = self._frontier.size, self._frontier.root().hex(), self._prev
        body: dict[str, Any] = {
            "tree_size": tree_size,
            "root": root,
            "head_mac": head_mac,
            "public_key": self._signer.public,
            "closing": reason is not None,
            "reason": reason,
        }
        body["signature"] = self._signer.private.sign(head_statement(self.run, body)).hex()
        seq = self.append("seal", "govern", body)
        if self.fsync != "never":
            os.fsync(self._file.fileno())
        head = {"run": self.run, "seq": seq, "key": self._key, **body}
        write_atomic(head_path(self.path), json.dumps(head, indent=2, sort_keys=True) + "\n")
        return seq

    def close(self, reason: str = "complete") -> None:
        """Seal as closed, saying why: complete, interrupted, halted or crashed."""
        if reason not in CLOSING_REASONS:
            raise ValueError(f"a ledger closes as one of {', '.join(CLOSING_REASONS)}")
        if not self.closed:
            self.seal(reason=reason)
            self.closed = True
            self._file.close()


def _open_locked(path: Path, mode: str) -> BinaryIO:
    handle = path.open(mode)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise LedgerBusy(f"{path} is being written by another process") from None
    return handle
