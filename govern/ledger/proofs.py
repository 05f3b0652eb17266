"""Signed heads and the two proofs of RFC 9162 over them.

A head is a seal as anyone can keep it: run, tree size, Merkle root, head MAC,
whether and why the ledger closed there, the public key and the signature.
An inclusion proof shows one entry is in a sealed tree; a consistency proof
shows a later tree extends an earlier one, so whoever kept an old head
detects truncation or rewriting, even by a holder of the keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

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
        if not path.is_file():
            raise ProofError(f"{path} is not a head file")
        head = json.loads(path.read_bytes()[: 1 << 20])
    except OSError as exc:
        raise ProofError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ProofError(f"{path} is not a head file (not JSON)") from None
    if not isinstance(head, dict) or any(name not in head for name in HEAD_FIELDS):
        raise ProofError(f"{path} is not a head file: it needs {', '.join(HEAD_FIELDS)}")
    return {name: head[name] for name in HEAD_FIELDS}


def latest_seal(lines: list[bytes]) -> dict[str, Any] | None:
    for line in reversed(lines):
        entry = parse(line)
        if entry is not None and entry.get("kind") == "seal":
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
            if (e := parse(line))
            and e.get("kind") == "seal"
            and e["body"].get("tree_size", 0) > seq
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
