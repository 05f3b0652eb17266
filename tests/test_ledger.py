"""The ledger: every kind of tampering is named at the right entry, writers are exclusive and
recover, keys are kept private, proofs and Merkle trees follow RFC 9162."""

from __future__ import annotations

import hashlib
import json
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govern.ledger.format import encode, head_statement, parse
from govern.ledger.keys import (
    HmacKey,
    Keyring,
    LedgerKeyError,
    init_key_file,
    keyring_from_secrets,
    public_key_hex,
    read_key_file,
    rotate_key_file,
)
from govern.ledger.merkle import (
    EMPTY_ROOT,
    inclusion_proof,
    leaf_hash,
    root_of,
    verify_inclusion,
)
from govern.ledger.proofs import ProofError, check_proof, prove
from govern.ledger.verifier import Report, verify
from govern.ledger.writer import LedgerBusy, LedgerWriter, head_path

RING = keyring_from_secrets("11" * 32, "33" * 32, "test")
OTHER_RING = keyring_from_secrets("22" * 32, "44" * 32, "other")
PUBLIC = {RING.active_signer.public: "test"}  # the trusted seal key
OTHER_PUBLIC = {OTHER_RING.active_signer.public: "other"}

# header (0), transitions 1-9, seal 10, transitions 11-19, seal 20, transitions 21-28,
# closing seal 29: thirty entries, three seals.
TRANSITIONS = 26
ENTRIES = 30
SEALS = (10, 20, 29)


def transition(n: int) -> dict[str, str]:
    return {
        "item": f"gsm8k/test/{n:04d}",
        "stage": "division",
        "decision": "pass",
        "to": "intercession",
        "rule": "edge:division->intercession",
        "status": "applied",
    }


def write_ledger(
    directory: Path,
    *,
    run: str = "run-a",
    ring: Keyring = RING,
    transitions: int = TRANSITIONS,
    closed_as: str = "complete",
) -> Path:
    """A small closed ledger, sealed often enough that tampering lands between seals."""
    path = directory / "ledger.jsonl"
    writer = LedgerWriter.create(
        path, ring, run, {"institution": "senate"}, seal_every=10, fsync="never"
    )
    for n in range(transitions):
        writer.append("transition", "engine", transition(n))
    writer.close(closed_as)
    return path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def damage_of(report: Report) -> tuple[str, int | None]:
    assert not report.intact, "the tampering went unnoticed"
    assert report.damage is not None
    return report.damage.kind, report.damage.seq


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return write_ledger(tmp_path)


# --- an intact ledger -------------------------------------------------------------------------


def test_layout_of_the_test_ledger(ledger: Path) -> None:
    entries = [parse(line) for line in lines_of(ledger)]
    assert [e["seq"] for e in entries] == list(range(ENTRIES))
    assert tuple(e["seq"] for e in entries if e["kind"] == "seal") == SEALS
    assert json.loads(head_path(ledger).read_text())["seq"] == SEALS[-1]


def test_intact_with_hmac_key(ledger: Path) -> None:
    report = verify(ledger, RING)
    assert report.intact, report.summary()
    assert (report.closed_as == "complete", report.entries, report.seals, report.mode) == (
        True,
        ENTRIES,
        len(SEALS),
        "hmac",
    )
    assert report.run == "run-a"
    assert report.summary().startswith(f"intact: {ENTRIES} entries, {len(SEALS)} seals")


def test_intact_with_public_key_only(ledger: Path) -> None:
    report = verify(ledger, trusted=PUBLIC)
    assert report.intact, report.summary()
    assert (report.closed_as == "complete", report.entries, report.seals, report.mode) == (
        True,
        ENTRIES,
        len(SEALS),
        "public key",
    )


def test_verify_needs_a_key(ledger: Path) -> None:
    with pytest.raises(ValueError):
        verify(ledger)


# --- the tamper suite -------------------------------------------------------------------------


def test_flipped_byte_in_body_is_edited(ledger: Path) -> None:
    lines = lines_of(ledger)
    at = lines[5].index(b"gsm8k/test/0004") + len(b"gsm8k/test/000")
    lines[5] = lines[5][:at] + b"7" + lines[5][at + 1 :]
    assert parse(lines[5].rstrip(b"\n")) is not None  # still valid JSON
    write_lines(ledger, lines)
    assert damage_of(verify(ledger, RING)) == ("edited", 5)


