"""Check a ledger and name the first damage: edited, deleted, reordered, truncated, spliced,
replayed, wrong key, bad seal; or, after a crash, a torn last line or a missing closing seal.

With the HMAC key every entry is checked. With trusted seal public keys alone,
the signed Merkle roots are checked against the entries they cover; entries
after the last seal cannot be checked that way, and the report says so. A seal
signs whether the ledger closes there and why, so a ledger cut at a periodic
seal reads as unclosed, never as closed.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from govern.files import parse_json, read_regular
from govern.ledger.format import GENESIS, head_statement, mac_matches, parse
from govern.ledger.keys import Keyring, LedgerKeyError, load_public_key
from govern.ledger.merkle import MerkleFrontier, leaf_hash
from govern.ledger.writer import head_path

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
    closed_as: str | None = None  # the reason of the closing seal that ends the ledger
    seals: int = 0
    signers: dict[str, str] = field(default_factory=dict)  # seal public keys -> trust
    lines: list[bytes] = field(default_factory=list, repr=False)  # as read, for later checks
    kinds: list[bytes] = field(default_factory=list, repr=False)  # of the intact lines
    damage: Damage | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return self.damage is None

    @property
    def complete(self) -> bool:
        """Intact and closed by a seal that says the run finished."""
        return self.intact and self.closed_as == "complete"

    def summary(self) -> str:
        if self.damage is None:
            closed = (
                "closed by a seal: the run is complete"
                if self.complete
                else f"closed by a seal as {self.closed_as}: the run is not complete"
            )
            checked = f"{self.entries} entries, {self.seals} seals checked ({self.mode})"
            return f"intact: {checked}, {closed}"
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
            "closed_as": self.closed_as,
            "complete": self.complete,
            "seals": self.seals,
            "signers": self.signers,
            "notes": self.notes,
            "damage": None if self.damage is None else self.damage.__dict__,
            "summary": self.summary(),
        }


class _Stop(Exception):
    def __init__(self, damage: Damage) -> None:
        self.damage = damage


MAX_LEDGER_BYTES = 1 << 34  # 16 GiB: some 30 million entries, read whole into memory


def read_lines(path: Path) -> tuple[list[bytes], bytes]:
    """Complete lines (split at LF only: a CR stays part of its line, as written), and the
    bytes of a torn last line (empty when there is none)."""
    if path.stat().st_size > MAX_LEDGER_BYTES:
        raise OSError(
            errno.EFBIG,
            f"larger than {MAX_LEDGER_BYTES >> 30} GiB, more than govern audits",
            str(path),
        )
    lines = read_regular(path).split(b"\n")
    torn = lines.pop()
    return lines, torn


def verify(
    path: Path, keyring: Keyring | None = None, trusted: dict[str, str] | None = None
) -> Report:
    """Check with the HMAC keys when given, else with trusted seal public keys alone
    (``trusted`` maps a public key in hex to a name for it)."""
    if keyring is None and not trusted:
        raise ValueError("give a keyring or trusted public keys")
    lines, torn = read_lines(path)
    report = Report(str(path), "hmac" if keyring else "public key", lines=lines)
    checker = _Chain(lines, keyring, trusted or {}, report)
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
        _check_head_file(path, lines, report)
        if report.closed_as is None:
            raise _Stop(
                Damage(
                    "unsealed",
                    None,
                    "the ledger has no closing seal: the writer crashed or was killed, "
                    "or is still writing (cut at a periodic seal reads the same)",
                )
            )
    except _Stop as stop:
        report.damage = stop.damage
    return report


# An entry line: the canonical bytes (which end with the top-level fields after 'body',
# in sorted order) with the MAC set in place of the closing brace.
_LINE_TAIL = re.compile(
    rb',"key":"([0-9a-f]{1,64})","kind":"([a-z_]{1,32})","prev":"([0-9a-f]{64})",'
    rb'"run":"([^"\\]{0,200})","seq":(0|[1-9][0-9]{0,18}),"ts":-?[0-9]{1,20}'
    rb',"mac":"([0-9a-f]{64})"}\Z'
)


# (key id, kind, prev, run, seq, mac, the MAC'd canonical bytes): a plain tuple, because
# this is built once per line and a named tuple costs more than the whole MAC check.
_Line = tuple[str, bytes, bytes, bytes, int, bytes, bytes]
_TAIL_START = b',"key":"'


def _read(line: bytes) -> _Line | None:
    """The fields the chain needs, read from the end of the line without a JSON parse.

    Sound because the MAC covers exactly the canonical bytes: a line whose tail was
    altered fails its MAC, and a well-formed line always ends with these fields.
    """
    match = _LINE_TAIL.match(line, line.rfind(_TAIL_START))
    if match is None or not line.startswith(b'{"actor":'):
        return None
    key, kind, prev, run, seq, mac = match.groups()
    return key.decode(), kind, prev, run, int(seq), mac, line[: -(len(mac) + 10)] + b"}"


def _with_key(prefix: bytes, old: str, new: str) -> bytes:
    """The canonical bytes with the top-level key id ``old`` replaced by ``new``."""
    head, found, tail = prefix.rpartition(b',"key":"' + old.encode("latin-1") + b'"')
    return head + b',"key":"' + new.encode() + b'"' + tail if found else prefix


class _Chain:
    def __init__(
        self,
        lines: list[bytes],
        keyring: Keyring | None,
        trusted: dict[str, str],
        report: Report,
    ) -> None:
        self.lines = lines
        self.keyring = keyring
        self.trusted = {**(keyring.trusted() if keyring else {}), **trusted}
        self.report = report
        self.frontier = MerkleFrontier()
        self.prev = GENESIS.encode()
        self.key: str | None = None
        self._run = b""

    def walk(self) -> None:
        for index, raw in enumerate(self.lines):
            line = _read(raw)
            if line is None or (line[1] == b"seal" and parse(raw) is None):
                raise _Stop(Damage("edited", index, "the entry is not a well-formed ledger line"))
            if self.keyring is not None:
                self._check_mac(index, line)
                self._check_place(index, line)
            elif index == 0:
                self.report.run = line[3].decode("latin-1")
            if self.report.closed_as == "complete":  # govern never writes past a complete run
                raise _Stop(
                    Damage(
                        "spliced", index, "entries follow the seal that closed the run as complete"
                    )
                )
            self.report.closed_as = None
            if line[1] == b"seal":
                seal = parse(raw)
                self._check_seal(index, seal)
                if seal["body"].get("closing") is True:
                    self.report.closed_as = str(seal["body"].get("reason"))
            self.frontier.append(leaf_hash(raw))
            self.prev = line[5]
            self.report.kinds.append(line[1])
            self.report.entries = index + 1  # kept current: a _Stop leaves the count intact
        if self.keyring is None and self.lines and self.report.closed_as is None:
            self.report.notes.append(
                "entries after the last seal cannot be checked without the HMAC key"
            )

    def _check_mac(self, index: int, line: _Line) -> None:
        key, kind, _, _, _, mac, prefix = line
        keys = self.keyring.keys
        starts_segment = index == 0 or (key != self.key and kind == b"segment")
        if starts_segment and key in keys:
            self.key = key
        elif starts_segment:
            # An unknown key id: the ledger's key was not given, unless a given key signs
            # the line once its own id is put back (then only the key id was changed).
            if any(mac_matches(_with_key(prefix, key, k.id), mac, k.secret) for k in keys.values()):
                raise _Stop(Damage("edited", index, "its key id was changed"))
            raise _Stop(
                Damage(
                    "wrong key",
                    index,
                    f"written with key {key}; the key given is {', '.join(keys)}",
                )
            )
        # The key id is MAC'd with the rest, so the segment's key decides.
        if not mac_matches(prefix, mac, keys[self.key].secret):
            raise _Stop(Damage("edited", index, "its MAC does not match its content"))
        if key != self.key:
            raise _Stop(
                Damage(
                    "spliced", index, f"written with key {key} inside a segment of key {self.key}"
                )
            )

    def _check_place(self, index: int, line: _Line) -> None:
        _, kind, prev, run, seq, mac, _ = line
        if index == 0:
            if kind != b"header" or seq != 0:
                raise _Stop(Damage("deleted", 0, "the ledger does not start with its header"))
            self.report.run = run.decode("latin-1")
            self._run = run
        if run != self._run:
            raise _Stop(
                Damage(
                    "spliced",
                    index,
                    f"it belongs to run {run.decode('latin-1')}, not {self.report.run}",
                )
            )
        if seq < index:
            original = _read(self.lines[seq])
            kind_of = "replayed" if original and original[5] == mac else "reordered"
            raise _Stop(Damage(kind_of, index, f"entry {seq} appears again at position {index}"))
        if seq > index:
            later = any((p := _read(raw)) and p[4] == index for raw in self.lines[index + 1 :])
            detail = (
                f"entry {index} comes later in the file"
                if later
                else f"entries {index} to {seq - 1} are missing"
            )
            raise _Stop(Damage("reordered" if later else "deleted", index, detail))
        if prev != self.prev:
            raise _Stop(
                Damage(
                    "spliced",
                    index,
                    "it does not follow the entry before it (its 'prev' is another entry's MAC)",
                )
            )

    def _check_seal(self, index: int, entry: dict) -> None:
        body = entry.get("body")
        if not isinstance(body, dict):
            raise _Stop(Damage("edited", index, "the seal's body is not a mapping"))
        root = self.frontier.root().hex()
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
        if body.get("head_mac") != self.prev.decode():
            raise _Stop(Damage("bad seal", index, "it seals a different head"))
        public = body.get("public_key")
        trust = self.trusted.get(public) if isinstance(public, str) else None
        if trust is None and (self.keyring is None or self.trusted):
            raise _Stop(
                Damage(
                    "wrong key",
                    index,
                    f"its seal is signed by {str(public)[:16]}..., which is not a trusted key",
                )
            )
        try:
            signature = bytes.fromhex(body["signature"])
            load_public_key(public).verify(signature, head_statement(entry["run"], body))
        except (InvalidSignature, KeyError, ValueError, TypeError, AttributeError, LedgerKeyError):
            raise _Stop(Damage("bad seal", index, "its signature does not verify")) from None
        # An HMAC key without any seal key to trust (GOVERN_LEDGER_KEY alone) still proves
        # the entries, seals included: their MACs cover the public key they name.
        if trust is None and public not in self.report.signers:
            self.report.notes.append(
                f"seals are signed by {public[:16]}..., a key the HMAC key does not pin: only "
                "the HMAC key vouches for them; give --public-key to check who signed"
            )
        self.report.signers[public] = trust or "not pinned (covered by the HMAC key)"
        self.report.seals += 1


def _check_head_file(path: Path, lines: list[bytes], report: Report) -> None:
    """ledger.head holds the latest seal: the file must still contain it, unchanged."""
    head_file = head_path(path)
    if not head_file.exists():
        report.notes.append(f"no {head_file.name} beside the ledger to compare with")
        return
    try:
        head = parse_json(read_regular(head_file, 1 << 20))
        seq = head["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise TypeError("seq")
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        raise _Stop(Damage("bad seal", None, f"{head_file.name} is damaged")) from None
    if seq >= len(lines):
        kind = "bad seal" if seq == len(lines) else "truncated"
        detail = (
            f"the seal at entry {seq} named in {head_file.name} is missing"
            if kind == "bad seal"
            else f"{head_file.name} seals entry {seq} but the ledger ends at entry {len(lines) - 1}"
        )
        raise _Stop(Damage(kind, len(lines), detail))
    sealed = parse(lines[seq]) if seq >= 0 else None
    body = sealed.get("body") if sealed else None
    if (
        not isinstance(body, dict)
        or sealed.get("kind") != "seal"
        or any(body.get(k) != head.get(k) for k in ("root", "signature", "tree_size"))
    ):
        raise _Stop(Damage("bad seal", seq, f"entry {seq} is not the seal {head_file.name} names"))
