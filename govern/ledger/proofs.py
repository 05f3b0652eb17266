"""Signed heads and the two proofs of RFC 9162 over them.

A head is a seal as anyone can keep it: run, tree size, Merkle root, head MAC,
whether and why the ledger closed there, the public key and the signature.
An inclusion proof shows one entry is in a sealed tree; a consistency proof
shows a later tree extends an earlier one, so whoever kept an old head
detects truncation or rewriting, even by a holder of the keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from govern.files import parse_json, read_regular
from govern.ledger.format import head_statement, parse
from govern.ledger.keys import LedgerKeyError, load_public_key
from govern.ledger.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from govern.ledger.verifier import read_lines

HEAD_FIELDS = (
    "run",
    "seq",
    "tree_size",
    "root",
    "head_mac",
    "closing",
    "reason",
    "public_key",
    "signature",
)


class ProofError(Exception):
    """No proof can be made or checked; the message says why."""


def head_of(seal: dict[str, Any]) -> dict[str, Any]:
    """The head a seal entry publishes."""
    return {"run": seal["run"], "seq": seal["seq"], **seal["body"]}


def head_problem(head: Any) -> str | None:
    """What makes ``head`` unusable as a head (a wrong type anywhere), or None."""
    if not isinstance(head, dict):
        return "not a JSON object"
    missing = [name for name in HEAD_FIELDS if name not in head]
    if missing:
        return f"it lacks {', '.join(missing)}"
    hex_fields = {"root": 64, "head_mac": 64, "public_key": 64, "signature": 128}
    for name, size in hex_fields.items():
        value = head[name]
        if not isinstance(value, str) or len(value) != size or not _is_hex(value):
            return f"'{name}' is not {size} hex digits"
    for name in ("seq", "tree_size"):
        value = head[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"'{name}' is not a whole number"
    if head["tree_size"] == 0:
        return "'tree_size' is 0: a head seals at least one entry"
    if not isinstance(head["closing"], bool) or not isinstance(head["run"], str):
        return "'closing' or 'run' has the wrong type"
    if head["reason"] is not None and not isinstance(head["reason"], str):
        return "'reason' has the wrong type"
    return None


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def is_seal(entry: dict[str, Any] | None) -> bool:
    """A seal entry whose fields have the types govern writes (anything else is damage)."""
    if not entry or entry.get("kind") != "seal" or not isinstance(entry.get("body"), dict):
        return False
    return head_problem({"run": entry.get("run"), "seq": entry.get("seq"), **entry["body"]}) is None


def check_head(head: dict[str, Any], trusted: dict[str, str]) -> tuple[bool, str]:
    """(valid, why): the head is signed by a trusted key over exactly what it says."""
    public = head.get("public_key")
    if not isinstance(public, str) or public not in trusted:
        return False, f"the head is signed by {str(public)[:16]}..., which is not a trusted key"
    try:
        statement = head_statement(head["run"], head)
        load_public_key(public).verify(bytes.fromhex(head["signature"]), statement)
    except (KeyError, TypeError, ValueError, InvalidSignature, LedgerKeyError):
        return False, "the head's signature does not verify"
    return True, f"signed by {trusted[public]} {public[:16]}..."


def read_head(path: Path) -> dict[str, Any]:
    """A head file as written by a seal or `govern audit --write-head`."""
    try:
        head = parse_json(read_regular(path, 1 << 20))
    except OSError as exc:
        raise ProofError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ProofError(f"{path} is not a head file (not JSON)") from None
    problem = head_problem(head)
    if problem is not None:
        raise ProofError(f"{path} is not a head file: {problem}")
    return {name: head[name] for name in HEAD_FIELDS}


def latest_seal(lines: list[bytes]) -> dict[str, Any] | None:
    for line in reversed(lines):
        entry = parse(line)
        if is_seal(entry):
            return entry
    return None


def prove(path: Path, seq: int) -> dict[str, Any]:
    """The audit path of entry ``seq`` to the root of the first seal that covers it."""
    lines, _ = read_lines(path)
    if not 0 <= seq < len(lines):
        raise ProofError(f"the ledger has entries 0 to {len(lines) - 1}; there is no entry {seq}")
    seal = next(
        (
            e
            for line in lines[seq + 1 :]
            if is_seal(e := parse(line)) and e["body"]["tree_size"] > seq
        ),
        None,
    )
    if seal is None:
        raise ProofError(f"entry {seq} is not covered by a seal yet")
    head = head_of(seal)
    leaves = [leaf_hash(line) for line in lines[: head["tree_size"]]]
    return {
        "seq": seq,
        "entry": lines[seq].decode("utf-8"),
        "leaf_hash": leaves[seq].hex(),
        "audit_path": [h.hex() for h in inclusion_proof(seq, leaves)],
        "head": head,
    }


def check_proof(proof: dict[str, Any], trusted: dict[str, str]) -> tuple[bool, str]:
    """(valid, why): the entry hashes to the leaf, the path leads to a trusted signed root."""
    try:
        return _check_proof(proof, trusted)
    except (KeyError, TypeError, ValueError, AttributeError):
        return False, "the proof is malformed"


def _check_proof(proof: dict[str, Any], trusted: dict[str, str]) -> tuple[bool, str]:
    head = proof["head"]
    leaf = leaf_hash(proof["entry"].encode("utf-8"))
    if leaf.hex() != proof["leaf_hash"]:
        return False, "the entry does not hash to the proof's leaf"
    path = [bytes.fromhex(h) for h in proof["audit_path"]]
    if not verify_inclusion(
        proof["seq"], head["tree_size"], leaf, path, bytes.fromhex(head["root"])
    ):
        return False, "the audit path does not lead to the sealed root"
    valid, why = check_head(head, trusted)
    if not valid:
        return False, why
    return True, (
        f"entry {proof['seq']} is in the ledger of run {head['run']} sealed at "
        f"{head['tree_size']} entries ({why})"
    )


def prove_consistency(path: Path, old: dict[str, Any]) -> dict[str, Any]:
    """The RFC 9162 proof that the ledger's latest seal extends the earlier head ``old``."""
    lines, _ = read_lines(path)
    seal = latest_seal(lines)
    new = head_of(seal) if seal else None
    if new is None or old["tree_size"] > new["tree_size"]:
        return {"old": old, "new": new, "path": None}
    leaves = [leaf_hash(line) for line in lines[: new["tree_size"]]]
    proof = consistency_proof(old["tree_size"], leaves)
    return {"old": old, "new": new, "path": [h.hex() for h in proof]}


