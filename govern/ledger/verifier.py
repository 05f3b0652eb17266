"""Check a ledger and name the first damage: edited, deleted, reordered, truncated, spliced,
replayed, wrong key, bad seal; or, after a crash, a torn last line or a missing closing seal.

With the HMAC key every entry is checked. With only the seals' public key, the
signed Merkle roots are checked against the entries they cover; entries after
the last seal cannot be checked that way, and the report says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from govern.ledger.format import GENESIS, mac_matches, parse, seal_statement, split
from govern.ledger.keys import Keyring, load_public_key, public_key_hex, signing_key
from govern.ledger.merkle import MerkleFrontier, leaf_hash
from govern.ledger.writer import head_path

FIELDS = frozenset({"actor", "body", "key", "kind", "mac", "prev", "run", "seq", "ts"})
TAMPERING = (
    "edited",
    "deleted",
    "reordered",
    "truncated",
    "spliced",
    "replayed",
    "wrong key",
    "bad seal",
)


@dataclass(frozen=True)
class Damage:
    kind: str  # one of TAMPERING, or 'torn' / 'unsealed' after a crash
    seq: int | None  # the first bad entry (its position in the file)
    detail: str


@dataclass
class Report:
    path: str
    mode: str  # 'hmac' or 'public key'
    entries: int = 0  # entries read intact, from the start
    run: str | None = None
    sealed: bool = False  # ends with a closing seal
    seals: int = 0
    damage: Damage | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return self.damage is None

    def summary(self) -> str:
        if self.damage is None:
            return (
                f"intact: {self.entries} entries, {self.seals} seals checked "
                f"({self.mode}), closed by a seal"
            )
        last = f"entry {self.entries - 1}" if self.entries else "no entry"
        if self.damage.kind in ("torn", "unsealed"):
            return f"unsealed, intact up to {last}: {self.damage.detail}"
        where = "" if self.damage.seq is None else f" at entry {self.damage.seq}"
        return f"{self.damage.kind}{where}: {self.damage.detail}; intact up to {last}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "mode": self.mode,
            "intact": self.intact,
            "entries": self.entries,
            "run": self.run,
            "sealed": self.sealed,
            "seals": self.seals,
            "notes": self.notes,
            "damage": None if self.damage is None else self.damage.__dict__,
            "summary": self.summary(),
        }


class _Stop(Exception):
    def __init__(self, damage: Damage) -> None:
        self.damage = damage


def read_lines(path: Path) -> tuple[list[bytes], bytes]:
    """Complete lines, and the bytes of a torn last line (empty when there is none)."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), data[end:]


def verify(
    path: Path, keyring: Keyring | None = None, public_key: Ed25519PublicKey | None = None
) -> Report:
    """Check with the HMAC keys when given, else with the seals' public key alone."""
    if keyring is None and public_key is None:
        raise ValueError("give a keyring or a public key")
    lines, torn = read_lines(path)
    report = Report(str(path), "hmac" if keyring else "public key")
    checker = _Chain(lines, keyring, public_key, report)
    try:
        checker.walk()
        if torn:
            raise _Stop(
                Damage(
                    "torn",
                    len(lines),
                    f"the last line is incomplete ({len(torn)} "
                    "bytes): the writer was probably killed",
                )
            )
        _check_head(path, lines, report)
        if not report.sealed:
            raise _Stop(
                Damage(
                    "unsealed",
                    None,
                    "the ledger has no closing seal: the run was cut short or is still writing",
                )
            )
    except _Stop as stop:
        report.damage = stop.damage
    return report


