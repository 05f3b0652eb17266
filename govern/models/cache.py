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

from govern.models.base import ModelRequest, ModelResponse

ENV = "GOVERN_CACHE"
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
        "api_base": api_base,
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
    """get and put by key; a damaged or unreadable cache is an error when opened, never a
    silently wrong answer."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise sqlite3.DatabaseError(
                f"the response cache {path} cannot be used ({exc}); move it aside, run "
                f"`govern cache clear`, or set {ENV}=off"
            ) from None

    def get(self, key: str) -> ModelResponse | None:
        row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        stored = ModelResponse(**json.loads(row[0]))
        return replace(stored, cost=0.0, latency=0.0, attempts=0, cached=True)

    def put(self, key: str, response: ModelResponse) -> None:
        record = json.dumps(asdict(replace(response, cached=False)), ensure_ascii=False)
        self._db.execute(
            "INSERT OR REPLACE INTO responses (key, model, stored, response) VALUES (?, ?, ?, ?)",
            (key, response.model, time.time(), record),
        )

    def stats(self) -> dict[str, int]:
        """Responses kept per model."""
        rows = self._db.execute("SELECT model, COUNT(*) FROM responses GROUP BY model")
        return {model: count for model, count in rows}

    def clear(self) -> int:
        """Forget every response; returns how many there were."""
        count = self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        self._db.execute("DELETE FROM responses")
        return int(count)

    def close(self) -> None:
        self._db.close()
