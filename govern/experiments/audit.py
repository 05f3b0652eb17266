"""`govern audit EXPERIMENT_DIR`: every cell's ledger verified, and every stored number
tied to a ledger that vouches for it.

Nothing in the folder is trusted: experiment.json only names the cells (an id that is
not a plain cell id is refused), the cells' run folders are audited as `govern audit`
audits a run (with keys from outside the experiment folder), and the store is opened
read-only. Then each stored item must be vouched for: its results line's digest must be
one that a verified ``item`` end entry of the cell's ledgers (its run, or a retry) bound.
Each ledger head the store recorded must be a seal of that ledger, so the heads the
report links to are the ledgers' own.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from govern.experiments.runner import CELLS_FOLDER, EXPERIMENT_FILE, RETRIES_FOLDER, STORE_FILE
from govern.experiments.store import ITEM_COLUMNS, columns_of
from govern.files import parse_json, read_regular
from govern.ledger.audit import AuditResult, AuditUsageError, audit
from govern.ledger.binding import RESULTS, line_digest
from govern.ledger.format import parse
from govern.ledger.proofs import is_seal
from govern.run.resume import ResumeError, read_request
from govern.text import printable

MAX_DESCRIPTION_BYTES = 1 << 24
CELL_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*){3,4}$")


@dataclass
class CellAudit:
    cell: str
    verdict: str  # "verified", "damaged", "missing" (its folder), "incomplete", "not run"
    lines: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)


@dataclass
class ExperimentAudit:
    intact: bool
    cells: list[CellAudit]
    store: list[str]  # problems of the store against the ledgers
    stored_items: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "stored_items": self.stored_items,
            "store_problems": self.store,
            "cells": [
                {"cell": c.cell, "verdict": c.verdict, "folders": c.folders, "details": c.lines}
                for c in self.cells
            ],
        }

    def text(self) -> list[str]:
        lines = []
        damaged = [c for c in self.cells if c.verdict in ("damaged", "missing")]
        for cell in self.cells:
            lines.append(f"{cell.verdict.upper():<10} {cell.cell}")
            if cell.verdict != "verified":
                lines += [f"    {line}" for line in cell.lines]
        lines += [f"STORE: {problem}" for problem in self.store]
        if self.intact:
            lines.insert(
                0,
                f"VERIFIED: {len(self.cells)} cells' ledgers intact; each of the "
                f"{self.stored_items:,} stored items is vouched for by its cell's ledger",
            )
        else:
            counts: dict[str, int] = {}
            for cell in self.cells:
                counts[cell.verdict] = counts.get(cell.verdict, 0) + 1
            states = ", ".join(
                f"{n} {verdict}" for verdict, n in counts.items() if verdict != "verified"
            )
            which = ", ".join(c.cell for c in damaged) or "none"
            lines.insert(
                0,
                f"NOT VERIFIED: cells {states or 'all verified'}; damaged cells: {which}; store "
                f"problems: {len(self.store)}",
            )
        return lines


def is_experiment_folder(folder: Path) -> bool:
    return folder.is_dir() and (folder / EXPERIMENT_FILE).is_file()


def audit_experiment(
    folder: Path,
    *,
    key_file: Path | None = None,
    public_keys: tuple[Path, ...] = (),
    trusted_file: Path | None = None,
) -> ExperimentAudit:
    for given in (key_file, trusted_file, *public_keys):
        if given is not None and given.resolve().is_relative_to(folder.resolve()):
            raise AuditUsageError(
                f"{given} lies inside the experiment folder under audit, so it proves nothing: "
                "use a key obtained independently"
            )
    cell_ids = _cell_ids(folder)
    store = _open_store(folder / STORE_FILE)
    cells: list[CellAudit] = []
    problems: list[str] = [] if isinstance(store, sqlite3.Connection) else [store]
    stored = 0
    try:
        for cell in cell_ids:
            found, vouched, seals = _audit_cell(folder, cell, key_file, public_keys, trusted_file)
            cells.append(found)
            if isinstance(store, sqlite3.Connection):
                count, said = _check_cell_rows(store, cell, vouched, seals)
                stored += count
                if count and found.verdict == "not run":
                    found.verdict = "missing"
                    found.lines.append(f"the store holds {count} items of it, but no run folder")
                problems += said
        if isinstance(store, sqlite3.Connection):
            problems += _strangers(store, set(cell_ids))
    finally:
        if isinstance(store, sqlite3.Connection):
            store.close()
    # as for one run: intact means every cell's ledger verified and complete
    intact = bool(cells) and all(c.verdict == "verified" for c in cells) and not problems
    return ExperimentAudit(intact, cells, problems, stored)


def _audit_cell(
    folder: Path,
    cell: str,
    key_file: Path | None,
    public_keys: tuple[Path, ...],
    trusted_file: Path | None,
) -> tuple[CellAudit, dict[str, dict[str, Any]], set[tuple[Any, Any]]]:
    """The cell's runs audited; the records their ledgers vouch for, by line digest; and
    the heads of their verified seals."""
    found = CellAudit(cell, "not run")
    vouched: dict[str, dict[str, Any]] = {}
    seals: set[tuple[Any, Any]] = set()
    for run in [folder / CELLS_FOLDER / cell, *_retries(folder / RETRIES_FOLDER / cell)]:
        if not (run / "ledger.jsonl").is_file():
            continue
        result = audit(run, key_file=key_file, public_keys=public_keys, trusted_file=trusted_file)
        found.folders.append(str(run.relative_to(folder)))
        _judge(found, run.relative_to(folder), result)
        other = _whose(run)
        if other != cell:  # a sound run of another cell (or none) put in this one's place
            found.verdict = "damaged"
            found.lines.append(
                f"{run.relative_to(folder)}: its manifest.json (bound by its ledger) is the run "
                f"of {printable(str(other))!r}, not of this cell"
            )
            continue
        digests, heads = _bound(result.verified)
        seals |= heads
        vouched |= _vouched_records(run / RESULTS, digests)
    return found, vouched, seals


def _whose(run: Path) -> str | None:
    """The cell whose run this folder's recorded request says it is."""
    try:
        cell = read_request(run).get("cell")
    except ResumeError:
        return None
    return cell if isinstance(cell, str) else None


