"""The results store of an experiment: one SQLite database (WAL mode) per experiment.

It holds the experiment (its id, manifest digest, creation time and govern version), its
cells (id, manifest digest, run folder, status), one row per finished item keyed by
(cell, item, seed), and the ledger heads of the cells' run folders. Statistics and the
report read only this store; a resumed experiment asks it what is already done.

    with ResultsStore.open(folder / "results.sqlite", "compare", digest, cells=digests) as store:
        done = store.finished(cell, seed)           # resume: skip these
        for item in items:
            if item.id not in done:
                store.record_item(cell, seed, run(item))  # committed as it finishes

Decisions, made once here:

- Every item is committed as it finishes, in a transaction of its own (one INSERT in
  autocommit mode), so a crash loses at most the item in flight and never leaves half a row.
  ``synchronous=NORMAL`` in WAL mode: a killed process loses no commit; a power cut may lose
  the last few commits but never corrupts the store. ``sync="full"`` fsyncs every commit.
- A second record for a (cell, item, seed) already stored is *ignored*, not replaced, and
  `record_item` returns False. The first committed result is the one the cell's
  results.jsonl line and ledger entry were written with, so a later duplicate (a resumed run
  redoing an item it had finished, two writers racing) must not silently change a number the
  ledger vouches for. Redoing an item is explicit: `replace_failed` puts a retried item
  (``--retry-failed``) in place of its recorded failure, in one transaction.
- The store is the experiment's index, not a second copy of its transcripts: the record is
  kept without its ``turns`` (the prompts and replies stay in the cell's results.jsonl),
  with the SHA-256 of the full line results.jsonl holds (``json.dumps(record,
  ensure_ascii=False)``), which is the digest the cell's ledger binds: so an audit can tie
  every stored number to the ledger. The scalar fields are copied into columns for
  queries. A cost of NULL means unknown, as in the record.
- The running totals are kept by triggers in the same transaction as each item, so every
  process sharing the store sees one exact spend: the experiment's budgets are checked
  against it. ``items`` counts the rows stored; calls, tokens and cost count everything
  ever recorded, so a failure replaced by its retry (``--retry-failed``) stays paid for.
- A store whose manifest digest (or a cell's) differs from the one given is refused with
  both digests, unless ``force_new``: then the old file is renamed aside, never deleted.
- Several processes may open one store: SQLite serialises their writes, and a writer that
  cannot get the lock within ``timeout`` seconds raises `StoreBusy` (nothing is corrupted).
- A file that is not SQLite, or an SQLite database that is not a govern store, is refused
  before anything is written to it; a store written by a newer schema is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, get_args

from govern import __version__

SCHEMA_VERSION = 1
APPLICATION_ID = 0x676F7672  # "govr": marks an SQLite file as a govern results store
SQLITE_MAGIC = b"SQLite format 3\x00"
INT64 = (-(2**63), 2**63 - 1)

CellStatus = Literal["pending", "running", "finished", "failed", "stopped"]
CELL_STATUSES: frozenset[str] = frozenset(get_args(CellStatus))

_SCHEMA = """
CREATE TABLE experiment (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    created TEXT NOT NULL,
    govern_version TEXT NOT NULL
);
CREATE TABLE cells (
    cell TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    folder TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    reason TEXT
);
CREATE TABLE items (
    cell TEXT NOT NULL REFERENCES cells (cell),
    item TEXT NOT NULL,
    seed INTEGER NOT NULL,
    outcome TEXT,
    correct_strict INTEGER NOT NULL,
    correct_flexible INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost REAL,
    latency REAL,
    simulated INTEGER NOT NULL,
    failure TEXT,
    line_sha256 TEXT NOT NULL,
    record TEXT NOT NULL,
    recorded TEXT NOT NULL,
    -- the key (cell, item, seed), ordered so that its index answers finished(cell, seed)
    UNIQUE (cell, seed, item)
);
CREATE TABLE ledger_heads (
    cell TEXT NOT NULL REFERENCES cells (cell),
    head TEXT NOT NULL,
    recorded TEXT NOT NULL
);
CREATE INDEX ledger_heads_by_cell ON ledger_heads (cell);
CREATE TABLE totals (
    items INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    unknown_cost INTEGER NOT NULL
);
INSERT INTO totals VALUES (0, 0, 0, 0.0, 0);
CREATE TRIGGER totals_on_insert AFTER INSERT ON items BEGIN
    UPDATE totals SET items = items + 1, calls = calls + new.calls,
        tokens = tokens + new.prompt_tokens + new.completion_tokens,
        cost = cost + coalesce(new.cost, 0.0), unknown_cost = unknown_cost + (new.cost IS NULL);
