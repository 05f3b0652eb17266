"""Regressions for the findings of an attack probe, one test (or parametrized family) each:

1. a holder of both keys appends after the seal that closed a run as complete;
2. duplicated results lines, at resume and in a complete run;
3. resume with a missing or empty ledger beside stale results lines;
4. an HMAC-only audit and seals it does not pin; an HMAC key is never dropped silently;
5. `run MANIFEST --out DIR` on an unfinished run with other settings; `--resume` with settings;
6. hostile run folders (FIFOs, devices, deep nesting, wrong types) never hang or exit 70;
7. key files and recorded requests with fields of the wrong type;
8. a symlinked key file on rotation, CRLF ledgers, oversized trusted-keys files, and the
   audit's first line when only the files fail.

Each test is written to fail if its fix were reverted. Runs made with `govern run` are
module-scoped and copied before any tampering.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from govern.ledger.binding import folder_digests, line_digest
from govern.ledger.format import encode, head_statement, parse
from govern.ledger.keys import keyring_from_secrets, read_key_file
from govern.ledger.merkle import MerkleFrontier, leaf_hash
from govern.ledger.writer import LedgerBusy, LedgerWriter, head_path
from govern.run.resume import read_previous
from tests.conftest import (
    ROOT,
    TEST_KEY,
    TEST_KEYS,
    TEST_SEAL_KEY,
    govern_process,
    signalled_run,
    user_environment,
    write_key_file,
)

GENUINE = keyring_from_secrets(TEST_KEY, TEST_SEAL_KEY, "test")  # the keys runs use here
PUBLIC = GENUINE.active_signer.public
OTHER_SEAL_KEY = "99" * 32
SAMPLE = ROOT / "tasks" / "gsm8k_sample.jsonl"
DEEP = "[" * 100_000  # nesting deep enough to exhaust any recursive JSON parser
ITEMS = 6  # the interrupted run's --limit


# --- helpers --------------------------------------------------------------------------------


def _limit_memory() -> None:  # a runaway read fails with MemoryError instead of eating the host
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def govern(
    *args: str, home: Path, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """`govern ARGS` in a subprocess, as a user whose home is ``home`` (no key file), with
    exactly the keys given in ``env``, a timeout and a cap on memory."""
    return govern_process(
        *args, env=user_environment(home, **env), timeout=timeout, preexec_fn=_limit_memory
    )


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert "internal error" not in result.stderr, result.stderr


def says(result: subprocess.CompletedProcess[str], verdict: str) -> bool:
    return any(line.startswith(verdict) for line in result.stdout.splitlines())


def copy_of(run: Path, tmp_path: Path, name: str = "copy") -> Path:
    return Path(shutil.copytree(run, tmp_path / name))


def entries(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "ledger.jsonl").read_text().splitlines()]


def result_ids(folder: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (folder / "results.jsonl").read_text().splitlines()]


def remac_seal_body(ledger: Path, body: Any) -> None:
    """The last line (the closing seal) with its body replaced and a correct MAC: a holder of
    the HMAC key, so the damage is structural, not a MAC mismatch."""
    lines = ledger.read_bytes().splitlines(keepends=True)
    entry = parse(lines[-1].rstrip(b"\n"))
    assert entry is not None and entry["kind"] == "seal"
    entry.pop("mac")
    entry["body"] = body
    lines[-1] = encode(entry, GENUINE.active_key.secret)[0] + b"\n"
    ledger.write_bytes(b"".join(lines))


def append_by_hand(
    ledger: Path, new: list[tuple[str, str, dict[str, Any]]], *, drop_last: bool = False
) -> None:
    """Append entries and a closing seal 'complete' with both genuine keys, by hand: the MAC
    chain, the Merkle root, the signature and ledger.head all made afresh (``drop_last``
    first removes the ledger's last line)."""
    lines = ledger.read_bytes().splitlines()
    if drop_last:
        lines.pop()
    frontier = MerkleFrontier()
    for line in lines:
        frontier.append(leaf_hash(line))
    last = parse(lines[-1])
    assert last is not None
    run, key, state = last["run"], last["key"], {"seq": last["seq"] + 1, "prev": last["mac"]}
    secret = GENUINE.keys[key].secret

    def add(kind: str, actor: str, body: dict[str, Any]) -> None:
        entry = {
            "actor": actor,
            "body": body,
            "key": key,
            "kind": kind,
            "prev": state["prev"],
            "run": run,
            "seq": state["seq"],
            "ts": last["ts"] + state["seq"],
        }
        line, mac = encode(entry, secret)
        lines.append(line)
        frontier.append(leaf_hash(line))
        state["seq"], state["prev"] = state["seq"] + 1, mac

    for kind, actor, body in new:
        add(kind, actor, body)
    seal: dict[str, Any] = {
        "tree_size": frontier.size,
        "root": frontier.root().hex(),
        "head_mac": state["prev"],
        "public_key": PUBLIC,
        "closing": True,
        "reason": "complete",
    }
    seal["signature"] = GENUINE.active_signer.private.sign(head_statement(run, seal)).hex()
    seq = state["seq"]
    add("seal", "govern", seal)
    ledger.write_bytes(b"".join(line + b"\n" for line in lines))
    head = {"run": run, "seq": seq, "key": key, **seal}
    head_path(ledger).write_text(json.dumps(head, indent=2, sort_keys=True) + "\n")


def _write_private_text(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


# --- runs -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with no key file: every key a test uses is given explicitly."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside every run folder, for public keys and heads."""
    return tmp_path_factory.mktemp("outside")


@pytest.fixture(scope="module")
def pub_file(outside: Path) -> Path:
    path = outside / "genuine.pub"
    path.write_text(PUBLIC + "\n")
    return path


@pytest.fixture(scope="module")
def complete(tmp_path_factory: pytest.TempPathFactory, home: Path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "complete"
    result = govern(
        "run", "manifests/senate.yaml", "--task", "gsm8k", "--limit", "3", "--out", str(out),
        "--data", str(SAMPLE), home=home, **TEST_KEYS,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def witnessed(complete: Path, outside: Path, home: Path) -> Path:
    """The complete run's head, written by `govern audit --write-head` outside the folder."""
    head = outside / "complete.head.json"
    result = govern("audit", str(complete), "--write-head", str(head), home=home, **TEST_KEYS)
    assert result.returncode == 0, result.stdout
    return head


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory, home: Path) -> SimpleNamespace:
    """A run of ITEMS items stopped by SIGTERM after its first finished item: sealed as
    interrupted, resumable. ``args`` are the settings it started with."""
    base = tmp_path_factory.mktemp("interrupted")
    manifest = base / "slow_senate.yaml"
    text = (ROOT / "manifests" / "senate.yaml").read_text()
    manifest.write_text(text + "simulator:\n  sim/medium: {latency_ms: 20}\n")
    out = base / "run"
    args = (str(manifest), "--task", "gsm8k", "--limit", str(ITEMS), "--data", str(SAMPLE))
    stopped = signalled_run([*args, "--concurrency", "1"], out, signal.SIGTERM, home=home,
                            **TEST_KEYS)  # fmt: skip
    assert stopped.returncode == 143, stopped.stderr
    done = len(result_ids(out))
    assert 1 <= done < ITEMS, "the run was not cut part way"
    return SimpleNamespace(folder=out, manifest=manifest, args=args, done=done)


def resume(folder: Path, home: Path) -> subprocess.CompletedProcess[str]:
    result = govern("run", "--resume", str(folder), home=home, **TEST_KEYS)
    assert result.returncode == 0, result.stderr
    return result


def the_resume_entry(folder: Path) -> dict[str, Any]:
    (body,) = [e["body"] for e in entries(folder) if e["kind"] == "resume"]
    return body


# --- 1. nothing may follow the seal that closed a run as complete ----------------------------


def _splice_an_edited_result(folder: Path, *, drop_seal: bool) -> None:
    """Edit a result, then record it as that item's result and bind the folder anew, with
    both keys, after the closing seal (or in its place, for the control)."""
    path = folder / "results.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[0])
    record["correct"] = not record.get("correct")
    lines[0] = json.dumps(record).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    end = {
        "event": "end",
        "item": record["id"],
        "outcome": "completed",
        "result_sha256": line_digest(lines[0]),
    }
    files = {"files": folder_digests(folder)}
    append_by_hand(
        folder / "ledger.jsonl",
        [("item", "controller", end), ("files", "govern", files)],
        drop_last=drop_seal,
    )


def test_1_entries_after_a_complete_closing_seal_are_spliced(
    cli, complete: Path, tmp_path: Path, home: Path, pub_file: Path
) -> None:
    # The control: the same entries in place of the closing seal pass (only --since, with an
    # earlier head, catches a key holder rewriting the tail), so the construction is sound.
    control = copy_of(complete, tmp_path, "control")
    _splice_an_edited_result(control, drop_seal=True)
    passed = cli("audit", str(control), home=home, **TEST_KEYS)
    assert passed.returncode == 0, passed.stdout
    folder = copy_of(complete, tmp_path)
    _splice_an_edited_result(folder, drop_seal=False)
    seal_at = len(entries(complete)) - 1
    for keys, extra in ((TEST_KEYS, ()), ({}, ("--public-key", str(pub_file)))):
        result = cli("audit", str(folder), *extra, home=home, **keys)
        assert result.returncode == 1, result.stdout
        assert says(result, f"spliced at entry {seal_at + 1}"), result.stdout
        assert "follow the seal that closed the run as complete" in result.stdout
        no_traceback(result)


def test_1_a_complete_ledger_cannot_be_reopened_and_stays_unlocked(
    complete: Path, tmp_path: Path
) -> None:
    ledger = copy_of(complete, tmp_path) / "ledger.jsonl"
    before = ledger.read_bytes()
    with pytest.raises(ValueError, match="closed as complete") as first:
        LedgerWriter.reopen(ledger, GENUINE, fsync="never")
    # The first refusal (its traceback still alive) holds no lock: a second attempt is
    # refused for the same reason, not as busy, and anyone may take the lock.
    try:
        with pytest.raises(ValueError, match="closed as complete"):
            LedgerWriter.reopen(ledger, GENUINE, fsync="never")
    except LedgerBusy:
        pytest.fail("the refused reopen left the ledger locked")
    with ledger.open("rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert first.value is not None
    assert ledger.read_bytes() == before  # no recovery entry, nothing written


# --- 2. each results line is its item's last recorded result, once --------------------------


def test_2_resume_drops_duplicated_results_lines(
    cli, interrupted: SimpleNamespace, tmp_path: Path, home: Path
) -> None:
    folder = copy_of(interrupted.folder, tmp_path)
    baseline = read_previous(folder, GENUINE).dropped  # 0: a SIGTERM leaves no orphan line
    path = folder / "results.jsonl"
    first = path.read_bytes().splitlines(keepends=True)[0]
    path.write_bytes(path.read_bytes() + first + first)
    resume(folder, home)
    ids = result_ids(folder)
    assert len(ids) == ITEMS and Counter(ids).most_common(1)[0][1] == 1, ids
    assert the_resume_entry(folder)["dropped_results"] == baseline + 2
    audit = cli("audit", str(folder), home=home, **TEST_KEYS)
    assert audit.returncode == 0, audit.stdout


def test_2_a_duplicated_results_line_in_a_complete_run_fails_the_audit(
    cli, complete: Path, tmp_path: Path, home: Path, pub_file: Path
) -> None:
    plain, rebound = copy_of(complete, tmp_path), copy_of(complete, tmp_path, "rebound")
    lines = (complete / "results.jsonl").read_bytes().splitlines(keepends=True)
    item = json.loads(lines[1])["id"]
    for folder in (plain, rebound):
        (folder / "results.jsonl").write_bytes(b"".join([*lines, lines[1]]))
    # A holder of both keys binds the folder, duplicate and all, in place of the closing seal:
    # the file digest then matches, and only the one-line-per-item rule is left to catch it.
    files = {"files": folder_digests(rebound)}
    append_by_hand(rebound / "ledger.jsonl", [("files", "govern", files)], drop_last=True)
    for folder in (plain, rebound):
        for keys, extra in ((TEST_KEYS, ()), ({}, ("--public-key", str(pub_file)))):
            result = cli("audit", str(folder), *extra, home=home, **keys)
            assert result.returncode == 1, result.stdout
            assert f"line {len(lines) + 1} repeats the result of {item}" in result.stdout
            assert result.stdout.startswith("NOT INTACT"), result.stdout


# --- 3. a ledger lost before its first line takes the stale results with it -----------------


@pytest.mark.parametrize("ledger", ["missing", "empty"])
def test_3_resume_without_a_ledger_keeps_no_stale_result(
    cli, interrupted: SimpleNamespace, tmp_path: Path, home: Path, ledger: str
) -> None:
    folder = copy_of(interrupted.folder, tmp_path)
    (folder / "ledger.jsonl").unlink()
    (folder / "ledger.head").unlink()
    if ledger == "empty":
        (folder / "ledger.jsonl").write_bytes(b"")
    assert len(result_ids(folder)) == interrupted.done  # stale lines nothing vouches for
    resume(folder, home)
    ids = result_ids(folder)
    assert len(ids) == ITEMS and len(set(ids)) == ITEMS, ids
    audit = cli("audit", str(folder), home=home, **TEST_KEYS)
    assert audit.returncode == 0, audit.stdout


# --- 4. what an HMAC key alone proves, and an HMAC key never silently dropped ----------------


def test_4_hmac_only_audit_notes_seals_it_does_not_pin(cli, complete: Path, home: Path) -> None:
    result = cli("audit", str(complete), home=home, GOVERN_LEDGER_KEY=TEST_KEY)
    assert result.returncode == 0, result.stdout
    notes = [line for line in result.stdout.splitlines() if line.startswith("note: seals are")]
    assert len(notes) == 1, result.stdout
    assert notes[0].startswith(f"note: seals are signed by {PUBLIC[:16]}...")
    assert "does not pin" in notes[0]
    # Pinned (its own seal key beside it), there is nothing to note.
    pinned = cli("audit", str(complete), home=home, **TEST_KEYS)
    assert pinned.returncode == 0 and "does not pin" not in pinned.stdout, pinned.stdout


def test_4_hmac_key_and_public_key_both_apply(
    cli, complete: Path, outside: Path, home: Path, pub_file: Path
) -> None:
    wrong_pub = outside / "wrong.pub"
    wrong = keyring_from_secrets(TEST_KEY, OTHER_SEAL_KEY, "wrong").active_signer.public
    wrong_pub.write_text(wrong + "\n")
    result = cli(
        "audit", str(complete), "--public-key", str(wrong_pub), "--json", home=home,
        GOVERN_LEDGER_KEY=TEST_KEY,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    report = json.loads(result.stdout)["ledger"]
    assert report["mode"] == "hmac" and report["damage"]["kind"] == "wrong key", report
    # The right seal key with a wrong HMAC key: the HMAC check still applies, and fails.
    hmac = cli(
        "audit", str(complete), "--public-key", str(pub_file), "--json", home=home,
        GOVERN_LEDGER_KEY="66" * 32,
    )  # fmt: skip
    assert hmac.returncode == 1, hmac.stdout
    report = json.loads(hmac.stdout)["ledger"]
    assert report["mode"] == "hmac" and report["damage"]["kind"] == "wrong key", report


# --- 5. an unfinished run continues with the settings it started with ------------------------


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--limit", "5", f"5 items (it started with {ITEMS})"),
        ("--seed", "7", "seed 7 (it started with 0)"),
        (
            "--model",
            "sim/strong",
            "models consul=sim/strong, senator=sim/strong, tribune=sim/strong (it started with "
            "consul=sim/medium, senator=sim/medium, tribune=sim/medium)",
        ),
    ],
)
def test_5_out_on_an_unfinished_run_refuses_other_settings(
    cli, interrupted: SimpleNamespace, tmp_path: Path, home: Path, option: str, value: str,
    named: str,
) -> None:  # fmt: skip
    folder = copy_of(interrupted.folder, tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    args = [a for a in interrupted.args]
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    result = cli("run", *args, "--out", str(folder), home=home, **TEST_KEYS)
    assert result.returncode == 2, result.stderr
    assert "holds an unfinished run started with other settings" in result.stderr
    assert named in result.stderr, result.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_5_resume_takes_no_setting_but_those_that_change_no_result(
    cli, interrupted: SimpleNamespace, tmp_path: Path, home: Path
) -> None:
    folder = copy_of(interrupted.folder, tmp_path)
    before = (folder / "ledger.jsonl").read_bytes()
    result = cli("run", "--resume", str(folder), "--limit", "3", home=home, **TEST_KEYS)
    assert result.returncode == 2, result.stderr
    assert "only --concurrency, --key-file, --fsync, --timeout and --deadline" in result.stderr
    assert (folder / "ledger.jsonl").read_bytes() == before


# --- 6. hostile run folders: exit 1 or 2, never 70, never a hang -----------------------------


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_6_ledger_head_that_is_no_regular_file(
    complete: Path, tmp_path: Path, home: Path, kind: str
) -> None:
    folder = copy_of(complete, tmp_path)
    head = folder / "ledger.head"
    head.unlink()
    if kind == "fifo":
        os.mkfifo(head, 0o600)
    else:
        head.symlink_to("/dev/zero")
    try:
        result = govern("audit", str(folder), home=home, timeout=30, **TEST_KEYS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`govern audit` hung on a ledger.head that is {kind}")
    assert result.returncode == 1, result.stdout + result.stderr
    assert says(result, "bad seal: ledger.head is damaged"), result.stdout
    no_traceback(result)


@pytest.mark.parametrize("text", ['{"seq": Infinity}', '{"seq": 1e999}', DEEP])
def test_6_damaged_ledger_head(cli, complete: Path, tmp_path: Path, home: Path, text: str) -> None:
    folder = copy_of(complete, tmp_path)
    (folder / "ledger.head").write_text(text)
    result = cli("audit", str(folder), home=home, **TEST_KEYS)
    assert result.returncode == 1, result.stdout + result.stderr
    assert says(result, "bad seal: ledger.head is damaged"), result.stdout
    no_traceback(result)


@pytest.mark.parametrize("tree_size", ["deep", "62", None, 0, -1, 1.5, True])
def test_6_since_a_damaged_head_file_is_a_usage_error(
    cli, complete: Path, witnessed: Path, tmp_path: Path, home: Path, tree_size: Any
) -> None:
    head = tmp_path / "earlier.head.json"
    if tree_size == "deep":
        head.write_text(DEEP)
    else:
        data = json.loads(witnessed.read_text())
        head.write_text(json.dumps({**data, "tree_size": tree_size}))
    result = cli("audit", str(complete), "--since", str(head), home=home, **TEST_KEYS)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not a head file" in result.stderr, result.stderr
    no_traceback(result)


def test_6_deeply_nested_results_line_at_resume_is_dropped(
    cli, interrupted: SimpleNamespace, tmp_path: Path, home: Path
) -> None:
    folder = copy_of(interrupted.folder, tmp_path)
    baseline = read_previous(folder, GENUINE).dropped
    with (folder / "results.jsonl").open("a") as handle:
        handle.write(DEEP + "\n")
    result = govern("run", "--resume", str(folder), home=home, **TEST_KEYS)
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    assert the_resume_entry(folder)["dropped_results"] == baseline + 1
    assert sorted(set(result_ids(folder))) == sorted(result_ids(folder))
    assert len(result_ids(folder)) == ITEMS
    audit = cli("audit", str(folder), home=home, **TEST_KEYS)
    assert audit.returncode == 0, audit.stdout


def test_6_deeply_nested_manifest_json_at_resume(
    cli, interrupted: SimpleNamespace, tmp_path: Path, home: Path
) -> None:
    folder = copy_of(interrupted.folder, tmp_path)
    (folder / "manifest.json").write_text(DEEP)
    result = cli("run", "--resume", str(folder), home=home, **TEST_KEYS)
    assert result.returncode == 2, result.stderr
    assert "is not a run folder made by `govern run`" in result.stderr
    no_traceback(result)


@pytest.mark.parametrize("how", ["--file", "GOVERN_KEY_FILE"])
def test_6_deeply_nested_key_file(cli, tmp_path: Path, home: Path, how: str) -> None:
    path = tmp_path / "keys.json"
    _write_private_text(path, DEEP)
    if how == "--file":
        result = cli("keys", "public", "--file", str(path), home=home)
    else:
        result = cli("keys", "public", home=home, GOVERN_KEY_FILE=str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(path) in result.stderr and "not JSON" in result.stderr, result.stderr
    no_traceback(result)


@pytest.mark.parametrize("mode", ["plain", "--public-key", "--explain", "--prove"])
@pytest.mark.parametrize("body", [None, [1, 2], "seal"], ids=["null", "list", "string"])
def test_6_seal_whose_body_is_not_a_mapping(
    cli, complete: Path, tmp_path: Path, home: Path, pub_file: Path, body: Any, mode: str
) -> None:
    folder = copy_of(complete, tmp_path)
    remac_seal_body(folder / "ledger.jsonl", body)
    seal_at = len(entries(folder)) - 1
    keys: dict[str, str] = {} if mode == "--public-key" else TEST_KEYS
    extra = {
        "plain": (),
        "--public-key": ("--public-key", str(pub_file)),
        "--explain": ("--explain",),
        "--prove": ("--prove", "5"),
    }[mode]
    result = cli("audit", str(folder), *extra, home=home, **keys)
    no_traceback(result)
    if mode == "--prove":  # no intact seal covers entry 5 any more
        assert result.returncode == 2, result.stdout + result.stderr
        assert "not covered by a seal" in result.stderr, result.stderr
    else:
        assert result.returncode == 1, result.stdout + result.stderr
        assert says(result, f"edited at entry {seal_at}: the seal's body is not a mapping")


# --- 7. fields of the wrong type -------------------------------------------------------------


@pytest.mark.parametrize(
    "changes", [{"active": [1]}, {"signing_active": {}}, {"active": 5}, {"signing_active": [1]}]
)
def test_7_key_file_naming_its_active_key_with_a_wrong_type(
    cli, tmp_path: Path, home: Path, changes: dict[str, Any]
) -> None:
    control = write_key_file(tmp_path / "control.json")  # the same file unchanged is sound
    assert cli("keys", "public", "--file", str(control), home=home).returncode == 0
    path = write_key_file(tmp_path / "keys.json", **changes)
    result = cli("keys", "public", "--file", str(path), home=home)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"key file {path} is damaged" in result.stderr, result.stderr
    no_traceback(result)


@pytest.mark.parametrize(
    ("name", "value"),
    [("limit", "5"), ("concurrency", 1.5), ("seed", -1), ("limit", 0), ("seed", True)],
)
def test_7_resume_refuses_a_recorded_request_of_wrong_types(
    cli, interrupted: SimpleNamespace, tmp_path: Path, home: Path, name: str, value: Any
) -> None:
    folder = copy_of(interrupted.folder, tmp_path)
    path = folder / "manifest.json"
    recorded = json.loads(path.read_text())
    recorded["request"][name] = value
    path.write_text(json.dumps(recorded))
    ledger = (folder / "ledger.jsonl").read_bytes()
    result = cli("run", "--resume", str(folder), home=home, **TEST_KEYS)
    assert result.returncode == 2, result.stderr
    assert f"manifest.json is damaged: 'request.{name}'" in result.stderr, result.stderr
    assert (folder / "ledger.jsonl").read_bytes() == ledger
    no_traceback(result)


# --- 8. key file links, CRLF, oversized key lists, the first line of a failed audit ----------


def test_8_rotate_through_a_symlink_updates_the_target(cli, tmp_path: Path, home: Path) -> None:
    real = tmp_path / "real" / "keys.json"
    assert cli("keys", "init", "--file", str(real), home=home).returncode == 0
    link = tmp_path / "link.json"
    link.symlink_to(real)
    result = cli("keys", "rotate", "--file", str(link), home=home)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and link.resolve() == real.resolve()
    ring = read_key_file(real)
    assert len(ring.keys) == 2 and len(ring.signers) == 2
    assert oct(real.stat().st_mode & 0o777) == oct(0o600)
    leftovers = {p.name for p in real.parent.iterdir()} - {"keys.json"}
    assert not leftovers, leftovers


def test_8_a_crlf_ledger_fails_the_audit(
    cli, complete: Path, tmp_path: Path, home: Path, pub_file: Path
) -> None:
    folder = copy_of(complete, tmp_path)
    ledger = folder / "ledger.jsonl"
    ledger.write_bytes(ledger.read_bytes().replace(b"\n", b"\r\n"))
    for keys, extra in ((TEST_KEYS, ()), ({}, ("--public-key", str(pub_file)))):
        result = cli("audit", str(folder), *extra, home=home, **keys)
        assert result.returncode == 1, result.stdout
        assert says(result, "edited at entry 0"), result.stdout


def test_8_an_oversized_trusted_keys_file_is_a_usage_error(
    cli, complete: Path, tmp_path: Path, home: Path
) -> None:
    path = tmp_path / "trusted.txt"
    comment = "# " + "x" * 998 + "\n"
    path.write_text(f"{PUBLIC} genuine\n" + comment * 70)  # > 64 KiB; cut anywhere, it parses
    assert path.stat().st_size > 1 << 16
    result = cli("audit", str(complete), "--trusted-keys", str(path), home=home)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "too large" in result.stderr, result.stderr
    # The same keys in a file under the limit pass: only the size is refused.
    small = tmp_path / "small.txt"
    small.write_text(f"{PUBLIC} genuine\n" + comment * 10)
    passed = cli("audit", str(complete), "--trusted-keys", str(small), home=home)
    assert passed.returncode == 0, passed.stdout + passed.stderr


def test_8_when_only_the_files_fail_the_first_line_says_not_intact(
    cli, complete: Path, tmp_path: Path, home: Path
) -> None:
    folder = copy_of(complete, tmp_path)
    path = folder / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    record = json.loads(lines[1])
    record["correct"] = not record.get("correct")
    lines[1] = json.dumps(record) + "\n"
    path.write_text("".join(lines))
    result = cli("audit", str(folder), home=home, **TEST_KEYS)
    assert result.returncode == 1, result.stdout
    first = result.stdout.splitlines()[0]
    assert first.startswith("NOT INTACT"), result.stdout
    assert says(result, "intact: ")  # the ledger itself is intact: only the files fail
    assert "files: results.jsonl line 2" in result.stdout
