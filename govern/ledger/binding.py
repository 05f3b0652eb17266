"""Bind a run folder's files to its ledger, and check the binding.

Each finished item's ``item`` end entry carries the SHA-256 of its line in
results.jsonl, and the run closes with a ``files`` entry holding the SHA-256
of every file it wrote, just before the closing seal. So an edited result, a
replaced summary or another run's ledger copied into the folder fails the
audit, with the HMAC key or the seal's public key alike (the entries are
covered by the signed Merkle root).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govern.files import digest_regular, read_regular
from govern.ledger.format import parse

RESULTS = "results.jsonl"
EVENTS = "events.jsonl"
BOUND_FILES = ("manifest.json", "graph.mmd", RESULTS, EVENTS, "summary.json")
LEDGER_FILES = ("ledger.jsonl", "ledger.head")
_BINDING_KINDS = frozenset((b"item", b"files", b"resume"))


def line_digest(line: bytes) -> str:
    """The digest of one results line, without its newline."""
    return hashlib.sha256(line.removesuffix(b"\n")).hexdigest()


def folder_digests(folder: Path) -> dict[str, dict[str, Any]]:
    """The digest and size of every bound file the folder holds."""
    found: dict[str, dict[str, Any]] = {}
    for name in BOUND_FILES:
        path = folder / name
        if path.is_file():
            digest, size = digest_regular(path)
            found[name] = {"sha256": digest, "bytes": size}
    return found


@dataclass
class Binding:
    """What the check found: problems fail the audit, notes do not."""

    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "problems": self.problems, "notes": self.notes}


def check_binding(folder: Path, lines: list[bytes], kinds: list[bytes], *, closed: bool) -> Binding:
    """Compare the folder's files with the digests in the verified entries ``lines`` (whose
    kinds the verifier read)."""
    binding = Binding()
    recorded: dict[str, str] = {}  # item -> the digest of its result, as last recorded
    bound: dict[str, dict[str, Any]] | None = None
    for line, kind_of_line in zip(lines, kinds, strict=False):
        if kind_of_line not in _BINDING_KINDS:
            continue  # most entries are turns and transitions: skip their JSON parse
        entry = parse(line) or {}
        kind, body = entry.get("kind"), entry.get("body") or {}
        if kind == "item" and body.get("event") == "end" and body.get("result_sha256"):
            recorded[str(body.get("item"))] = body["result_sha256"]
        elif kind == "files":
            bound = body.get("files", {})
        elif kind == "resume":
            bound = None  # the files changed since: only a later 'files' entry counts
    _check_results(folder / RESULTS, recorded, binding.problems if closed else binding.notes)
    if bound is None:
        (binding.problems if closed else binding.notes).append(
            "the ledger binds no files after its last session (no 'files' entry)"
        )
        return binding
    found = folder_digests(folder)
    for name, digest in bound.items():
        if name not in found:
            binding.problems.append(f"{name} is bound by the ledger but missing from the folder")
        elif found[name]["sha256"] != digest.get("sha256"):
            binding.problems.append(f"{name} is not the file the ledger bound: it was changed")
        else:
            binding.checked.append(name)
    for name in sorted(set(found) - set(bound)):
        binding.problems.append(f"{name} was added after the ledger bound the folder")
    for path in sorted(folder.iterdir()):
        if path.name not in BOUND_FILES and path.name not in LEDGER_FILES:
            binding.notes.append(f"{path.name} is not bound to the ledger")
    return binding


def _check_results(path: Path, recorded: dict[str, str], found: list[str]) -> None:
    """Each line is the result the ledger last recorded for its item, each item once."""
    if not path.is_file():
        return
    by_digest = {digest: item for item, digest in recorded.items()}
    seen: set[str] = set()
    lines = read_regular(path).split(b"\n")
    for number, line in enumerate(lines[:-1] if lines[-1] == b"" else lines, start=1):
        item = by_digest.get(line_digest(line))
        if item is None:
            found.append(
                f"{RESULTS} line {number} is not a result the ledger recorded "
                "(edited, added, or from another run)"
            )
            return
        if item in seen:
            found.append(f"{RESULTS} line {number} repeats the result of {item}")
            return
        seen.add(item)