def _vouched_records(results: Path, digests: set[str]) -> dict[str, dict[str, Any]]:
    """The records of results.jsonl whose lines a verified end entry bound."""
    found: dict[str, dict[str, Any]] = {}
    try:
        raw = read_regular(results)
    except OSError:
        return found
    for line in raw.split(b"\n"):
        digest = line_digest(line)
        if line and digest in digests:
            try:
                record = parse_json(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                found[digest] = record
    return found


def _open_store(path: Path) -> sqlite3.Connection | str:
    """The store, read-only (the audit never writes it), or what is wrong with it."""
    if not path.is_file():
        return f"no results store at {path}"
    try:
        # With no write-ahead log beside it, the file is the whole store: open it immutable,
        # so that not even SQLite's shared-memory file is created in the folder under audit.
        wal = path.with_name(path.name + "-wal")
        immutable = "&immutable=1" if not wal.exists() else ""
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro{immutable}", uri=True)
        db.execute("SELECT count(*) FROM items").fetchone()
    except sqlite3.Error as exc:
        return f"cannot read {path} as a govern results store: {exc}"
    return db


def _check_cell_rows(
    db: sqlite3.Connection,
    cell: str,
    vouched: dict[str, dict[str, Any]],
    seals: set[tuple[Any, Any]],
) -> tuple[int, list[str]]:
    """Each stored row of the cell must be, column for column, the record its ledger vouches
    for; each recorded head must be a verified seal of its ledgers."""
    problems: list[str] = []
    count = unvouched = altered = 0
    try:
        rows = db.execute(f"SELECT seed, {ITEM_COLUMNS} FROM items WHERE cell = ?", (cell,))
        for seed, *columns in rows:
            count += 1
            record = vouched.get(columns[13])
            if record is None:
                unvouched += 1
            elif list(columns_of(cell, seed, record)[:-1]) != columns:
                altered += 1
        for (text,) in db.execute("SELECT head FROM ledger_heads WHERE cell = ?", (cell,)):
            head = parse_json(text)
            if (head.get("tree_size"), head.get("root")) not in seals:
                problems.append(
                    f"{cell}: a recorded ledger head (tree size {head.get('tree_size')}) is not "
                    "a verified seal of its ledgers"
                )
    except (sqlite3.Error, ValueError, AttributeError, TypeError) as exc:
        return count, [f"{cell}: the store's rows cannot be read: {exc}"]
    if unvouched:
        problems.append(
            f"{cell}: {unvouched} stored items are not vouched for by its ledgers (their results "
            "lines were changed, or they were never run)"
        )
    if altered:
        problems.append(
            f"{cell}: {altered} stored items differ from the results lines their ledgers vouch "
            "for (a number in the store was changed)"
        )
    return count, problems


def _strangers(db: sqlite3.Connection, cells: set[str]) -> list[str]:
    try:
        stored = {cell for (cell,) in db.execute("SELECT DISTINCT cell FROM items")}
    except sqlite3.Error as exc:
        return [f"the store's rows cannot be read: {exc}"]
    return [
        f"items are stored for {c!r}, a cell the experiment lacks" for c in sorted(stored - cells)
    ]


class ExperimentDamaged(Exception):
    """experiment.json cannot say which cells there are: the audit fails (exit 1)."""


def _cell_ids(folder: Path) -> list[str]:
    path = folder / EXPERIMENT_FILE
    try:
        data = read_regular(path, MAX_DESCRIPTION_BYTES)
    except OSError as exc:
        raise AuditUsageError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_DESCRIPTION_BYTES:
        raise ExperimentDamaged(f"{path} is too large to be an experiment's")
    try:
        cells = parse_json(data)["cells"]
        ids = [cell["id"] for cell in cells]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ExperimentDamaged(
            f"{path} is damaged: it does not list the experiment's cells"
        ) from None
    bad = [i for i in ids if not isinstance(i, str) or not CELL_ID.match(i)]
    if bad:
        shown = ", ".join(printable(repr(b)) for b in bad[:3])
        raise ExperimentDamaged(f"{path} names cells that are not cell ids: {shown}")
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ExperimentDamaged(f"{path} lists cells twice: {', '.join(twice[:3])}")
    if not ids:
        raise ExperimentDamaged(f"{path} lists no cells")
    return ids


def _retries(base: Path) -> list[Path]:
    if not base.is_dir():
        return []
    return sorted((p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def _judge(found: CellAudit, run: Path, result: AuditResult) -> None:
    ledger = result.report.get("ledger", {})
    files = result.report.get("files", {})
    damaged = ledger.get("damage") is not None and ledger["damage"].get("kind") not in (
        "torn",
        "unsealed",
    )
    # a draw by lot or by an overseer that the run's seed does not give is damage too
    draws = [result.report.get(section, {}) for section in ("lots", "oversight")]
    forged = any(section.get("problems") for section in draws)
    if damaged or forged or files.get("problems") or not ledger.get("verified", True):
        verdict = "damaged"
    elif result.intact:
        verdict = "verified"
    else:
        verdict = "incomplete"
    rank = {"not run": 0, "verified": 1, "incomplete": 2, "damaged": 3}
    if rank[verdict] > rank[found.verdict]:
        found.verdict = verdict
    found.lines += [f"{run}: {line}" for line in result.text if line]


def _bound(entries: list[bytes]) -> tuple[set[str], set[tuple[int, str]]]:
    """The results digests the verified end entries bound, and the verified seals' heads."""
    digests: set[str] = set()
    heads: set[tuple[int, str]] = set()
    for line in entries:
        entry = parse(line) or {}
        body = entry.get("body") or {}
        if entry.get("kind") == "item" and body.get("event") == "end":
            if isinstance(body.get("result_sha256"), str):
                digests.add(body["result_sha256"])
        elif is_seal(entry):
            heads.add((body.get("tree_size"), body.get("root")))
    return digests, heads