class _Chain:
    def __init__(
        self,
        lines: list[bytes],
        keyring: Keyring | None,
        public_key: Ed25519PublicKey | None,
        report: Report,
    ) -> None:
        self.lines = lines
        self.keyring = keyring
        self.public_key = public_key
        self.report = report
        self.frontier = MerkleFrontier()
        self.prev = GENESIS
        self.key: str | None = None

    def walk(self) -> None:
        for index, line in enumerate(self.lines):
            entry = parse(line)
            parts = split(line)
            if entry is None or parts is None or not entry.keys() >= FIELDS:
                raise _Stop(Damage("edited", index, "the entry is not a well-formed ledger line"))
            if self.keyring is not None:
                self._check_mac(index, entry, *parts)
                self._check_place(index, entry)
            elif index == 0:
                self.report.run = entry["run"]
            if entry["kind"] == "seal":
                self._check_seal(index, entry)
            self.frontier.append(leaf_hash(line))
            self.prev = entry["mac"]
            self.report.entries = index + 1  # kept current: a _Stop leaves the count intact
        last = parse(self.lines[-1]) if self.lines else None
        self.report.sealed = bool(last and last["kind"] == "seal" and last["body"].get("closing"))
        if self.keyring is None and self.lines and not self.report.sealed:
            self.report.notes.append(
                "entries after the last seal cannot be checked without the HMAC key"
            )

    def _check_mac(self, index: int, entry: dict, prefix: bytes, mac: str) -> None:
        keys = self.keyring.keys
        key = entry["key"]
        if index == 0 or (key != self.key and entry["kind"] == "segment"):
            if key not in keys:
                raise _Stop(
                    Damage(
                        "wrong key",
                        index,
                        f"written with key {key}; the key given is {', '.join(keys)}",
                    )
                )
            self.key = key
        elif key != self.key:
            raise _Stop(
                Damage(
                    "spliced", index, f"written with key {key} inside a segment of key {self.key}"
                )
            )
        if not mac_matches(prefix, mac, keys[key].secret):
            raise _Stop(Damage("edited", index, "its MAC does not match its content"))

    def _check_place(self, index: int, entry: dict) -> None:
        if index == 0:
            if entry["kind"] != "header" or entry["seq"] != 0:
                raise _Stop(Damage("deleted", 0, "the ledger does not start with its header"))
            self.report.run = entry["run"]
        if entry["run"] != self.report.run:
            raise _Stop(
                Damage("spliced", index, f"it belongs to run {entry['run']}, not {self.report.run}")
            )
        seq = entry["seq"]
        if seq < index:
            original = parse(self.lines[seq]) or {}
            kind = "replayed" if original.get("mac") == entry["mac"] else "reordered"
            raise _Stop(Damage(kind, index, f"entry {seq} appears again at position {index}"))
        if seq > index:
            later = any(
                (p := parse(line)) and p.get("seq") == index for line in self.lines[index + 1 :]
            )
            kind = "reordered" if later else "deleted"
            detail = (
                f"entry {index} comes later in the file"
                if later
                else f"entries {index} to {seq - 1} are missing"
            )
            raise _Stop(Damage(kind, index, detail))
        if entry["prev"] != self.prev:
            raise _Stop(
                Damage(
                    "spliced",
                    index,
                    "it does not follow the entry before it (its 'prev' is another entry's MAC)",
                )
            )

    def _check_seal(self, index: int, entry: dict) -> None:
        body = entry["body"]
        root = self.frontier.root().hex()
        expected_key = self._seal_key(body)
        if body.get("tree_size") != index or body.get("root") != root:
            raise _Stop(
                Damage(
                    "bad seal",
                    index,
                    f"the signed root does not match entries 0 to "
                    f"{index - 1}: one of them was changed, "
                    "removed, added or moved",
                )
            )
        if self.keyring is not None and body.get("head_mac") != self.prev:
            raise _Stop(Damage("bad seal", index, "it seals a different head"))
        statement = seal_statement(entry["run"], index, root, body.get("head_mac", ""))
        try:
            expected_key.verify(bytes.fromhex(body.get("signature", "")), statement)
        except (InvalidSignature, ValueError):
            raise _Stop(Damage("bad seal", index, "its signature does not verify")) from None
        self.report.seals += 1

    def _seal_key(self, body: dict) -> Ed25519PublicKey:
        if self.public_key is not None:
            given = public_key_hex(self.public_key)
            if body.get("public_key") != given:
                raise _Stop(
                    Damage("bad seal", None, "signed with another public key than the one given")
                )
            return self.public_key
        own = signing_key(self.keyring.keys[self.key]).public_key()
        if body.get("public_key") != public_key_hex(own):
            raise _Stop(Damage("bad seal", None, "its public key is not the ledger key's"))
        return own


def _check_head(path: Path, lines: list[bytes], report: Report) -> None:
    """ledger.head holds the latest seal: the file must still contain it, unchanged."""
    head_file = head_path(path)
    if not head_file.exists():
        report.notes.append(f"no {head_file.name} beside the ledger to compare with")
        return
    try:
        head = json.loads(head_file.read_text())
        seq = int(head["seq"])
    except (ValueError, KeyError, TypeError):
        raise _Stop(Damage("bad seal", None, f"{head_file.name} is damaged")) from None
    if seq >= len(lines):
        kind = "bad seal" if seq == len(lines) else "truncated"
        detail = (
            f"the seal at entry {seq} named in {head_file.name} is missing"
            if kind == "bad seal"
            else f"{head_file.name} seals entry {seq} but the ledger ends at entry {len(lines) - 1}"
        )
        raise _Stop(Damage(kind, len(lines), detail))
    sealed = parse(lines[seq]) or {}
    body = sealed.get("body", {})
    if sealed.get("kind") != "seal" or any(
        body.get(k) != head.get(k) for k in ("root", "signature", "tree_size")
    ):
        raise _Stop(Damage("bad seal", seq, f"entry {seq} is not the seal {head_file.name} names"))


def public_key_from_file(path: Path) -> Ed25519PublicKey:
    return load_public_key(path.read_text())
