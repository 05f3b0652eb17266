"""How one entry is written and read: the byte layout every writer and verifier shares.

A line is the canonical JSON (sorted keys, no spaces, UTF-8) of the entry
without its MAC, with ``,"mac":"<64 hex>"}`` put in place of the closing brace.
The MAC covers exactly those canonical bytes and the line needs no
re-encoding to check; the Merkle leaf is the whole line.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from typing import Any

from govern.spec.digest import canonical_json

GENESIS = "0" * 64  # the 'prev' of entry 0
_MAC_OPEN = b',"mac":"'
_SUFFIX = len(_MAC_OPEN) + 64 + 2


class Mac:
    """HMAC-SHA256 with its key's pads hashed once: half the cost of hmac.digest per entry."""

    def __init__(self, secret: bytes) -> None:
        key = hashlib.sha256(secret).digest() if len(secret) > 64 else secret
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def hexdigest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest().encode()


@functools.lru_cache(maxsize=16)
def mac_for(secret: bytes) -> Mac:
    return Mac(secret)


def encode(entry: dict[str, Any], secret: bytes) -> tuple[bytes, str]:
    """The line (without newline) and its MAC."""
    prefix = canonical_json(entry).encode()
    mac = mac_for(secret).hexdigest(prefix)
    return prefix[:-1] + _MAC_OPEN + mac + b'"}', mac.decode()


_HEX64 = re.compile(rb"[0-9a-f]{64}")


def split(line: bytes) -> tuple[bytes, str] | None:
    """(the MAC'd canonical bytes, the MAC) or None when the line is not in this layout."""
    if len(line) < _SUFFIX + 2 or line[-_SUFFIX : -_SUFFIX + len(_MAC_OPEN)] != _MAC_OPEN:
        return None
    mac = line[-66:-2]
    if not line.endswith(b'"}') or not _HEX64.fullmatch(mac):
        return None
    return line[:-_SUFFIX] + b"}", mac.decode("ascii")


def mac_matches(prefix: bytes, mac: bytes | str, secret: bytes) -> bool:
    expected = mac_for(secret).hexdigest(prefix)
    return hmac.compare_digest(expected, mac if isinstance(mac, bytes) else mac.encode())


_decode = json.JSONDecoder().decode  # skips json.loads' encoding sniffing: lines are UTF-8


def parse(line: bytes) -> dict[str, Any] | None:
    try:
        entry = _decode(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return entry if isinstance(entry, dict) else None


CLOSING_REASONS = ("complete", "interrupted", "halted", "crashed")


def head_statement(run: str, head: dict[str, Any]) -> bytes:
    """What a seal's Ed25519 signature covers: the tree, its head, and whether and why the
    ledger was closed there, so a ledger cut at a periodic seal cannot pass as closed.
    Takes a seal body or a head kept elsewhere; raises KeyError when a field is missing."""
    return canonical_json(
        {
            "closing": bool(head["closing"]),
            "head_mac": head["head_mac"],
            "reason": head["reason"],
            "root": head["root"],
            "run": run,
            "tree_size": head["tree_size"],
        }
    ).encode()
