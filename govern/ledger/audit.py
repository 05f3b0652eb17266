"""`govern audit`: verify a run's ledger, explain it per agent, prove one entry.

Keys: ``--key-file`` (or GOVERN_LEDGER_KEY, or the user's key file) checks every
entry's MAC; ``--public-key`` alone checks the signed seals and proofs. With no
key at hand, the run folder's own ``ledger.pub`` is used, which shows the
ledger is consistent but not who wrote it; the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from govern.ledger.explain import as_dicts, render, timeline
from govern.ledger.keys import (
    Keyring,
    LedgerKeyError,
    load_keyring,
    load_public_key,
    signing_key,
)
from govern.ledger.proofs import ProofError, check_proof, prove
from govern.ledger.verifier import verify


class AuditUsageError(Exception):
    """The audit cannot start: a missing ledger, an unreadable key. Exit status 2."""


@dataclass
class AuditResult:
    intact: bool
    report: dict[str, Any]
    text: list[str] = field(default_factory=list)


def ledger_path(target: Path) -> Path:
    path = target / "ledger.jsonl" if target.is_dir() else target
    if not path.is_file():
        raise AuditUsageError(f"no ledger at {path}: give a run folder or its ledger.jsonl")
    return path


def _keys(
    path: Path, key_file: Path | None, public_key_file: Path | None
) -> tuple[Keyring | None, Ed25519PublicKey | None, str | None]:
    """(keyring, public key, a note on their provenance)."""
    try:
        public = load_public_key(public_key_file.read_text()) if public_key_file else None
        if public is not None and key_file is None:
            return None, public, None
        keyring = load_keyring(key_file)
        return keyring, public or signing_key(keyring.active_key).public_key(), None
    except OSError as exc:
        raise AuditUsageError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except LedgerKeyError as exc:
        if key_file is not None:
            raise AuditUsageError(str(exc)) from None
        own = path.with_name("ledger.pub")
        if not own.is_file():
            raise AuditUsageError(f"{exc}; or give --public-key") from None
        note = (
            f"no HMAC key found ({exc}); checked the seals with the run's own {own.name}, "
            "which shows the ledger is consistent, not who wrote it"
        )
        return None, load_public_key(own.read_text()), note


def audit(
    target: Path,
    *,
    key_file: Path | None = None,
    public_key_file: Path | None = None,
    explain: bool = False,
    prove_seq: int | None = None,
) -> AuditResult:
    path = ledger_path(target)
    keyring, public, note = _keys(path, key_file, public_key_file)
    report = verify(path, keyring=keyring, public_key=None if keyring else public)
    result = AuditResult(report.intact, {"ledger": report.as_dict()}, [report.summary()])
    for extra in ([note] if note else []) + report.notes:
        result.text.append(f"note: {extra}")
        result.report["ledger"]["notes"] = [*report.notes, *([note] if note else [])]
    if explain:
        stories = timeline(path)
        result.report["agents"] = as_dicts(stories)
        result.text.append(render(stories))
    if prove_seq is not None:
        try:
            proof = prove(path, prove_seq)
        except ProofError as exc:
            raise AuditUsageError(str(exc)) from None
        valid, why = check_proof(proof, public)
        result.report["proof"] = {**proof, "valid": valid, "verdict": why}
        result.text.append(f"proof of entry {prove_seq}: {'valid' if valid else 'INVALID'}: {why}")
        result.intact = result.intact and valid
    return result