END;
CREATE TRIGGER totals_on_delete AFTER DELETE ON items BEGIN
    UPDATE totals SET items = items - 1;
END;
"""

ITEM_COLUMNS = (
    "cell, item, seed, outcome, correct_strict, correct_flexible, calls, prompt_tokens, "
    "completion_tokens, cost, latency, simulated, failure, line_sha256, record"
)
_INSERT = (
    f"INSERT INTO items ({ITEM_COLUMNS}, recorded) VALUES ({', '.join('?' * 16)}) "
    "ON CONFLICT (cell, seed, item) DO NOTHING"
)


class StoreError(Exception):
    """The results store cannot be opened or written; the message says why and what to do."""


class StoreMismatch(StoreError):
    """The store was written for another manifest (its digest, or a cell's, differs)."""


class StoreVersionError(StoreError):
    """The store was written by a newer govern, with a schema this one does not know."""


class StoreCorrupt(StoreError):
    """The file is not SQLite, not a govern results store, or damaged; it was left untouched."""


class StoreBusy(StoreError):
    """Another process held the store's write lock for longer than the busy timeout."""


@dataclass(frozen=True, slots=True)
class Experiment:
    id: str
    digest: str
    created: str  # ISO 8601, UTC
    govern_version: str


@dataclass(frozen=True, slots=True)
class Cell:
    id: str
    digest: str
    folder: Path | None
    status: str
    reason: str | None  # why a cell failed or stopped


@dataclass(frozen=True, slots=True)
class Spend:
    """What the experiment has spent, over every cell: its budgets are checked against it."""

    items: int  # stored now (a retried failure is replaced, not added)
    calls: int
    tokens: int
    cost: float  # the known costs' sum
    unknown_cost: int  # items whose cost is unknown (a price litellm does not know)


@dataclass(frozen=True, slots=True)
class StoredItem:
    """One finished item: the record's scalar fields as stored, and the record itself."""

    cell: str
    item: str
    seed: int
    outcome: str | None
    correct_strict: bool
    correct_flexible: bool
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None  # None: unknown
    latency: float | None
    simulated: bool
    failure: str | None  # the errors of an item whose outcome is "error"
    line_sha256: str  # the digest of its results.jsonl line, which the cell's ledger binds
    record: dict[str, Any]  # the record without its turns


def _statements(script: str) -> Iterator[str]:
    """The script's statements, one at a time (a trigger's body holds ``;`` of its own)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _int(record: Mapping[str, Any], key: str) -> int:
    value = record.get(key, 0)
    if not isinstance(value, int) or not INT64[0] <= value <= INT64[1]:
        raise ValueError(f"record field {key!r} must be an integer within 64 bits, not {value!r}")
    return int(value)


def _number(record: Mapping[str, Any], key: str) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"record field {key!r} must be a number or null, not {value!r}")
    return float(value)


def columns_of(cell: str, seed: int, record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The columns of one record, checked: the digest of its results.jsonl line, and the
    record without its turns."""
    item = record.get("id")
    if not isinstance(item, str):
        raise ValueError(f"a record needs a string 'id', not {item!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or not INT64[0] <= seed <= INT64[1]:
        raise ValueError(f"seed must be an integer within 64 bits, not {seed!r}")
    outcome = record.get("outcome")
    if outcome is not None and not isinstance(outcome, str):
        raise ValueError(f"record field 'outcome' must be a string, not {outcome!r}")
    failure = None
    if outcome == "error":
        errors = record.get("errors") or []
        failure = "\n".join(map(str, errors)) if errors else "unknown error"
    return (
        cell,
        item,
        seed,
        outcome,
        bool(record.get("correct_strict", False)),
        bool(record.get("correct_flexible", False)),
        _int(record, "calls"),
        _int(record, "prompt_tokens"),
        _int(record, "completion_tokens"),
        _number(record, "cost"),
        _number(record, "latency"),
        bool(record.get("simulated", False)),
        failure,
        # binding.line_digest's digest, computed here so that the store needs no third-party
        # package (tests/test_experiment_store.py checks that the two agree)
        hashlib.sha256(json.dumps(record, ensure_ascii=False).encode("utf-8")).hexdigest(),
        json.dumps({k: v for k, v in record.items() if k != "turns"}, ensure_ascii=False),
        _now(),
    )


def _stored(row: tuple[Any, ...]) -> StoredItem:
    return StoredItem(
        cell=row[0],
        item=row[1],
        seed=row[2],
        outcome=row[3],
        correct_strict=bool(row[4]),
        correct_flexible=bool(row[5]),
        calls=row[6],
        prompt_tokens=row[7],
        completion_tokens=row[8],
        cost=row[9],
        latency=row[10],
        simulated=bool(row[11]),
        failure=row[12],
        line_sha256=row[13],
        record=json.loads(row[14]),
    )


def _check_file(path: Path) -> None:
    """Refuse, before SQLite opens it, a path that is a folder.

    The file itself is never opened here: closing any descriptor of a file drops every POSIX
    lock this process holds on it, those of another store open on it included (the progress
    thread's beside the runner's). A worker closing its store would then find no other
    reader, checkpoint and delete the write-ahead log under them: "database disk image is
    malformed", or commits that other processes never see. SQLite's own reads tell a file
    that is not SQLite (`_not_sqlite`), writing nothing to it."""
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a results store")


def _not_sqlite(path: Path) -> StoreError:
    """A file SQLite found is not a database (no store of this process can hold a lock on
    it, so reading its beginning here is safe)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as error:
        return StoreError(f"cannot read the results store {path}: {error.strerror}")
    return StoreCorrupt(
        f"{path} is not an SQLite database (it begins {head[:16]!r}), so not a govern "
        "results store; it was left untouched. Move it away or give another path."
    )


def _writable(path: Path) -> None:
    """SQLite in WAL mode writes PATH-wal and PATH-shm beside the store: the folder must be
    writable, and so must the store."""
    folder = path.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(
            f"cannot write the results store {path}: its folder {folder} is read-only (SQLite "
            "keeps its write-ahead log beside the store). Give a writable experiment folder."
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(f"cannot write the results store {path}: the file is read-only")


def _aside(path: Path) -> Path:
    """A free name beside PATH for the store that force_new replaces."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.replaced-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.replaced-{stamp}-{n}")
    return candidate


def _differences(
    old_digest: str, new_digest: str, old_cells: Mapping[str, str], new_cells: Mapping[str, str]
) -> list[str]:
    """What makes a store another manifest's: its digest, or a stored cell's, differs. Cells
    added or left out are said too, but alone they are no mismatch (new cells are added)."""
    said = []
    if old_digest != new_digest:
        said.append(f"manifest digest {old_digest} (stored) != {new_digest} (given)")
    changed = sorted(c for c in old_cells.keys() & new_cells.keys() if old_cells[c] != new_cells[c])
    if changed:
        said.append(
            "cells whose digest changed: "
            + ", ".join(f"{c} ({old_cells[c]} -> {new_cells[c]})" for c in changed)
        )
    if said and new_cells:
        if added := sorted(new_cells.keys() - old_cells.keys()):
            said.append("cells added: " + ", ".join(added))
        if removed := sorted(old_cells.keys() - new_cells.keys()):
            said.append("cells no longer in the manifest: " + ", ".join(removed))
    return said


class ResultsStore:
    """One experiment's results: open with `ResultsStore.open`, use as a context manager."""

    def __init__(self, path: Path, connection: sqlite3.Connection, timeout: float) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = connection
        self._timeout = timeout
        self.replaced: Path | None = None  # where force_new put the store it replaced

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        experiment_id: str,
        digest: str,
        *,
        cells: Mapping[str, str] | None = None,
        force_new: bool = False,
        timeout: float = 30.0,
        sync: Literal["normal", "full"] = "normal",
    ) -> ResultsStore:
        """Open the store at PATH, creating it if absent.

        ``cells`` maps cell ids to their manifest digests: new cells are added (status
        "pending"), and a stored cell whose digest differs is a mismatch. An existing store
        whose experiment id or digest differs raises `StoreMismatch` saying what changed,
        unless ``force_new``: then the old store is renamed aside and a fresh one begun.
        ``timeout`` is how long to wait for another process's lock before `StoreBusy`.
        """
        path = Path(path)
        cells = dict(cells or {})
        store = cls._connect(path, timeout, sync)
        try:
            found = store._existing()
            if found is None:
                created = store._create(experiment_id, digest, cells)
                if created:
                    return store
                found = store._existing()
                assert found is not None  # another process created it while we waited
            old_id, old_digest, old_cells = found
            said = _differences(old_digest, digest, old_cells, cells)
            if old_id != experiment_id:
                said.insert(0, f"experiment id {old_id!r} (stored) != {experiment_id!r} (given)")
            if not said:
                store._add_cells({c: d for c, d in cells.items() if c not in old_cells})
                return store
            if not force_new:
                raise StoreMismatch(
                    f"the results store {path} was written for a different manifest: "
                    + "; ".join(said)
                    + ". Resuming would mix results of two manifests. Use another experiment "
                    "folder, or start afresh with force_new (--force-new): the old store is "
                    "then kept beside it, renamed."
                )
        except BaseException:
            store.close()
            raise
        aside = store._move_aside()
        fresh = cls.open(path, experiment_id, digest, cells=cells, timeout=timeout, sync=sync)
        fresh.replaced = aside
        return fresh

    @classmethod
    def _connect(cls, path: Path, timeout: float, sync: str) -> ResultsStore:
        _check_file(path)
        _writable(path)
        try:
            db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the results store {path}: {error}") from error
        store = cls(path, db, timeout)
        try:
            # Read-only questions first: nothing is written to a file that is not ours.
            (application_id,) = db.execute("PRAGMA application_id").fetchone()
            (version,) = db.execute("PRAGMA user_version").fetchone()
            (tables,) = db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if tables and application_id != APPLICATION_ID:
                raise StoreCorrupt(
                    f"{path} is an SQLite database but not a govern results store (application "
                    f"id {application_id:#x}); it was left untouched. Give another path."
                )
            if version > SCHEMA_VERSION:
                raise StoreVersionError(
                    f"the results store {path} has schema version {version}, newer than the "
                    f"{SCHEMA_VERSION} this govern ({__version__}) reads: it was written by a "
                    "newer govern. Upgrade govern to resume it; it was left untouched."
                )
            mode = _journal_mode_wal(db, timeout)
            if mode.lower() != "wal":
                raise StoreError(f"the results store {path} cannot use WAL mode ({mode})")
            db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as error:
            db.close()
            if getattr(error, "sqlite_errorname", "") == "SQLITE_NOTADB":
                raise _not_sqlite(path) from error
            raise store._translate(error) from error
        except BaseException:
            db.close()
            raise
        return store

    def _existing(self) -> tuple[str, str, dict[str, str]] | None:
        """The stored experiment id, digest and cell digests; None for an empty database."""
        db = self._conn()
        (tables,) = db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if not tables:
            return None
        try:
            row = db.execute("SELECT id, digest FROM experiment").fetchone()
            cells = dict(db.execute("SELECT cell, digest FROM cells").fetchall())
        except sqlite3.DatabaseError as error:
            raise self._translate(error) from error
        if row is None:
            raise StoreCorrupt(f"the results store {self.path} has no experiment row")
        return row[0], row[1], cells

    def _create(self, experiment_id: str, digest: str, cells: Mapping[str, str]) -> bool:
        """Create the schema; False when another process created it first."""
        db = self._conn()
        self._execute("BEGIN IMMEDIATE")
        try:
            (tables,) = db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if tables:
                db.execute("ROLLBACK")
                return False
            # one statement at a time: executescript would commit the open transaction
            for statement in _statements(_SCHEMA):
                db.execute(statement)
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute(
                "INSERT INTO experiment (id, digest, created, govern_version) VALUES (?, ?, ?, ?)",
                (experiment_id, digest, _now(), __version__),
            )
            db.executemany("INSERT INTO cells (cell, digest) VALUES (?, ?)", sorted(cells.items()))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return True

    def _add_cells(self, cells: Mapping[str, str]) -> None:
        if cells:
            self._execute_many(
                "INSERT INTO cells (cell, digest) VALUES (?, ?) ON CONFLICT (cell) DO NOTHING",
                sorted(cells.items()),
            )

    def _move_aside(self) -> Path:
        """Fold the log into the store, close it, and rename it (and any log left) aside."""
        db = self._conn()
        with contextlib.suppress(sqlite3.Error):
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.close()
        aside = _aside(self.path)
        self.path.rename(aside)
        for suffix in ("-wal", "-shm"):
            extra = self.path.with_name(self.path.name + suffix)
            if extra.exists():
                extra.rename(aside.with_name(aside.name + suffix))
        return aside

    # -- helpers -------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"the results store {self.path} is closed")
        return self._db

    def _translate(self, error: sqlite3.Error) -> StoreError:
        text = str(error)
        code = getattr(error, "sqlite_errorname", "")
        if code.startswith("SQLITE_BUSY") or "locked" in text:
            return StoreBusy(
                f"the results store {self.path} is locked by another process (waited "
                f"{self._timeout:g} s): is another run of this experiment still going? ({text})"
            )
        if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return StoreCorrupt(
                f"the results store {self.path} is damaged ({text}); it was left untouched"
            )
        if code.startswith("SQLITE_READONLY") or "readonly" in text:
            return StoreError(f"cannot write the results store {self.path}: {text}")
        return StoreError(f"the results store {self.path}: {text}")

    def _execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._conn().execute(sql, parameters)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as error:
            raise self._translate(error) from error

    def _execute_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(sql, rows)
            db.execute("COMMIT")
        except sqlite3.Error as error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise self._translate(error) from error

    # -- the experiment and its cells ----------------------------------------------------

    @property
    def experiment(self) -> Experiment:
        row = self._execute("SELECT id, digest, created, govern_version FROM experiment")
        return Experiment(*row.fetchone())

    def cells(self) -> list[Cell]:
        rows = self._execute("SELECT cell, digest, folder, status, reason FROM cells ORDER BY cell")
        return [Cell(c, d, Path(f) if f is not None else None, s, r) for c, d, f, s, r in rows]

    def spend(self) -> Spend:
        """The totals over every stored item, as committed (by any process)."""
        return Spend(*self._execute("SELECT * FROM totals").fetchone())

    def add_cell(
        self, cell: str, digest: str, *, folder: str | os.PathLike[str] | None = None
    ) -> None:
        """Add a cell (status "pending"); an existing cell with another digest is a mismatch."""
        row = self._execute("SELECT digest FROM cells WHERE cell = ?", (cell,)).fetchone()
        if row is not None and row[0] != digest:
            raise StoreMismatch(
                f"cell {cell} of {self.path} has digest {row[0]} (stored), not {digest} (given)"
            )
        if row is None:
            self._execute("INSERT INTO cells (cell, digest) VALUES (?, ?)", (cell, digest))
        if folder is not None:
            self.set_cell_status(cell, None, folder=folder)

    def set_cell_status(
        self,
        cell: str,
        status: CellStatus | None,
        *,
        folder: str | os.PathLike[str] | None = None,
        reason: str | None = None,
    ) -> None:
        """Set a cell's status (None keeps it) and, when given, its run folder; a new status
        replaces the reason (why it failed or stopped) with ``reason``."""
        if status is not None and status not in CELL_STATUSES:
            raise ValueError(f"cell status {status!r} is not one of {sorted(CELL_STATUSES)}")
        cursor = self._execute(
            "UPDATE cells SET status = coalesce(?, status), folder = coalesce(?, folder), "
            "reason = CASE WHEN ? IS NULL THEN reason ELSE ? END WHERE cell = ?",
            (status, os.fspath(folder) if folder is not None else None, status, reason, cell),
        )
        if cursor.rowcount == 0:
            raise KeyError(f"no cell {cell!r} in the results store {self.path}")

    def record_ledger_head(self, cell: str, head: Mapping[str, Any]) -> None:
        """Keep a cell's ledger head as its ledger published it (every head, in order)."""
        try:
            self._execute(
                "INSERT INTO ledger_heads (cell, head, recorded) VALUES (?, ?, ?)",
                (cell, json.dumps(head, ensure_ascii=False, sort_keys=True), _now()),
            )
        except sqlite3.IntegrityError as error:
            raise KeyError(f"no cell {cell!r} in the results store {self.path}") from error

    def ledger_heads(self, cell: str) -> list[dict[str, Any]]:
        """A cell's recorded heads, oldest first."""
        rows = self._execute("SELECT head FROM ledger_heads WHERE cell = ? ORDER BY rowid", (cell,))
        return [json.loads(head) for (head,) in rows]

    def ledger_head(self, cell: str) -> dict[str, Any] | None:
        """A cell's latest recorded head, or None."""
        heads = self.ledger_heads(cell)
        return heads[-1] if heads else None

    # -- items ---------------------------------------------------------------------------

    def record_item(self, cell: str, seed: int, record: Mapping[str, Any]) -> bool:
        """Commit one finished item; False when (cell, item, seed) was already stored (the
        stored record is kept: see the module's docstring)."""
        row = columns_of(cell, seed, record)
        try:
            cursor = self._execute(_INSERT, row)
        except sqlite3.IntegrityError as error:
            raise KeyError(
                f"no cell {cell!r} in the results store {self.path}: add it first"
            ) from error
        return cursor.rowcount == 1

    def finished(self, cell: str, seed: int) -> set[str]:
        """The ids of the items of (cell, seed) already stored, whatever their outcome."""
        rows = self._execute("SELECT item FROM items WHERE cell = ? AND seed = ?", (cell, seed))
        return {item for (item,) in rows}

    def failed(self, cell: str, seed: int) -> set[str]:
        """The ids of the stored items of (cell, seed) whose outcome is "error"."""
        rows = self._execute(
            "SELECT item FROM items WHERE cell = ? AND seed = ? AND outcome = 'error'",
            (cell, seed),
        )
        return {item for (item,) in rows}

    def clear_cell(self, cell: str) -> int:
        """Forget a cell's items and ledger heads, in one transaction, and set it pending: its
        run folder is gone, so no ledger vouches for them; returns how many items went."""
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE")
            (count,) = db.execute("SELECT count(*) FROM items WHERE cell = ?", (cell,)).fetchone()
            db.execute("DELETE FROM items WHERE cell = ?", (cell,))
            db.execute("DELETE FROM ledger_heads WHERE cell = ?", (cell,))
            db.execute(
                "UPDATE cells SET status = 'pending', folder = NULL, reason = NULL WHERE cell = ?",
                (cell,),
            )
            db.execute("COMMIT")
        except sqlite3.Error as error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise self._translate(error) from error
        return int(count)

    def replace_failed(self, cell: str, seed: int, record: Mapping[str, Any]) -> bool:
        """Record a retried item in place of its recorded failure, in one transaction (a
        retry of ``--retry-failed``); an item stored with another outcome is kept, and an
        item not stored yet is recorded. False when nothing changed."""
        row = columns_of(cell, seed, record)
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "DELETE FROM items WHERE cell = ? AND seed = ? AND item = ? AND outcome = 'error'",
                (cell, seed, row[1]),
            )
            inserted = db.execute(_INSERT, row).rowcount == 1
            db.execute("COMMIT")
        except sqlite3.Error as error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(error, sqlite3.IntegrityError):
                raise KeyError(f"no cell {cell!r} in the results store {self.path}") from error
            raise self._translate(error) from error
        return inserted

    def get(self, cell: str, seed: int, item: str) -> StoredItem | None:
        row = self._execute(
            f"SELECT {ITEM_COLUMNS} FROM items WHERE cell = ? AND seed = ? AND item = ?",
            (cell, seed, item),
        ).fetchone()
        return _stored(row) if row is not None else None

    def counts(self) -> dict[str, int]:
        """Stored items per cell (cells with none are left out)."""
        return dict(self._execute("SELECT cell, count(*) FROM items GROUP BY cell").fetchall())

    def count_failed(self) -> int:
        """Stored items whose outcome is "error", in every cell."""
        return self._execute("SELECT count(*) FROM items WHERE outcome = 'error'").fetchone()[0]

    def count(self, cell: str | None = None) -> int:
        if cell is None:
            return self._execute("SELECT count(*) FROM items").fetchone()[0]
        return self._execute("SELECT count(*) FROM items WHERE cell = ?", (cell,)).fetchone()[0]

    def records(self, cell: str | None = None) -> Iterator[StoredItem]:
        """Stream the stored items (of one cell, or all), in the order they were recorded.

        Rows are read one at a time on a connection of their own, from a snapshot taken at
        the first row: items recorded meanwhile are not seen, and memory stays flat."""
        self._conn()
        try:
            reader = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        except sqlite3.Error as error:
            raise self._translate(error) from error
        return self._stream(reader, cell)

    def _stream(self, reader: sqlite3.Connection, cell: str | None) -> Iterator[StoredItem]:
        try:
            reader.execute("PRAGMA query_only=ON")
            reader.execute("BEGIN")
            if cell is None:
                rows = reader.execute(f"SELECT {ITEM_COLUMNS} FROM items ORDER BY rowid")
            else:
                rows = reader.execute(
                    f"SELECT {ITEM_COLUMNS} FROM items WHERE cell = ? ORDER BY rowid", (cell,)
                )
            for row in rows:
                yield _stored(row)
        except sqlite3.Error as error:
            raise self._translate(error) from error
        finally:
            reader.close()

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the store (idempotent). Every recorded item is already committed."""
        if self._db is not None:
            db, self._db = self._db, None
            with contextlib.suppress(sqlite3.Error):
                db.execute("PRAGMA optimize")
            db.close()

    @property
    def closed(self) -> bool:
        return self._db is None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.path)!r}{', closed' if self.closed else ''})"


def _journal_mode_wal(db: sqlite3.Connection, timeout: float) -> str:
    """Switch to WAL mode. Two processes creating one store at once race for it, and SQLite
    answers the loser 'locked' at once, without its busy wait: so wait here, up to
    ``timeout``, as for any other lock."""
    waited = 0.0
    while True:
        try:
            return str(db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or waited >= timeout:
                raise
            time.sleep(0.05)
            waited += 0.05
