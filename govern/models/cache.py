"""Real models' responses, kept so that asking the same again costs nothing.

The key is a digest of everything that decides a reply: the model, the server it
goes to, the messages, the seed (each call's own, so a seat, a sample and a
re-ask each have theirs) and the sampling sent. A repeated run of the same
manifest, or a cell an experiment already ran, is answered from here. The
simulator is never cached: it is free and deterministic already.

One SQLite file (WAL, so several runs may share it) at
``$XDG_CACHE_HOME/govern/responses.sqlite``; ``GOVERN_CACHE=off`` turns it off
and ``GOVERN_CACHE=PATH`` puts it elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import asdict, replace
from pathlib import Path

import structlog

from govern.models.base import ModelRequest, ModelResponse

ENV = "GOVERN_CACHE"
APPLICATION_ID = 0x676F7663  # "govc": marks a SQLite file as govern's response cache
log = structlog.get_logger()
_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    stored REAL NOT NULL,
    response TEXT NOT NULL
)
"""


def default_cache_path() -> Path | None:
    """Where responses are kept, or None when ``GOVERN_CACHE=off``."""
    setting = os.environ.get(ENV, "").strip()
    if setting.lower() in ("off", "0", "no", "false"):
        return None
    if setting:
        return Path(setting)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "govern" / "responses.sqlite"


def request_key(request: ModelRequest, api_base: str | None) -> str:
    """The digest of what decides a reply (never the oracle, which no real model sees)."""
    decisive = {
        "model": request.model,
        "api_base": api_base.rstrip("/") if api_base else None,
        "messages": request.messages,
        "seed": request.seed,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "extra": request.extra,
    }
    canonical = json.dumps(decisive, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """get and put by key. Only govern's own cache file is opened (its SQLite
    ``application_id`` says so); anything else is refused and left as it was. A reply that
    cannot be read back is a miss, and a reply that cannot be kept is still returned."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() and not path.is_file():
                raise sqlite3.DatabaseError("not a regular file")
            self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise sqlite3.DatabaseError(self._unusable(exc)) from None
        try:
            self._claim()
        except sqlite3.Error as exc:
            self._db.close()
            raise sqlite3.DatabaseError(self._unusable(exc)) from None

    def _unusable(self, why: object) -> str:
        return (
            f"the response cache {self.path} cannot be used ({why}); it holds only cached "
            f"replies: move it aside or delete it, point {ENV} elsewhere, or set {ENV}=off"
        )

    def _claim(self) -> None:
        """Make a new file govern's cache; refuse a file that is something else."""
        owner = self._db.execute("PRAGMA application_id").fetchone()[0]
        tables = self._db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
        if owner != APPLICATION_ID and (owner != 0 or tables):
            raise sqlite3.DatabaseError("not govern's response cache")
        if owner == 0:
            self._db.execute("PRAGMA journal_mode=WAL")
        # The mark and the table in one transaction: a process that finds the mark finds the
        # table too (two processes creating the file at once raced for it).
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._db.execute("PRAGMA application_id").fetchone()[0] == 0:
                self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self._db.execute(_SCHEMA)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def get(self, key: str) -> ModelResponse | None:
        try:
            row = self._db.execute(
                "SELECT response FROM responses WHERE key = ?", (key,)
            ).fetchone()
            stored = ModelResponse(**json.loads(row[0])) if row is not None else None
        except (sqlite3.Error, ValueError, TypeError) as exc:  # unreadable: ask the model
            log.warning(
                "response cache: a kept reply cannot be read", path=str(self.path), error=str(exc)
            )
            return None
        if stored is None:
            return None
        return replace(stored, cost=0.0, latency=0.0, attempts=0, cached=True)

    def put(self, key: str, response: ModelResponse) -> None:
        record = json.dumps(asdict(replace(response, cached=False)), ensure_ascii=False)
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, model, stored, response) "
                "VALUES (?, ?, ?, ?)",
                (key, response.model, time.time(), record),
            )
        except sqlite3.Error as exc:  # the reply is already paid for: keep it, warn
            log.warning(
                "response cache: a reply cannot be kept", path=str(self.path), error=str(exc)
            )

    def stats(self) -> dict[str, int]:
        """Responses kept per model."""
        rows = self._db.execute("SELECT model, COUNT(*) FROM responses GROUP BY model")
        return {model: count for model, count in rows}

    def clear(self) -> int:
        """Forget every response, and give back the space; returns how many there were."""
        count = self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        self._db.execute("DELETE FROM responses")
        self._db.execute("VACUUM")
        return int(count)

    def close(self) -> None:
        self._db.close()