def check_consistency(proof: dict[str, Any], trusted: dict[str, str]) -> tuple[bool, str]:
    """(valid, why): both heads are signed by trusted keys and the new tree extends the old."""
    old, new = proof["old"], proof["new"]
    if new is None:
        return False, (
            f"truncated: the earlier head covers {old['tree_size']} entries, and the ledger "
            "no longer holds any seal"
        )
    for name, head in (("earlier", old), ("current", new)):
        valid, why = check_head(head, trusted)
        if not valid:
            return False, f"the {name} head: {why}"
    if old["run"] != new["run"]:
        return False, f"the earlier head is of run {old['run']}, not {new['run']}"
    if proof["path"] is None:
        return False, (
            f"truncated: the earlier head covers {old['tree_size']} entries, the ledger's "
            f"latest seal only {new['tree_size']}"
        )
    if not verify_consistency(
        old["tree_size"],
        new["tree_size"],
        bytes.fromhex(old["root"]),
        bytes.fromhex(new["root"]),
        [bytes.fromhex(h) for h in proof["path"]],
    ):
        return False, (
            f"rewritten: the ledger does not extend the earlier head of {old['tree_size']} "
            "entries (an entry it covered was changed, removed or moved)"
        )
    return True, (
        f"the ledger ({new['tree_size']} entries) is an append-only extension of the earlier "
        f"head ({old['tree_size']} entries)"
    )
