"""Inclusion proofs: show that one entry is in a sealed ledger, checkable with the public key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from govern.ledger.format import parse, seal_statement
from govern.ledger.keys import public_key_hex
from govern.ledger.merkle import inclusion_proof, leaf_hash, verify_inclusion
from govern.ledger.verifier import read_lines


class ProofError(Exception):
    """No proof can be made for that entry; the message says why."""


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
    body = seal["body"]
    leaves = [leaf_hash(line) for line in lines[: body["tree_size"]]]
    return {
        "run": seal["run"],
        "seq": seq,
        "entry": lines[seq].decode("utf-8"),
        "leaf_hash": leaves[seq].hex(),
        "tree_size": body["tree_size"],
        "root": body["root"],
        "audit_path": [h.hex() for h in inclusion_proof(seq, leaves)],
        "seal_seq": seal["seq"],
        "head_mac": body["head_mac"],
        "signature": body["signature"],
        "public_key": body["public_key"],
    }


def check_proof(proof: dict[str, Any], public_key: Ed25519PublicKey) -> tuple[bool, str]:
    """(valid, why): the entry hashes to the leaf, the path leads to the signed root."""
    leaf = leaf_hash(proof["entry"].encode("utf-8"))
    if leaf.hex() != proof["leaf_hash"]:
        return False, "the entry does not hash to the proof's leaf"
    path = [bytes.fromhex(h) for h in proof["audit_path"]]
    if not verify_inclusion(
        proof["seq"], proof["tree_size"], leaf, path, bytes.fromhex(proof["root"])
    ):
        return False, "the audit path does not lead to the sealed root"
    if proof["public_key"] != public_key_hex(public_key):
        return False, "the seal was signed with another key than the one given"
    statement = seal_statement(proof["run"], proof["tree_size"], proof["root"], proof["head_mac"])
    try:
        public_key.verify(bytes.fromhex(proof["signature"]), statement)
    except (InvalidSignature, ValueError):
        return False, "the seal's signature does not verify"
    return True, (
        f"entry {proof['seq']} is in the ledger of run {proof['run']} sealed at "
        f"{proof['tree_size']} entries"
    )
