"""What an earlier, unfinished run left in its folder, as far as its ledger vouches for it.

An item counts as finished only when its line in results.jsonl is the one its
``item`` end entry recorded; anything else (a torn line, a line written just
before a kill, an item in flight) is dropped and redone. The Controller's
state is taken from the last finished item's end entry, so a governed run
with ``--concurrency 1`` resumes exactly where it stood.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govern.files import parse_json, read_regular, write_atomic
from govern.governance.steps import VisitKey, visits_of
from govern.ledger.binding import RESULTS, line_digest
from govern.ledger.format import parse
from govern.ledger.keys import Keyring
from govern.ledger.verifier import verify

REQUEST_FILE = "manifest.json"  # holds the request the run was started with


class ResumeError(Exception):
    """The folder cannot be resumed; the message says why and what to do."""


class LedgerDamaged(ResumeError):
    """The folder's ledger fails verification: a damaged ledger, not a misuse."""


class AlreadyComplete(Exception):
    """The run in this folder finished; there is nothing to resume."""

    def __init__(self, folder: Path) -> None:
        super().__init__(f"the run in {folder} is complete; nothing to resume")


@dataclass
class PreviousRun:
    folder: Path
    request: dict[str, Any]
    header: dict[str, Any] | None = None  # None: killed before the ledger's first entry
    finished: dict[str, dict[str, Any]] = field(default_factory=dict)  # item id -> record
    lines: list[bytes] = field(default_factory=list)  # their results lines, in file order
    dropped: int = 0  # results lines not vouched for by the ledger
    snapshot: dict[str, Any] | None = None  # the Controller at the last finished item
    ended_as: str = "unsealed"  # how the previous session ended
    complete: bool = False  # sealed as complete (read with complete_ok)
    # an unfinished item's decomposed steps on the ledger: each stage visit's latest chain of
    # "steps" entries, as written (lines: parsed again only when replayed)
    steps: dict[VisitKey, list[bytes]] = field(default_factory=dict)
    run_id: str = ""  # the ledger's run id
    # item -> the sanctions the ledger recorded while it ran: the tracer's sanction events
    sanctions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def is_run_folder(folder: Path) -> bool:
    return (folder / REQUEST_FILE).is_file()


# The recorded request's fields and the types they must have.
_OPTIONAL_TEXT = ("cell", "task", "model", "data", "api_base")
_OPTIONAL_COUNTS = {"limit": 1, "seed": 0, "concurrency": 1}  # field -> its least value


def read_request(folder: Path) -> dict[str, Any]:
    """The request the run in ``folder`` started with, checked field by field."""
    try:
        recorded = parse_json(read_regular(folder / REQUEST_FILE, 1 << 24))
        request = recorded["request"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ResumeError(
            f"{folder} is not a run folder made by `govern run` (no readable {REQUEST_FILE})"
        ) from None
    problem = _request_problem(request)
    if problem:
        raise ResumeError(f"{folder / REQUEST_FILE} is damaged: {problem}")
    return request


def _request_problem(request: Any) -> str | None:
    if not isinstance(request, dict):
        return "'request' is not a mapping"
    if not isinstance(request.get("manifest"), str):
        return "'request.manifest' is not a path"
    for name in _OPTIONAL_TEXT:
        if request.get(name) is not None and not isinstance(request[name], str):
            return f"'request.{name}' is not text"
    for name, least in _OPTIONAL_COUNTS.items():
        value = request.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < least
        ):
            return f"'request.{name}' is not a whole number of at least {least}"
    items = request.get("items")
    if items is not None and not (
        isinstance(items, list) and all(isinstance(item, str) for item in items)
    ):
        return "'request.items' is not a list of item ids"
    roles = request.get("role_models")
    if not isinstance(roles, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in roles.items()
    ):
        return "'request.role_models' is not a mapping of role to model"
    return None


def read_previous(folder: Path, keyring: Keyring) -> PreviousRun:
    """The finished work of the run in ``folder``; raises when it cannot or need not resume."""
    return read_run(folder, keyring, complete_ok=False)


def read_run(folder: Path, keyring: Keyring, *, complete_ok: bool) -> PreviousRun:
    """The results of the run in ``folder`` that its ledger vouches for; a complete run
    raises `AlreadyComplete` unless ``complete_ok`` (an experiment reads its cells' results)."""
    previous = PreviousRun(folder, read_request(folder))
    ledger = folder / "ledger.jsonl"
    if not ledger.is_file() or ledger.stat().st_size == 0:
        return previous  # nothing was recorded, so nothing counts as finished
    try:
        report = verify(ledger, keyring=keyring)
        results = read_regular(folder / RESULTS) if (folder / RESULTS).exists() else b""
    except OSError as exc:
        raise ResumeError(
            f"cannot read the run in {folder}: {exc.filename}: {exc.strerror}"
        ) from None
    if report.complete and not complete_ok:
        raise AlreadyComplete(folder)
    if report.damage is not None and report.damage.kind not in ("torn", "unsealed"):
        raise LedgerDamaged(
            f"the ledger in {folder} is damaged, so it cannot go on: {report.summary()}"
        )
    previous.complete = report.complete
    previous.ended_as = report.closed_as or (report.damage.kind if report.damage else "unsealed")
    ends: dict[str, dict[str, Any]] = {}
    step_entries: list[tuple[str, dict[str, Any], bytes]] = []
    for line in report.lines[: report.entries]:
        entry = parse(line) or {}
        body = entry.get("body") or {}
        if entry.get("kind") == "header":
            previous.header = body
            previous.run_id = str(entry.get("run", ""))
        elif entry.get("kind") == "state" and body.get("sanction") is not None:
            previous.sanctions.setdefault(str(body.get("item")), []).append(
                {"seq": entry["seq"], "at": entry["ts"] / 1e6, "agent": body["agent"],
                 "rule": body.get("rule")}
            )  # fmt: skip
        elif entry.get("kind") == "item" and body.get("event") == "end":
            ends[body["item"]] = {**body, "seq": entry["seq"]}
        elif entry.get("kind") in ("steps", "resume"):
            step_entries.append((entry["kind"], body, line))
    _keep_vouched_results(previous, ends, results)
    previous.steps = {
        key: lines for key, lines in visits_of(step_entries) if key[0] not in previous.finished
    }  # a visit's later chain replaces an earlier one
    return previous


def _keep_vouched_results(
    previous: PreviousRun, ends: dict[str, dict[str, Any]], raw: bytes
) -> None:
    last_end: dict[str, Any] | None = None
    for line in raw.split(b"\n"):
        if not line:
            continue
        record = _record(line)
        end = ends.get(record.get("id")) if record else None
        if (
            end is None
            or end.get("result_sha256") != line_digest(line)
            or record["id"] in previous.finished  # a copy of a line already kept
        ):
            previous.dropped += 1
            continue
        previous.finished[record["id"]] = record
        previous.lines.append(line)
        if last_end is None or end["seq"] > last_end["seq"]:
            last_end = end
    previous.snapshot = (last_end or {}).get("governance")


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        record = parse_json(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("id"), str) else None


def rewrite_results(previous: PreviousRun) -> None:
    """Keep only the vouched-for lines, atomically: a kill here leaves the old file whole."""
    lines = b"".join(line + b"\n" for line in previous.lines)
    write_atomic(previous.folder / RESULTS, lines, fsync=True)