def _key_id_span(line: bytes) -> range:
    start = line.index(b'"key":"') + len(b'"key":"')
    return range(start, start + 16)


@pytest.mark.parametrize("index", [0, 5, SEALS[0], SEALS[-1]])
def test_flipped_byte_anywhere_in_line_is_edited(ledger: Path, index: int) -> None:
    """Every byte of the line but its newline; the key id has its own test below."""
    pristine = lines_of(ledger)
    line = pristine[index]
    key_span = _key_id_span(line)
    for offset in range(len(line) - 1):
        if offset in key_span:
            continue
        for mask in (0x01, 0x80):
            lines = list(pristine)
            changed = bytearray(line)
            changed[offset] ^= mask
            lines[index] = bytes(changed)
            write_lines(ledger, lines)
            assert damage_of(verify(ledger, RING)) == ("edited", index), (offset, mask)


@pytest.mark.parametrize("index", [0, 5])
def test_flipped_byte_in_key_id_is_edited(ledger: Path, index: int) -> None:
    lines = lines_of(ledger)
    at = _key_id_span(lines[index])[3]
    changed = bytearray(lines[index])
    changed[at] ^= 0x01
    lines[index] = bytes(changed)
    write_lines(ledger, lines)
    assert damage_of(verify(ledger, RING)) == ("edited", index)


def test_edited_value_is_edited(ledger: Path) -> None:
    lines = lines_of(ledger)
    assert b'"decision":"pass"' in lines[7]
    lines[7] = lines[7].replace(b'"decision":"pass"', b'"decision":"fail"')
    assert parse(lines[7].rstrip(b"\n"))["body"]["decision"] == "fail"
    write_lines(ledger, lines)
    assert damage_of(verify(ledger, RING)) == ("edited", 7)


def test_deleted_entry_is_deleted(ledger: Path) -> None:
    lines = lines_of(ledger)
    del lines[14]
    write_lines(ledger, lines)
    report = verify(ledger, RING)
    assert damage_of(report) == ("deleted", 14)
    assert report.entries == 14


def test_deleted_header_is_deleted(ledger: Path) -> None:
    write_lines(ledger, lines_of(ledger)[1:])
    assert damage_of(verify(ledger, RING)) == ("deleted", 0)


def test_swapped_entries_are_reordered(ledger: Path) -> None:
    lines = lines_of(ledger)
    lines[6], lines[7] = lines[7], lines[6]
    write_lines(ledger, lines)
    assert damage_of(verify(ledger, RING)) == ("reordered", 6)


def test_truncated_tail_is_truncated(ledger: Path) -> None:
    write_lines(ledger, lines_of(ledger)[:-3])
    report = verify(ledger, RING)
    assert damage_of(report) == ("truncated", ENTRIES - 3)
    assert report.entries == ENTRIES - 3


