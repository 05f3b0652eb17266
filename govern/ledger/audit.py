"""`govern audit`: verify a run's ledger and the files bound to it; explain it per agent;
prove one entry; prove the ledger extends an earlier head.

Trust comes from outside the folder under audit: the HMAC key (``--key-file``,
GOVERN_LEDGER_KEY or the user's key file) checks every entry; trusted seal
public keys (``--public-key``, ``--trusted-keys``, or pinned in the key file)
check the signed seals and proofs. A key found in the run folder is refused,
and with no key at all the audit says that it proves nothing and fails.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from govern.files import read_regular
from govern.governance.lot import check_lots
from govern.governance.oversight import check_oversight
from govern.governance.steps import check_steps
from govern.ledger.binding import check_binding
from govern.ledger.explain import as_dicts, render, timeline
from govern.ledger.format import parse
from govern.ledger.keys import (
    ENV_KEY,
    ENV_SIGNING_KEY,
    Keyring,
    LedgerKeyError,
    default_key_file,
    load_keyring,
    load_public_key,
    public_key_hex,
)
from govern.ledger.proofs import (
    ProofError,
    check_consistency,
    check_proof,
    head_of,
    latest_seal,
    prove,
    prove_consistency,
    read_head,
)
from govern.ledger.verifier import verify

MAX_KEYS_TEXT_BYTES = 1 << 16


class AuditUsageError(Exception):
    """The audit cannot start: a missing ledger, an unreadable key. Exit status 2."""


@dataclass
class AuditResult:
    intact: bool
    report: dict[str, Any]
    text: list[str] = field(default_factory=list)
    head: dict[str, Any] | None = None  # the latest verified head, for witnessing
    verified: list[bytes] = field(default_factory=list)  # the entries the keys verified


def ledger_path(target: Path) -> Path:
    path = target / "ledger.jsonl" if target.is_dir() else target
    if not path.is_file():
        raise AuditUsageError(f"no ledger at {path}: give a run folder or its ledger.jsonl")
    return path


def _outside(path: Path, folder: Path, what: str) -> None:
    """A key or head from the folder under audit would vouch for itself: refuse it."""
    if path.resolve().is_relative_to(folder.resolve()):
        raise AuditUsageError(
            f"{what} {path} lies inside the run folder under audit, so it proves nothing: "
            "use a copy you obtained independently (e.g. `govern keys public` on the "
            "writer's machine)"
        )


def _read_small(path: Path, what: str) -> str:
    try:
        data = read_regular(path, MAX_KEYS_TEXT_BYTES)
        if len(data) > MAX_KEYS_TEXT_BYTES:
            raise AuditUsageError(f"{what} {path} is too large to be a file of keys")
        return data.decode("ascii")
    except OSError as exc:
        raise AuditUsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise AuditUsageError(f"{what} {path} is not a text file of hex keys") from None


def trusted_keys(paths: list[Path], trusted_file: Path | None, folder: Path) -> dict[str, str]:
    """Public keys given on the command line: one key a file, or a file of 'HEX [name]' lines."""
    trusted: dict[str, str] = {}
    for path in paths:
        _outside(path, folder, "the public key")
        try:
            public = public_key_hex(load_public_key(_read_small(path, "the public key")))
        except LedgerKeyError as exc:
            raise AuditUsageError(f"{path}: {exc}") from None
        trusted[public] = f"--public-key {path.name}"
    if trusted_file is not None:
        _outside(trusted_file, folder, "the trusted-keys file")
        text = _read_small(trusted_file, "the trusted-keys file")
        for number, line in enumerate(text.splitlines(), start=1):
            words = line.split("#", 1)[0].split(maxsplit=1)
            if not words:
                continue
            try:
                public = public_key_hex(load_public_key(words[0]))
            except LedgerKeyError as exc:
                raise AuditUsageError(f"{trusted_file}:{number}: {exc}") from None
            trusted[public] = words[1].strip() if len(words) > 1 else f"{trusted_file.name}"
    return trusted


def _keyring(key_file: Path | None, folder: Path) -> Keyring | None:
    """The HMAC keys, or None when the user has none at all (an unusable key is an error)."""
    if key_file is not None:
        _outside(key_file, folder, "the key file")
    elif not {ENV_KEY, ENV_SIGNING_KEY} & set(os.environ) and not default_key_file().exists():
        return None
    try:
        return load_keyring(key_file)
    except LedgerKeyError as exc:
        raise AuditUsageError(str(exc)) from None


def audit(
    target: Path,
    *,
    key_file: Path | None = None,
    public_keys: tuple[Path, ...] = (),
    trusted_file: Path | None = None,
    explain: bool = False,
    prove_seq: int | None = None,
    since: Path | None = None,
) -> AuditResult:
    path = ledger_path(target)
    folder = path.parent
    given = trusted_keys(list(public_keys), trusted_file, folder)
    # With --public-key, an HMAC key is used only when named (--key-file, GOVERN_LEDGER_KEY):
    # an auditor's own default key file has nothing to do with someone else's run.
    named = key_file is not None or ENV_KEY in os.environ
    keyring = _keyring(key_file, folder) if named or not given else None
    trusted = {**(keyring.trusted() if keyring else {}), **given}
    if keyring is None and not trusted:
        text = (
            "NOT VERIFIED: no HMAC key and no trusted public key, so this audit proves "
            "nothing. Give --key-file (or set GOVERN_LEDGER_KEY), or --public-key with the "
            "writer's seal key obtained outside the run folder."
        )
        return AuditResult(False, {"ledger": {"verified": False, "summary": text}}, [text])
    try:
        report = verify(path, keyring=keyring, trusted=given)
    except OSError as exc:
        raise AuditUsageError(f"cannot read {path}: {exc.strerror}") from None
    result = AuditResult(report.complete, {"ledger": report.as_dict()}, [report.summary()])
    result.verified = report.lines[: report.entries]
    result.text += [f"note: {note}" for note in report.notes]
    lines = report.lines
    if report.intact or report.damage.kind in ("torn", "unsealed"):
        binding = check_binding(folder, lines, report.kinds, closed=report.intact)
        result.report["files"] = binding.as_dict()
        if binding.problems:  # the first line says so: the entries alone are not the run
            result.text.insert(0, "NOT INTACT: the run folder does not match its ledger")
        result.text += [f"files: {problem}" for problem in binding.problems]
        result.text += [f"note: {note}" for note in binding.notes]
        if binding.checked and not binding.problems:
            result.text.append(f"files: {', '.join(binding.checked)} match the ledger")
        result.intact = result.intact and not binding.problems
        seal = latest_seal(lines[: report.entries])
        result.head = head_of(seal) if seal else None
    _check_draws(report.lines[: report.entries], report.kinds, result)
    _check_steps(report.lines[: report.entries], report.kinds, result)
    if explain:
        stories = timeline(report.lines[: report.entries])
        result.report["agents"] = as_dicts(stories)
        result.text.append(render(stories))
    if prove_seq is not None:
        _prove(path, prove_seq, trusted, result)
    if since is not None:
        _since(path, since, trusted, result)
    return result


def _check_draws(lines: list[bytes], kinds: list[bytes], result: AuditResult) -> None:
    """Redo every draw by lot and every oversight draw from the ledger alone: one that does
    not follow from the run's seed fails the audit, whoever holds the keys that signed it.
    (An oversight draw is redone at the rate it records; see ``oversight.recheck`` for why
    that rate is not checked against the institution here.)"""
    lots, problems = check_lots(lines, kinds)
    _report_draws(
        result,
        "lots",
        {"checked": lots, "problems": problems},
        failed="a draw by lot does not follow from the run's seed",
        done=f"{lots} draws redone from the run's seed, each as recorded",
    )
    coverage = check_oversight(lines, kinds)
    _report_draws(
        result,
        "oversight",
        {"checked": coverage.draws, "examined": coverage.examined, "problems": coverage.problems},
        failed="an oversight draw does not follow from the run's seed",
        done=f"{coverage.draws} draws redone from the run's seed, each as recorded; "
        f"{coverage.examined} examined a transition, {coverage.draws - coverage.examined} "
        "did not",
    )


def _check_steps(lines: list[bytes], kinds: list[bytes], result: AuditResult) -> None:
    """Replay every decompose stage's recorded steps with its task's rules, as the
    Controller checked them when it wrote them (``governance.steps.replay``): a record that
    does not stand up fails the audit, whoever holds the keys that signed it."""
    if b"steps" not in kinds:
        return
    from govern.maker.branches import step_rules  # the tasks' rules: only for such ledgers

    entries = [parse(line) or {} for line in lines]
    header = entries[0].get("body", {}) if entries else {}
    task_name = (header.get("config") or {}).get("task")
    decomposed = [
        (e.get("kind"), e.get("body") or {}, e.get("body") or {})
        for e, kind in zip(entries, kinds, strict=False)
        if kind in (b"steps", b"resume")
    ]
    checked, problems = check_steps(decomposed, partial(step_rules, task_name))
    _report_draws(
        result,
        "steps",
        {"checked": checked, "problems": problems},
        failed="recorded steps of a decompose stage do not stand up",
        done=f"{checked:,} steps replayed from the ledger: every move within the task's "
        "rules and every winner ahead by k",
    )


def _report_draws(
    result: AuditResult, section: str, report: dict[str, Any], *, failed: str, done: str
) -> None:
    """Add one kind of draw to the audit (nothing when the ledger has none of them)."""
    if not report["checked"] and not report["problems"]:
        return
    result.report[section] = report
    problems = report["problems"]
    if problems:
        result.text.insert(0, f"NOT INTACT: {failed}")
        result.text += [f"{section}: {problem}" for problem in problems]
    else:
        result.text.append(f"{section}: {done}")
    result.intact = result.intact and not problems


def _prove(path: Path, seq: int, trusted: dict[str, str], result: AuditResult) -> None:
    try:
        proof = prove(path, seq)
    except ProofError as exc:
        raise AuditUsageError(str(exc)) from None
    valid, why = check_proof(proof, trusted)
    result.report["proof"] = {**proof, "valid": valid, "verdict": why}
    result.text.append(f"proof of entry {seq}: {'valid' if valid else 'INVALID'}: {why}")
    result.intact = result.intact and valid


def _since(path: Path, head_file: Path, trusted: dict[str, str], result: AuditResult) -> None:
    _outside(head_file, path.parent, "the earlier head")
    try:
        proof = prove_consistency(path, read_head(head_file))
    except ProofError as exc:
        raise AuditUsageError(str(exc)) from None
    valid, why = check_consistency(proof, trusted)
    result.report["consistency"] = {**proof, "valid": valid, "verdict": why}
    result.text.append(
        f"since {head_file.name}: {'consistent' if valid else 'INCONSISTENT'}: {why}"
    )
    result.intact = result.intact and valid