@pytest.mark.parametrize("other_run", ["run-b", "run-a"])
def test_entry_from_another_run_is_spliced(tmp_path: Path, other_run: str) -> None:
    """Same key and length; with the same run id only the 'prev' chain gives it away."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    path = write_ledger(tmp_path / "a")
    other = write_ledger(tmp_path / "b", run=other_run)
    lines, foreign = lines_of(path), lines_of(other)
    assert len(lines) == len(foreign) and lines[15] != foreign[15]
    lines[15] = foreign[15]
    write_lines(path, lines)
    assert damage_of(verify(path, RING)) == ("spliced", 15)


def test_earlier_entry_appended_again_is_replayed(ledger: Path) -> None:
    lines = lines_of(ledger)
    write_lines(ledger, [*lines, lines[3]])
    assert damage_of(verify(ledger, RING)) == ("replayed", ENTRIES)


def test_earlier_entry_inserted_later_is_replayed(ledger: Path) -> None:
    lines = lines_of(ledger)
    lines.insert(12, lines[3])
    write_lines(ledger, lines)
    assert damage_of(verify(ledger, RING)) == ("replayed", 12)


def test_other_key_is_wrong_key(ledger: Path) -> None:
    report = verify(ledger, OTHER_RING)
    assert damage_of(report) == ("wrong key", 0)
    assert report.entries == 0


def test_other_public_key_is_bad_seal(ledger: Path) -> None:
    assert damage_of(verify(ledger, trusted=OTHER_PUBLIC))[0] == "wrong key"


def test_closing_seal_removed_is_bad_seal(ledger: Path) -> None:
    write_lines(ledger, lines_of(ledger)[:-1])
    assert damage_of(verify(ledger, RING)) == ("bad seal", SEALS[-1])


def test_torn_last_line_is_unsealed(ledger: Path) -> None:
    data = ledger.read_bytes()
    ledger.write_bytes(data[:-40])
    report = verify(ledger, RING)
    assert damage_of(report) == ("torn", ENTRIES - 1)
    assert report.summary().startswith(f"unsealed, intact up to entry {ENTRIES - 2}: ")


def _with_signature_digits_changed(line: bytes) -> bytes:
    at = line.index(b'"signature":"') + len(b'"signature":"')
    digits = b"0000" if line[at : at + 4] != b"0000" else b"1111"
    return line[:at] + digits + line[at + 4 :]


def test_forged_seal_signature_breaks_its_mac(ledger: Path) -> None:
    lines = lines_of(ledger)
    lines[20] = _with_signature_digits_changed(lines[20])
    write_lines(ledger, lines)
    assert damage_of(verify(ledger, RING)) == ("edited", 20)


def test_forged_seal_signature_with_public_key_is_bad_seal(ledger: Path) -> None:
    lines = lines_of(ledger)
    lines[20] = _with_signature_digits_changed(lines[20])
    write_lines(ledger, lines)
    assert damage_of(verify(ledger, trusted=PUBLIC)) == ("bad seal", 20)


def _reseal(line: bytes, **changes: str) -> bytes:
    """The seal line rebuilt with new body fields and a correct MAC: a forger with the HMAC key."""
    entry = parse(line.rstrip(b"\n"))
    assert entry is not None and entry["kind"] == "seal"
    del entry["mac"]
    entry["body"] = {**entry["body"], **changes}
    forged, _ = encode(entry, RING.active_key.secret)
    return forged + b"\n"


def test_forged_seal_with_correct_mac_is_bad_seal(ledger: Path) -> None:
    lines = lines_of(ledger)
    seal = parse(lines[20].rstrip(b"\n"))
    body = seal["body"]
    statement = head_statement(seal["run"], body)
    wrong = OTHER_RING.active_signer.private.sign(statement).hex()
    lines[20] = _reseal(lines[20], signature=wrong)
    write_lines(ledger, lines)
    report = verify(ledger, RING)
    assert damage_of(report) == ("bad seal", 20)
    assert "signature" in report.damage.detail


def test_forged_seal_with_correct_mac_and_forger_key_is_wrong_key(ledger: Path) -> None:
    """A signature that verifies, but under the forger's own public key: a holder of the HMAC
    key cannot seal, since the keyring trusts only its own seal keys."""
    lines = lines_of(ledger)
    seal = parse(lines[20].rstrip(b"\n"))
    body = seal["body"]
    forger = OTHER_RING.active_signer.private
    statement = head_statement(seal["run"], body)
    lines[20] = _reseal(
        lines[20],
        signature=forger.sign(statement).hex(),
        public_key=public_key_hex(forger.public_key()),
    )
    write_lines(ledger, lines)
    report = verify(ledger, RING)
    assert damage_of(report)[0] == "wrong key"
    assert report.entries == 20  # intact up to the entry before the forged seal


def test_forged_seal_under_forger_key_names_the_seal(ledger: Path) -> None:
    lines = lines_of(ledger)
    forger = OTHER_RING.active_signer.private
    lines[20] = _reseal(lines[20], public_key=public_key_hex(forger.public_key()))
    write_lines(ledger, lines)
    assert damage_of(verify(ledger, RING)) == ("wrong key", 20)


def test_public_key_sees_edit_before_seal_as_bad_seal(ledger: Path) -> None:
    lines = lines_of(ledger)
    lines[5] = lines[5].replace(b'"decision":"pass"', b'"decision":"fail"')
    write_lines(ledger, lines)
    report = verify(ledger, trusted=PUBLIC)
    assert damage_of(report) == ("bad seal", SEALS[0])
    assert "signed root does not match" in report.damage.detail


# --- any random edit is noticed ---------------------------------------------------------------

EDITS = ("flip", "delete", "swap", "duplicate", "truncate", "splice")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edit=st.sampled_from(EDITS), data=st.data())
def test_any_single_edit_is_noticed(edit: str, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        (root / "a").mkdir()
        (root / "b").mkdir()
        path = write_ledger(root / "a")
        pristine = path.read_bytes()
        lines = pristine.splitlines(keepends=True)
        index = st.integers(0, len(lines) - 1)
        if edit == "flip":
            offset = data.draw(st.integers(0, len(pristine) - 1), label="offset")
            mask = data.draw(st.integers(1, 255), label="mask")
            changed = bytearray(pristine)
            changed[offset] ^= mask
            tampered = bytes(changed)
        elif edit == "delete":
            del lines[data.draw(index, label="line")]
            tampered = b"".join(lines)
        elif edit == "swap":
            i = data.draw(index, label="i")
            j = data.draw(index.filter(lambda k: k != i), label="j")
            lines[i], lines[j] = lines[j], lines[i]
            tampered = b"".join(lines)
        elif edit == "duplicate":
            line = lines[data.draw(index, label="line")]
            lines.insert(data.draw(st.integers(0, len(lines)), label="at"), line)
            tampered = b"".join(lines)
        elif edit == "truncate":
            tampered = pristine[: data.draw(st.integers(0, len(pristine) - 1), label="length")]
        else:
            foreign = lines_of(write_ledger(root / "b", run=data.draw(st.sampled_from(["a", "b"]))))
            i = data.draw(st.integers(0, min(len(lines), len(foreign)) - 1), label="line")
            lines[i] = foreign[i]
            tampered = b"".join(lines)
        if tampered == pristine:
            return  # a no-op edit
        path.write_bytes(tampered)
        report = verify(path, RING)
        assert not report.intact, (edit, report.summary())


# --- the writer -------------------------------------------------------------------------------


def test_second_writer_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    writer = LedgerWriter.create(path, RING, "run-a", {}, seal_every=10, fsync="never")
    try:
        with pytest.raises(LedgerBusy):
            LedgerWriter.reopen(path, RING, fsync="never")
    finally:
        writer.close()
    with pytest.raises(FileExistsError):
        LedgerWriter.create(path, RING, "run-a", {}, fsync="never")


def test_closed_writer_refuses_entries(ledger: Path) -> None:
    writer = LedgerWriter.reopen(_interrupted(ledger), RING, seal_every=10, fsync="never")
    writer.close()
    with pytest.raises(ValueError):
        writer.append("transition", "engine", {})


def test_a_ledger_closed_as_complete_cannot_be_continued(ledger: Path) -> None:
    with pytest.raises(ValueError, match="closed as complete"):
        LedgerWriter.reopen(ledger, RING, seal_every=10, fsync="never")
    lines = lines_of(ledger)
    writer = LedgerWriter.reopen(_interrupted(ledger), RING, seal_every=10, fsync="never")
    writer.close()  # what a resumed run does; but nothing may follow a complete close:
    write_lines(ledger, [*lines_of(ledger), *lines[3:5]])
    assert damage_of(verify(ledger, RING))[0] in ("replayed", "reordered", "spliced")


def _interrupted(ledger: Path) -> Path:
    """The same ledger, closed as interrupted instead (a run that can be resumed)."""
    ledger.unlink()
    return write_ledger(ledger.parent, closed_as="interrupted")


def test_reopen_after_close_records_recovery_and_continues(ledger: Path) -> None:
    ledger = _interrupted(ledger)
    before = lines_of(ledger)
    writer = LedgerWriter.reopen(ledger, RING, seal_every=10, fsync="never")
    assert writer.seq == ENTRIES + 1  # the recovery entry took ENTRIES
    for n in range(5):
        writer.append("transition", "engine", transition(100 + n))
    writer.close()
    after = lines_of(ledger)
    assert after[:ENTRIES] == before
    recovery = parse(after[ENTRIES].rstrip(b"\n"))
    assert recovery["kind"] == "recovery" and recovery["seq"] == ENTRIES
    assert recovery["body"] == {
        "reason": "reopened after close",
        "after_seq": ENTRIES - 1,
        "torn_bytes": 0,
        "torn_sha256": None,
    }
    for report in (verify(ledger, RING), verify(ledger, trusted=PUBLIC)):
        assert report.intact, report.summary()
        assert report.entries == len(after) and report.closed_as == "complete"
    assert json.loads(head_path(ledger).read_text())["seq"] == len(after) - 1


def test_reopen_cuts_a_torn_last_line(ledger: Path) -> None:
    data = ledger.read_bytes()
    good = data[: data.rstrip(b"\n").rfind(b"\n") + 1]
    torn = data[len(good) : len(good) + 50]
    ledger.write_bytes(good + torn)
    writer = LedgerWriter.reopen(ledger, RING, seal_every=10, fsync="never")
    writer.close()
    after = lines_of(ledger)
    assert b"".join(after).startswith(good)
    recovery = parse(after[ENTRIES - 1].rstrip(b"\n"))
    assert recovery["body"] == {
        "reason": "torn last line",
        "after_seq": ENTRIES - 2,
        "torn_bytes": 50,
        "torn_sha256": hashlib.sha256(torn).hexdigest(),
    }
    report = verify(ledger, RING)
    assert report.intact, report.summary()


def _both_keys(active: Keyring) -> Keyring:
    return Keyring(
        {**RING.keys, **OTHER_RING.keys},
        active.active,
        "both",
        {**RING.signers, **OTHER_RING.signers},
        active.signer_public,
    )


def test_key_rotation_opens_a_segment(ledger: Path) -> None:
    ledger = _interrupted(ledger)
    writer = LedgerWriter.reopen(ledger, _both_keys(OTHER_RING), seal_every=10, fsync="never")
    writer.append("transition", "engine", transition(200))
    writer.close()
    entries = [parse(line.rstrip(b"\n")) for line in lines_of(ledger)]
    segment = entries[ENTRIES + 1]
    assert segment["kind"] == "segment"
    assert segment["body"] == {"from_key": RING.active, "to_key": OTHER_RING.active}
    assert [e["key"] for e in entries[: ENTRIES + 1]] == [RING.active] * (ENTRIES + 1)
    assert {e["key"] for e in entries[ENTRIES + 1 :]} == {OTHER_RING.active}

    report = verify(ledger, _both_keys(OTHER_RING))
    assert report.intact, report.summary()
    assert damage_of(verify(ledger, OTHER_RING)) == ("wrong key", 0)
    assert damage_of(verify(ledger, RING)) == ("wrong key", ENTRIES + 1)


def test_key_rotation_when_recovery_fills_a_seal_interval(tmp_path: Path) -> None:
    # header 0, transitions 1-7, closing seal 8; the recovery entry is 9, so a seal follows.
    path = write_ledger(tmp_path, transitions=7, closed_as="interrupted")
    writer = LedgerWriter.reopen(path, _both_keys(OTHER_RING), seal_every=10, fsync="never")
    writer.close()
    report = verify(path, _both_keys(OTHER_RING))
    assert report.intact, report.summary()


# --- keys -------------------------------------------------------------------------------------


def test_init_key_file_is_private_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "govern" / "ledger-keys.json"
    ring = init_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = read_key_file(path)
    assert loaded.active == ring.active
    assert loaded.keys == ring.keys
    assert len(ring.active_key.secret) == 32
    with pytest.raises(LedgerKeyError, match="already exists"):
        init_key_file(path)
    assert read_key_file(path).keys == ring.keys


def test_readable_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    init_key_file(path)
    path.chmod(0o644)
    with pytest.raises(LedgerKeyError, match="chmod 600"):
        read_key_file(path)


def test_rotate_key_file_keeps_old_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = init_key_file(path)
    rotated = rotate_key_file(path)
    assert rotated.active != first.active
    assert first.keys.items() <= rotated.keys.items()
    assert len(rotated.keys) == 2
    loaded = read_key_file(path)
    assert (loaded.keys, loaded.active) == (rotated.keys, rotated.active)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("secret", "message"),
    [("ab" * 15, "too short"), ("zz" * 32, "not hexadecimal"), ("", "too short")],
)
def test_bad_secrets_are_refused(secret: str, message: str) -> None:
    with pytest.raises(LedgerKeyError, match=message):
        keyring_from_secrets(secret, None, "GOVERN_LEDGER_KEY")


def test_repr_never_shows_the_secret(tmp_path: Path) -> None:
    file_ring = init_key_file(tmp_path / "keys.json")
    for ring in (RING, file_ring):
        secret = ring.active_key.secret.hex()
        for text in (repr(ring.active_key), str(ring.active_key), repr(ring), str(ring)):
            assert secret not in text
            assert secret.upper() not in text
        assert ring.active in repr(ring.active_key)
    assert "11" * 16 not in repr(HmacKey("id", bytes.fromhex("11" * 32)))


# --- proofs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seq", [0, 1, 9, SEALS[0], 15, SEALS[1], SEALS[-1] - 1])
def test_proof_checks_with_public_key(ledger: Path, seq: int) -> None:
    proof = prove(ledger, seq)
    assert proof["seq"] == seq
    assert proof["entry"].encode() + b"\n" == lines_of(ledger)[seq]
    ok, why = check_proof(proof, PUBLIC)
    assert ok, why
    expected_seal = next(s for s in SEALS if s > seq)
    assert proof["head"]["seq"] == expected_seal and proof["head"]["tree_size"] == expected_seal


def _flip_hex(text: str) -> str:
    return ("1" if text[0] == "0" else "0") + text[1:]


@pytest.mark.parametrize("part", ["entry", "entry+leaf", "audit_path", "root", "signature", "seq"])
def test_tampered_proof_fails(ledger: Path, part: str) -> None:
    proof = prove(ledger, 15)
    if part == "entry":
        proof["entry"] = proof["entry"].replace('"decision":"pass"', '"decision":"fail"')
    elif part == "entry+leaf":  # a consistent leaf for the changed entry: the path then fails
        proof["entry"] = proof["entry"].replace('"decision":"pass"', '"decision":"fail"')
        proof["leaf_hash"] = leaf_hash(proof["entry"].encode()).hex()
    elif part == "audit_path":
        proof["audit_path"][1] = _flip_hex(proof["audit_path"][1])
    elif part == "root":
        proof["head"]["root"] = _flip_hex(proof["head"]["root"])
    elif part == "signature":
        proof["head"]["signature"] = _flip_hex(proof["head"]["signature"])
    else:
        proof["seq"] = 14
    ok, why = check_proof(proof, PUBLIC)
    assert not ok, part
    assert why


def test_proof_fails_with_another_public_key(ledger: Path) -> None:
    ok, _ = check_proof(prove(ledger, 3), OTHER_PUBLIC)
    assert not ok


def test_unsealed_entry_cannot_be_proved(ledger: Path) -> None:
    with pytest.raises(ProofError, match="not covered by a seal"):
        prove(ledger, SEALS[-1])
    with pytest.raises(ProofError, match="no entry"):
        prove(ledger, ENTRIES)


# --- Merkle trees -----------------------------------------------------------------------------


def _mth(entries: list[bytes]) -> bytes:
    """RFC 9162, 2.1.1, written straight from the definition."""
    if not entries:
        return hashlib.sha256(b"").digest()
    if len(entries) == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < len(entries):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(entries[:k]) + _mth(entries[k:])).digest()


def test_empty_tree_root() -> None:
    assert root_of([]) == EMPTY_ROOT == _mth([])


@pytest.mark.parametrize("size", range(1, 41))
def test_merkle_root_and_inclusion(size: int) -> None:
    entries = [f"entry {n}".encode() for n in range(size)]
    leaves = [leaf_hash(e) for e in entries]
    root = root_of(leaves)
    assert root == _mth(entries)
    for index in range(size):
        proof = inclusion_proof(index, leaves)
        assert verify_inclusion(index, size, leaves[index], proof, root), index
        assert not verify_inclusion(size, size, leaves[index], proof, root)
        if size > 1:
            wrong = (index + 1) % size
            assert not verify_inclusion(wrong, size, leaves[index], proof, root), index
            assert not verify_inclusion(index, size, leaves[wrong], proof, root), index
            assert not verify_inclusion(index, size, leaves[index], proof[:-1], root), index
            assert not verify_inclusion(index, size, leaves[index], [*proof, root], root), index


@pytest.mark.parametrize("secret", [b"", b"k" * 32, b"q" * 64, b"z" * 65, bytes(range(200))])
def test_the_precomputed_mac_is_hmac_sha256(secret: bytes) -> None:
    import hmac

    from govern.ledger.format import mac_for

    for message in (b"", b"abc", bytes(range(256)) * 5):
        assert (
            mac_for(secret).hexdigest(message).decode()
            == hmac.digest(secret, message, "sha256").hex()
        )


def test_a_ledger_line_is_never_written_with_nan_or_infinity() -> None:
    """Not JSON: a reader elsewhere could not parse the line; refused at the encoder."""
    from govern.spec.digest import canonical_json

    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError):
            canonical_json({"deficit": bad})
