"""The ledger's trust model, finding by finding: what a verifier holding only outside keys
must refuse (a ledger cut at a periodic seal, a forged or rewritten ledger, files swapped in
the run folder, seals signed with anything derived from the HMAC secret), how keys are read
and written, and RFC 9162 consistency proofs from `govern audit --write-head` / `--since`.

Each test names the finding it guards. Runs made with `govern run` are module-scoped and
copied before any tampering, so the file stays quick.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govern.ledger.binding import folder_digests
from govern.ledger.format import encode, head_statement, parse
from govern.ledger.keys import (
    Keyring,
    LedgerKeyError,
    init_key_file,
    key_id,
    keyring_from_secrets,
    public_key_hex,
    read_key_file,
)
from govern.ledger.merkle import (
    consistency_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
)
from govern.ledger.verifier import verify
from govern.ledger.writer import LedgerWriter, head_path
from tests.conftest import (
    ROOT,
    TEST_KEY,
    TEST_KEYS,
    TEST_SEAL_KEY,
    signalled_run,
    write_key_file,
)
from tests.conftest import run_cli as govern

GENUINE = keyring_from_secrets(TEST_KEY, TEST_SEAL_KEY, "test")  # the keys `govern run` uses here
PUBLIC = GENUINE.active_signer.public  # what an outside verifier holds
TRUSTED = {PUBLIC: "genuine"}
FORGER_KEYS = {"GOVERN_LEDGER_KEY": "66" * 32, "GOVERN_SIGNING_KEY": "99" * 32}
SAMPLE = ROOT / "tasks" / "gsm8k_sample.jsonl"
SEALS = (10, 20, 29)  # where write_ledger's seals fall: periodic, periodic, closing


# --- helpers --------------------------------------------------------------------------------


def says(result: subprocess.CompletedProcess[str], verdict: str) -> bool:
    """The ledger's verdict (a line of the audit's output) starts with ``verdict``."""
    return any(line.startswith(verdict) for line in result.stdout.splitlines())


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr


def make_run(out: Path, home: Path, *extra: str, **env: str) -> Path:
    result = govern(
        "run",
        "manifests/senate.yaml",
        "--task",
        "gsm8k",
        "--limit",
        "3",
        "--out",
        str(out),
        "--data",
        str(SAMPLE),
        *extra,
        home=home,
        **env,
    )
    assert result.returncode == 0, result.stderr
    return out


def write_ledger(
    folder: Path, *, ring: Keyring = GENUINE, run: str = "run-a", reason: str = "complete"
) -> Path:
    """Header 0, seals at 10 and 20 (periodic), the (empty) folder's files at 28 and the
    closing seal at 29: thirty entries, as a run writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ledger.jsonl"
    writer = LedgerWriter.create(path, ring, run, {"institution": "senate"}, seal_every=10)
    for n in range(25):
        writer.append("transition", "engine", {"item": f"i{n}", "decision": "pass"})
    writer.append("files", "govern", {"files": folder_digests(folder)})
    writer.close(reason)
    return path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def point_head_at(path: Path, seal_line: bytes) -> None:
    """Rewrite ledger.head to name this seal, as anyone editing the folder would."""
    seal = parse(seal_line.rstrip(b"\n"))
    head = {"run": seal["run"], "seq": seal["seq"], **seal["body"]}
    head_path(path).write_text(json.dumps(head, indent=2, sort_keys=True) + "\n")


def cut_after(path: Path, seq: int) -> None:
    lines = lines_of(path)
    path.write_bytes(b"".join(lines[: seq + 1]))
    point_head_at(path, lines[seq])


def remac(line: bytes, secret: bytes, **body: Any) -> bytes:
    """The line with its body changed and a correct MAC (a holder of the HMAC key)."""
    entry = parse(line.rstrip(b"\n"))
    entry.pop("mac")
    entry["body"] = {**entry["body"], **body}
    return encode(entry, secret)[0] + b"\n"


def hmac_secret(ring: Keyring = GENUINE) -> bytes:
    return ring.active_key.secret


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with no key file: every key a test uses is given explicitly."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def pub_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The genuine seal public key, kept outside every run folder."""
    path = tmp_path_factory.mktemp("outside") / "genuine.pub"
    path.write_text(PUBLIC + "\n")
    return path


@pytest.fixture(scope="module")
def run_a(tmp_path_factory: pytest.TempPathFactory, home: Path) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "a", home, **TEST_KEYS)


@pytest.fixture(scope="module")
def run_b(tmp_path_factory: pytest.TempPathFactory, home: Path) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "b", home, **TEST_KEYS)


@pytest.fixture(scope="module")
def forged_run(tmp_path_factory: pytest.TempPathFactory, home: Path) -> Path:
    """A whole run made by someone else, with their own HMAC and seal keys."""
    return make_run(tmp_path_factory.mktemp("runs") / "forged", home, **FORGER_KEYS)


def copy_of(run: Path, tmp_path: Path, name: str = "copy") -> Path:
    return Path(shutil.copytree(run, tmp_path / name))


# --- 1. a ledger cut at a periodic seal is not a closed ledger ------------------------------


@pytest.mark.parametrize("seal", SEALS[:2])
def test_1_ledger_cut_at_a_periodic_seal_is_unsealed(tmp_path: Path, seal: int) -> None:
    path = write_ledger(tmp_path)
    cut_after(path, seal)
    for report in (verify(path, trusted=TRUSTED), verify(path, GENUINE)):
        assert not report.complete, report.summary()
        assert report.closed_as is None
        assert report.damage is not None and report.damage.kind == "unsealed"
        assert report.entries == seal + 1


def test_1_cli_refuses_a_ledger_cut_at_a_periodic_seal(
    cli, tmp_path: Path, home: Path, pub_file: Path
) -> None:
    path = write_ledger(tmp_path / "run")
    whole = cli("audit", str(path.parent), "--public-key", str(pub_file), home=home)
    assert whole.returncode == 0, whole.stdout  # the control: uncut, it passes
    cut_after(path, SEALS[1])
    result = cli("audit", str(path.parent), "--public-key", str(pub_file), home=home)
    assert result.returncode == 1, result.stdout
    assert says(result, "unsealed"), result.stdout
    hmac = cli("audit", str(path.parent), home=home, **TEST_KEYS)
    assert hmac.returncode == 1 and says(hmac, "unsealed"), hmac.stdout


@pytest.mark.parametrize(
    ("closed_as", "seal", "changes"),
    [
        ("complete", SEALS[1], {"closing": True, "reason": "complete"}),  # periodic -> closing
        ("complete", SEALS[1], {"closing": True}),
        ("complete", SEALS[0], {"closing": True, "reason": "complete"}),
        ("interrupted", SEALS[2], {"reason": "complete"}),  # interrupted -> complete
        ("complete", SEALS[2], {"reason": "interrupted"}),
        ("halted", SEALS[2], {"reason": "crashed"}),
        ("complete", SEALS[2], {"closing": False, "reason": None}),  # closing -> periodic
    ],
)
def test_1_changing_closing_or_reason_breaks_the_signature(
    tmp_path: Path, closed_as: str, seal: int, changes: dict[str, Any]
) -> None:
    path = write_ledger(tmp_path, reason=closed_as)
    lines = lines_of(path)[: seal + 1]
    lines[seal] = remac(lines[seal], hmac_secret(), **changes)  # MAC right, signature stale
    path.write_bytes(b"".join(lines))
    point_head_at(path, lines[seal])
    for report in (verify(path, trusted=TRUSTED), verify(path, GENUINE)):
        assert report.damage is not None, report.summary()
        assert (report.damage.kind, report.damage.seq) == ("bad seal", seal), report.summary()
        assert not report.complete


# --- 2. no trust from inside the folder ------------------------------------------------------


def test_2_audit_without_any_key_proves_nothing(run_a: Path, tmp_path: Path) -> None:
    (tmp_path / ".config").mkdir()  # an empty config folder: no key file
    # A key file planted in the run folder is no key: the audit must not look there.
    planted = copy_of(run_a, tmp_path)
    init_key_file(planted / "ledger-keys.json")
    for target in (run_a, planted):
        result = govern("audit", str(target), home=tmp_path)
        assert result.returncode == 1, result.stdout
        assert "proves nothing" in result.stdout
        assert "NOT VERIFIED" in result.stdout
        no_traceback(result)


def test_2_wholly_forged_run_with_the_forgers_keys_is_wrong_key(
    cli, forged_run: Path, run_a: Path, home: Path, pub_file: Path
) -> None:
    control = cli("audit", str(run_a), "--public-key", str(pub_file), home=home)
    assert control.returncode == 0, control.stdout
    # In its own eyes the forgery is perfect...
    own = cli("audit", str(forged_run), home=home, **FORGER_KEYS)
    assert own.returncode == 0, own.stdout
    # ...but not to a verifier holding the genuine public key, or the genuine HMAC key.
    result = cli("audit", str(forged_run), "--public-key", str(pub_file), home=home)
    assert result.returncode == 1 and says(result, "wrong key"), result.stdout
    hmac = cli("audit", str(forged_run), home=home, **TEST_KEYS)
    assert hmac.returncode == 1 and says(hmac, "wrong key at entry 0"), hmac.stdout


@pytest.mark.parametrize(
    "bad", ["zz" * 32, "5e" * 8, "5e" * 15, "0x" + "5e" * 32, "", "5e" * 31 + "5"]
)
def test_2_malformed_env_key_is_a_usage_error_never_a_fallback(
    cli, run_a: Path, tmp_path: Path, bad: str
) -> None:
    # A usable key file is right there: falling back to it would hide the mistake.
    init_key_file(tmp_path / ".config" / "govern" / "ledger-keys.json")
    result = cli("audit", str(run_a), home=tmp_path, GOVERN_LEDGER_KEY=bad)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "GOVERN_LEDGER_KEY" in result.stderr
    no_traceback(result)


@pytest.mark.parametrize("option", ["--public-key", "--trusted-keys", "--key-file", "symlink"])
def test_2_keys_from_inside_the_run_folder_are_refused(
    cli, run_a: Path, tmp_path: Path, home: Path, option: str
) -> None:
    folder = copy_of(run_a, tmp_path)
    if option == "--key-file":
        inside = folder / "keys.json"
        init_key_file(inside)
    else:
        inside = folder / "ledger.pub"
        inside.write_text(PUBLIC + "\n")
    if option == "symlink":  # a path outside that leads inside
        link = tmp_path / "outside.pub"
        link.symlink_to(inside)
        option, inside = "--public-key", link
    result = cli("audit", str(folder), option, str(inside), home=home)
    assert result.returncode == 2, result.stdout
    assert "inside the run folder" in result.stderr
    no_traceback(result)


# --- 3. the run folder's files are bound to the ledger --------------------------------------


def _other_ledger(folder: Path, other: Path) -> str:
    for name in ("ledger.jsonl", "ledger.head"):
        shutil.copyfile(other / name, folder / name)
    return "results.jsonl"


def _edit_results_line(folder: Path, other: Path) -> str:
    path = folder / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    record = json.loads(lines[1])
    record["correct"] = not record.get("correct")
    lines[1] = json.dumps(record) + "\n"
    path.write_text("".join(lines))
    return "results.jsonl line 2"


def _edit_file(name: str):
    def edit(folder: Path, other: Path) -> str:
        path = folder / name
        path.write_bytes(path.read_bytes().replace(b"a", b"b", 1))
        return name

    return edit


def _remove_graph(folder: Path, other: Path) -> str:
    (folder / "graph.mmd").unlink()
    return "graph.mmd is bound by the ledger but missing"


def _remove_results(folder: Path, other: Path) -> str:
    (folder / "results.jsonl").unlink()
    return "results.jsonl is bound by the ledger but missing"


def _swap_summary(folder: Path, other: Path) -> str:  # a genuine summary, of another run
    shutil.copyfile(other / "summary.json", folder / "summary.json")
    return "summary.json"


TAMPERINGS = {
    "other run's ledger": _other_ledger,
    "edited results line": _edit_results_line,
    "edited summary.json": _edit_file("summary.json"),
    "edited manifest.json": _edit_file("manifest.json"),
    "edited graph.mmd": _edit_file("graph.mmd"),
    "removed graph.mmd": _remove_graph,
    "removed results.jsonl": _remove_results,
    "other run's summary.json": _swap_summary,
}


def test_3_a_file_added_beside_the_run_is_named_but_not_part_of_it(
    cli, run_a: Path, tmp_path: Path, home: Path
) -> None:
    folder = copy_of(run_a, tmp_path)
    (folder / "notes.txt").write_text("my notes\n")
    result = cli("audit", str(folder), home=home, **TEST_KEYS)
    assert result.returncode == 0, result.stdout
    assert "note: notes.txt is not bound to the ledger" in result.stdout


@pytest.mark.parametrize("mode", ["hmac", "public key"])
def test_3_untampered_copy_audits_clean(
    cli, run_a: Path, tmp_path: Path, home: Path, pub_file: Path, mode: str
) -> None:
    """The control for the tamperings below: a plain copy passes in both modes."""
    folder = copy_of(run_a, tmp_path)
    keys: dict[str, str] = TEST_KEYS if mode == "hmac" else {}
    extra = () if mode == "hmac" else ("--public-key", str(pub_file))
    result = cli("audit", str(folder), *extra, home=home, **keys)
    assert result.returncode == 0, result.stdout
    assert "results.jsonl, summary.json match the ledger" in result.stdout


@pytest.mark.parametrize("mode", ["hmac", "public key"])
@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_3_tampered_run_folder_fails_naming_the_file(
    cli,
    run_a: Path,
    run_b: Path,
    tmp_path: Path,
    home: Path,
    pub_file: Path,
    tampering: str,
    mode: str,
) -> None:
    folder = copy_of(run_a, tmp_path)
    named = TAMPERINGS[tampering](folder, run_b)
    keys: dict[str, str] = TEST_KEYS if mode == "hmac" else {}
    extra = () if mode == "hmac" else ("--public-key", str(pub_file))
    result = cli("audit", str(folder), *extra, home=home, **keys)
    assert result.returncode == 1, result.stdout
    assert f"files: {named}" in result.stdout, result.stdout
    # The ledger itself is intact: it is the binding that fails.
    assert says(result, "intact: "), result.stdout


# --- 4. the HMAC secret cannot sign seals ----------------------------------------------------


def _old_hkdf(secret: bytes) -> Ed25519PrivateKey:  # how seal keys were derived before
    raw = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"govern ledger seal signing key v1"
    ).derive(secret)
    return Ed25519PrivateKey.from_private_bytes(raw)


DERIVATIONS = {
    "old HKDF": _old_hkdf,
    "HKDF, other info": lambda s: Ed25519PrivateKey.from_private_bytes(
        HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"seal").derive(s)
    ),
    "sha256": lambda s: Ed25519PrivateKey.from_private_bytes(hashlib.sha256(s).digest()),
    "raw secret": lambda s: Ed25519PrivateKey.from_private_bytes(s[:32]),
    "any other key": lambda s: Ed25519PrivateKey.generate(),
}


@pytest.mark.parametrize("claims", ["its own public key", "the genuine public key"])
@pytest.mark.parametrize("derivation", list(DERIVATIONS))
def test_4_hmac_key_holder_cannot_forge_a_seal(
    tmp_path: Path, derivation: str, claims: str
) -> None:
    forger = DERIVATIONS[derivation](hmac_secret())
    path = write_ledger(tmp_path, reason="interrupted")
    lines = lines_of(path)
    seal = parse(lines[SEALS[2]].rstrip(b"\n"))
    body = {**seal["body"], "reason": "complete"}
    if claims == "its own public key":
        body["public_key"] = public_key_hex(forger.public_key())
    body["signature"] = forger.sign(head_statement(seal["run"], body)).hex()
    lines[SEALS[2]] = remac(lines[SEALS[2]], hmac_secret(), **body)
    path.write_bytes(b"".join(lines))
    point_head_at(path, lines[SEALS[2]])
    expected = "wrong key" if claims == "its own public key" else "bad seal"
    for report in (verify(path, trusted=TRUSTED), verify(path, GENUINE)):
        assert report.damage is not None, report.summary()
        assert (report.damage.kind, report.damage.seq) == (expected, SEALS[2])
        assert not report.complete


def test_4_a_keyring_with_only_an_hmac_key_cannot_write_a_ledger(tmp_path: Path) -> None:
    hmac_only = keyring_from_secrets(TEST_KEY, None, "GOVERN_LEDGER_KEY")
    with pytest.raises(LedgerKeyError, match="GOVERN_SIGNING_KEY"):
        LedgerWriter.create(tmp_path / "ledger.jsonl", hmac_only, "r", {})


def test_4_keys_init_makes_two_separate_secrets(tmp_path: Path, home: Path) -> None:
    path = tmp_path / "keys.json"
    assert govern("keys", "init", "--file", str(path), home=home).returncode == 0
    data = json.loads(path.read_text())
    (hmac_entry,), (seal_entry,) = data["keys"], data["signing"]
    hmac, seed = bytes.fromhex(hmac_entry["secret"]), bytes.fromhex(seal_entry["secret"])
    assert len(hmac) >= 16 and len(seed) == 32 and hmac != seed
    assert data["active"] == hmac_entry["id"] == key_id(hmac)
    printed = govern("keys", "public", "--file", str(path), home=home)
    assert printed.returncode == 0, printed.stderr
    public = printed.stdout.strip()
    assert public == public_key_hex(Ed25519PrivateKey.from_private_bytes(seed).public_key())
    assert public == seal_entry["public"] == data["signing_active"]
    derived = {public_key_hex(d(hmac).public_key()) for n, d in DERIVATIONS.items()}
    assert public not in derived
    assert read_key_file(path).active_signer.public == public


# --- 5. a run cut by a signal audits as interrupted, and resumes -----------------------------


def _slow_manifest(tmp_path: Path) -> Path:
    text = (ROOT / "manifests" / "senate.yaml").read_text()
    path = tmp_path / "slow_senate.yaml"
    path.write_text(text + "simulator:\n  sim/medium: {latency_ms: 20}\n")
    return path


RUN_ARGS = ("--task", "gsm8k", "--limit", "6", "--concurrency", "1")


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_5_signalled_run_is_interrupted_then_resumes_to_complete(
    cli, tmp_path: Path, home: Path, pub_file: Path, signum: int, status: int
) -> None:
    out = tmp_path / "run"
    args = [str(_slow_manifest(tmp_path)), *RUN_ARGS, "--data", str(SAMPLE)]
    stopped = signalled_run(args, out, signum, home=home, **TEST_KEYS)
    stderr = stopped.stderr
    assert stopped.returncode == status, stderr
    assert "interrupted" in stderr and "--resume" in stderr
    last = parse(lines_of(out / "ledger.jsonl")[-1].rstrip(b"\n"))
    assert last["kind"] == "seal" and last["body"]["closing"] is True
    assert last["body"]["reason"] == "interrupted"
    done = len((out / "results.jsonl").read_text().splitlines())
    assert 1 <= done < 6, "the run was not cut part way"

    head = tmp_path / "interrupted.head.json"
    for extra in ((), ("--public-key", str(pub_file))):
        keys: dict[str, str] = {} if extra else TEST_KEYS
        audit = cli("audit", str(out), *extra, "--write-head", str(head), home=home, **keys)
        assert audit.returncode == 1, audit.stdout
        assert "closed by a seal as interrupted: the run is not complete" in audit.stdout
        no_traceback(audit)

    resumed = govern("run", "--resume", str(out), home=home, **TEST_KEYS)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done} of 6 items were finished" in resumed.stderr
    assert len((out / "results.jsonl").read_text().splitlines()) == 6
    for extra in ((), ("--public-key", str(pub_file))):
        keys = {} if extra else TEST_KEYS
        audit = cli("audit", str(out), *extra, "--since", str(head), home=home, **keys)
        assert audit.returncode == 0, audit.stdout
        assert "the run is complete" in audit.stdout
        assert f"since {head.name}: consistent" in audit.stdout


# --- 6. where keys come from -----------------------------------------------------------------


def _key_file(home: Path) -> Path:
    return home / ".config" / "govern" / "ledger-keys.json"


@pytest.mark.parametrize("bad", ["zz" * 32, ""])
def test_6_malformed_env_key_stops_a_run_and_creates_no_key_file(tmp_path: Path, bad: str) -> None:
    out = tmp_path / "run"
    result = govern(
        "run", "manifests/senate.yaml", "--limit", "1", "--out", str(out), "--data", str(SAMPLE),
        home=tmp_path, GOVERN_LEDGER_KEY=bad,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "GOVERN_LEDGER_KEY" in result.stderr
    no_traceback(result)
    assert not _key_file(tmp_path).exists()
    assert not (tmp_path / ".config").exists()
    assert not (out / "ledger.jsonl").exists()


def test_6_malformed_signing_key_stops_a_run(tmp_path: Path) -> None:
    result = govern(
        "run", "manifests/senate.yaml", "--limit", "1", "--out", str(tmp_path / "run"),
        "--data", str(SAMPLE), home=tmp_path, GOVERN_LEDGER_KEY=TEST_KEY,
        GOVERN_SIGNING_KEY="a7" * 16,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "GOVERN_SIGNING_KEY" in result.stderr
    no_traceback(result)
    assert not _key_file(tmp_path).exists()


def test_6_first_run_without_keys_creates_them_and_says_so(cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = govern(
        "run", "manifests/senate.yaml", "--limit", "1", "--out", str(out),
        "--data", str(SAMPLE), home=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    path = _key_file(tmp_path)
    assert f"created ledger keys at {path}" in result.stderr
    assert "created ledger keys" not in result.stdout
    data = json.loads(path.read_text())
    for secret in (data["keys"][0]["secret"], data["signing"][0]["secret"]):
        assert secret not in result.stderr + result.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    head = json.loads((out / "ledger.head").read_text())
    assert head["public_key"] == read_key_file(path).active_signer.public
    audit = cli("audit", str(out), home=tmp_path)  # the default key file, found again
    assert audit.returncode == 0, audit.stdout
    public = cli("keys", "public", home=tmp_path)
    assert public.stdout.strip() == head["public_key"]


def test_6_keys_public_honours_the_env_signing_key(tmp_path: Path, run_a: Path) -> None:
    init_key_file(_key_file(tmp_path))  # a key file with other keys is present
    file_public = read_key_file(_key_file(tmp_path)).active_signer.public
    result = govern("keys", "public", home=tmp_path, **TEST_KEYS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == PUBLIC != file_public
    # ...and it is the key that signed a run made with that environment.
    assert json.loads((run_a / "ledger.head").read_text())["public_key"] == PUBLIC


def test_6_env_signing_key_alone_is_refused_not_ignored(cli, tmp_path: Path) -> None:
    """GOVERN_SIGNING_KEY without GOVERN_LEDGER_KEY once fell silently to the key file's
    seal key: `keys public` printed, and runs signed with, a key other than the one set."""
    init_key_file(_key_file(tmp_path))
    file_public = read_key_file(_key_file(tmp_path)).active_signer.public
    result = cli("keys", "public", home=tmp_path, GOVERN_SIGNING_KEY=TEST_SEAL_KEY)
    assert result.returncode == 2, result.stdout
    assert file_public not in result.stdout
    assert "GOVERN_SIGNING_KEY" in result.stderr and "GOVERN_LEDGER_KEY" in result.stderr
    run = cli(
        "run", "manifests/senate.yaml", "--limit", "1", "--out", str(tmp_path / "run"),
        "--data", str(SAMPLE), home=tmp_path, GOVERN_SIGNING_KEY=TEST_SEAL_KEY,
    )  # fmt: skip
    assert run.returncode == 2 and "GOVERN_SIGNING_KEY" in run.stderr, run.stderr
    assert not (tmp_path / "run" / "ledger.jsonl").exists()


# --- 7. key files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "secret"), [("hmac", ""), ("hmac", "ab"), ("seal", ""), ("seal", "ab")]
)
def test_7_empty_and_one_byte_secrets_in_a_key_file_are_refused(
    cli, tmp_path: Path, run_a: Path, which: str, secret: str
) -> None:
    read_key_file(write_key_file(tmp_path / "control.json"))  # good secrets: it loads
    path = tmp_path / "keys.json"
    if which == "hmac":
        write_key_file(path, secret, TEST_SEAL_KEY)
    else:
        write_key_file(path, TEST_KEY, secret)
    with pytest.raises(LedgerKeyError):
        read_key_file(path)
    for args in (
        ("audit", str(run_a), "--key-file", str(path)),
        ("keys", "public", "--file", str(path)),
    ):
        result = cli(*args, home=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        assert str(path) in result.stderr
        no_traceback(result)


def _unusable(kind: str, path: Path) -> None:
    if kind == "folder":
        path.mkdir(parents=True)
    elif kind == "fifo":
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path, 0o600)
    else:  # unreadable
        path.parent.mkdir(parents=True, exist_ok=True)
        write_key_file(path, TEST_KEY, TEST_SEAL_KEY)
        os.chmod(path, 0)


UNUSABLE = [
    "folder",
    "fifo",
    pytest.param(
        "unreadable",
        marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file"),
    ),
]


@pytest.mark.parametrize("kind", UNUSABLE)
def test_7_unusable_key_file_is_a_usage_error(tmp_path: Path, run_a: Path, kind: str) -> None:
    path = tmp_path / "keys.json"
    _unusable(kind, path)
    for args in (
        ("audit", str(run_a), "--key-file", str(path)),
        ("keys", "public", "--file", str(path)),
        ("keys", "rotate", "--file", str(path)),
        ("keys", "trust", PUBLIC, "--file", str(path)),
    ):
        result = govern(*args, home=tmp_path)
        assert result.returncode == 2, (args, result.stdout + result.stderr)
        assert str(path) in result.stderr
        no_traceback(result)
    if kind == "fifo":
        assert stat.S_ISFIFO(path.stat().st_mode)  # not replaced


@pytest.mark.parametrize("kind", UNUSABLE)
def test_7_unusable_default_key_file_stops_a_run_and_is_not_replaced(
    tmp_path: Path, run_a: Path, kind: str
) -> None:
    path = _key_file(tmp_path)
    _unusable(kind, path)
    result = govern(
        "run", "manifests/senate.yaml", "--limit", "1", "--out", str(tmp_path / "run"),
        "--data", str(SAMPLE), home=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr
    no_traceback(result)
    assert "created ledger keys" not in result.stderr
    audit = govern("audit", str(run_a), home=tmp_path)
    assert audit.returncode == 2 and str(path) in audit.stderr, audit.stdout + audit.stderr
    no_traceback(audit)
    assert not stat.S_ISREG(path.stat().st_mode) or kind == "unreadable"


PREDICTABLE = ("{}.new", "{}.tmp", "{}.partial", "{}~", ".{}.new", ".{}.tmp", ".{}")


def test_7_keys_init_and_rotate_follow_no_planted_symlink(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    path = folder / "keys.json"
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    planted = [folder / pattern.format(path.name) for pattern in PREDICTABLE]
    for link in planted:
        link.symlink_to(victim)
    for action in ("init", "rotate"):
        result = govern("keys", action, "--file", str(path), home=home)
        assert result.returncode == 0, result.stderr
        assert victim.read_text() == "untouched\n"
        assert all(link.is_symlink() and link.resolve() == victim for link in planted)
        assert not path.is_symlink() and stat.S_ISREG(path.lstat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(read_key_file(path).keys) == 2
    leftovers = set(folder.iterdir()) - {path, *planted}
    assert not leftovers, leftovers


def test_7_keys_init_over_a_planted_symlink_refuses(tmp_path: Path, home: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    path = tmp_path / "keys.json"
    path.symlink_to(victim)
    result = govern("keys", "init", "--file", str(path), home=home)
    assert result.returncode == 2 and "already exists" in result.stderr
    assert victim.read_text() == "untouched\n"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere")
    result = govern("keys", "init", "--file", str(dangling), home=home)
    assert result.returncode == 2 and "already exists" in result.stderr
    assert not (tmp_path / "nowhere").exists()


# --- consistency proofs (RFC 9162, 2.1.4) ----------------------------------------------------


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(b"entry %d" % i) for i in range(n)]


def _flip(digest: bytes, at: int, mask: int) -> bytes:
    return digest[:at] + bytes([digest[at] ^ mask]) + digest[at + 1 :]


def test_consistency_proofs_of_the_rfc_example() -> None:
    """RFC 9162 2.1.5: the seven-leaf tree's proofs from sizes 3, 4 and 6."""
    d = _leaves(7)
    g, h = node_hash(d[0], d[1]), node_hash(d[2], d[3])
    i, j = node_hash(d[4], d[5]), d[6]
    k, l_ = node_hash(g, h), node_hash(i, j)
    assert consistency_proof(3, d) == [d[2], d[3], g, l_]
    assert consistency_proof(4, d) == [l_]
    assert consistency_proof(6, d) == [i, j, k]
    assert consistency_proof(7, d) == []
    for m in (3, 4, 6, 7):
        assert verify_consistency(m, 7, root_of(d[:m]), root_of(d), consistency_proof(m, d))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(new_size=st.integers(1, 300), data=st.data())
def test_consistency_proof_property(new_size: int, data: st.DataObject) -> None:
    leaves = _leaves(new_size)
    old_size = data.draw(st.integers(1, new_size), label="old_size")
    old_root, new_root = root_of(leaves[:old_size]), root_of(leaves)
    proof = consistency_proof(old_size, leaves)
    assert verify_consistency(old_size, new_size, old_root, new_root, proof)

    # Any one flipped byte, in a proof element or either root, fails.
    slots = len(proof) + 2
    slot = data.draw(st.integers(0, slots - 1), label="slot")
    at, mask = data.draw(st.integers(0, 31), label="byte"), data.draw(st.integers(1, 255))
    bad_proof, bad_old, bad_new = list(proof), old_root, new_root
    if slot < len(proof):
        bad_proof[slot] = _flip(proof[slot], at, mask)
    elif slot == len(proof):
        bad_old = _flip(old_root, at, mask)
    else:
        bad_new = _flip(new_root, at, mask)
    assert not verify_consistency(old_size, new_size, bad_old, bad_new, bad_proof)

    # A wrong old size fails with the same proof and roots. (A wrong new size need not:
    # the proof of 1 in 66 leaves also fits 65, as RFC 9162's algorithm allows; the new
    # size is bound by the signed head, which check_consistency checks.)
    wrong_old = data.draw(st.integers(0, new_size + 1).filter(lambda m: m != old_size))
    assert not verify_consistency(wrong_old, new_size, old_root, new_root, proof)
    # Dropping or adding an element fails too.
    if proof:
        assert not verify_consistency(old_size, new_size, old_root, new_root, proof[:-1])
    assert not verify_consistency(old_size, new_size, old_root, new_root, [*proof, new_root])


@pytest.fixture(scope="module")
def witnessed(run_a: Path, tmp_path_factory: pytest.TempPathFactory, home: Path) -> Path:
    """The head of run_a, written by `govern audit --write-head` to a file kept outside."""
    head = tmp_path_factory.mktemp("witness") / "a.head.json"
    result = govern("audit", str(run_a), "--write-head", str(head), home=home, **TEST_KEYS)
    assert result.returncode == 0, result.stdout
    return head


def test_write_head_to_stdout_prints_the_head(
    cli, run_a: Path, witnessed: Path, home: Path
) -> None:
    result = cli("audit", str(run_a), "--write-head", "-", home=home, **TEST_KEYS)
    assert result.returncode == 0
    head = json.loads(result.stdout)
    assert head == json.loads(witnessed.read_text())
    sealed = json.loads((run_a / "ledger.head").read_text())
    assert {k: head[k] for k in ("run", "seq", "root", "tree_size", "signature")} == {
        k: sealed[k] for k in ("run", "seq", "root", "tree_size", "signature")
    }
    assert head["closing"] is True and head["reason"] == "complete"
    assert "intact: " in result.stderr  # the verdict goes to stderr


def _extend(ledger: Path) -> None:
    """Continue a ledger closed short of complete, as `govern run --resume` does."""
    writer = LedgerWriter.reopen(ledger, GENUINE, fsync="never")
    for n in range(5):
        writer.append("note", "govern", {"n": n})
    writer.close()


@pytest.mark.parametrize("mode", ["hmac", "public key"])
def test_since_an_extended_ledger_is_consistent(
    cli, run_a: Path, witnessed: Path, tmp_path: Path, home: Path, pub_file: Path, mode: str
) -> None:
    keys: dict[str, str] = TEST_KEYS if mode == "hmac" else {}
    extra = () if mode == "hmac" else ("--public-key", str(pub_file))
    same = cli("audit", str(run_a), *extra, "--since", str(witnessed), home=home, **keys)
    assert same.returncode == 0, same.stdout
    assert f"since {witnessed.name}: consistent" in same.stdout
    path = write_ledger(tmp_path / "run", reason="interrupted")
    head = tmp_path / "interrupted.json"
    cut = cli("audit", str(path.parent), *extra, "--write-head", str(head), home=home, **keys)
    assert cut.returncode == 1 and "interrupted" in cut.stdout, cut.stdout
    _extend(path)
    result = cli("audit", str(path.parent), *extra, "--since", str(head), home=home, **keys)
    assert result.returncode == 0, result.stdout
    assert f"since {head.name}: consistent" in result.stdout


def _rewrite_history(ledger: Path, monkeypatch: pytest.MonkeyPatch, reason: str) -> None:
    """A holder of both genuine keys writes the ledger again with entry 5 changed: same run
    id, same timestamps, every MAC and the seal made afresh, closed as ``reason``."""
    entries = [parse(line.rstrip(b"\n")) for line in lines_of(ledger)]
    entries[5]["body"]["decision"] = "fail"  # a transition nothing else is bound to
    stamps = iter(e["ts"] * 1000 for e in entries)
    ledger.unlink()
    with monkeypatch.context() as patch:
        patch.setattr("govern.ledger.writer.time", SimpleNamespace(time_ns=lambda: next(stamps)))
        writer = LedgerWriter.create(ledger, GENUINE, entries[0]["run"], entries[0]["body"])
        for entry in entries[1:-1]:
            writer.append(entry["kind"], entry["actor"], entry["body"])
        writer.close(reason)


@pytest.mark.parametrize("extended", [False, True])
def test_since_a_rewritten_history_is_inconsistent(
    cli,
    run_a: Path,
    witnessed: Path,
    tmp_path: Path,
    home: Path,
    pub_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    extended: bool,
) -> None:
    folder = copy_of(run_a, tmp_path)
    original = lines_of(folder / "ledger.jsonl")
    # Closed as interrupted when it is to be extended: a complete ledger takes no more entries.
    _rewrite_history(
        folder / "ledger.jsonl", monkeypatch, "interrupted" if extended else "complete"
    )
    rewritten = lines_of(folder / "ledger.jsonl")
    assert len(rewritten) == len(original) and rewritten[:5] == original[:5]
    assert rewritten[5] != original[5]
    if extended:
        _extend(folder / "ledger.jsonl")
    # Without the earlier head, a key holder's rewrite passes: only the witness catches it.
    plain = cli("audit", str(folder), home=home, **TEST_KEYS)
    assert plain.returncode == 0, plain.stdout
    for keys, extra in ((TEST_KEYS, ()), ({}, ("--public-key", str(pub_file)))):
        result = cli("audit", str(folder), *extra, "--since", str(witnessed), home=home, **keys)
        assert result.returncode == 1, result.stdout
        assert f"since {witnessed.name}: INCONSISTENT: rewritten" in result.stdout


def test_since_a_truncated_ledger_is_inconsistent(cli, tmp_path: Path, home: Path) -> None:
    path = write_ledger(tmp_path / "run")
    head = tmp_path / "head.json"
    written = cli("audit", str(path.parent), "--write-head", str(head), home=home, **TEST_KEYS)
    assert written.returncode == 0, written.stdout
    assert json.loads(head.read_text())["tree_size"] == SEALS[2]
    cut_after(path, SEALS[1])
    result = cli("audit", str(path.parent), "--since", str(head), home=home, **TEST_KEYS)
    assert result.returncode == 1, result.stdout
    assert "since head.json: INCONSISTENT: truncated" in result.stdout


def test_since_a_ledger_cut_below_every_seal_is_truncated(
    cli, run_a: Path, witnessed: Path, tmp_path: Path, home: Path
) -> None:
    # A real run of under 1000 entries has one seal, the closing one: cutting anywhere
    # before it leaves none. That is truncation, evidence of tampering, not a usage error
    # (it once exited 2: "the ledger has no seal to compare with the earlier head").
    folder = copy_of(run_a, tmp_path)
    ledger = folder / "ledger.jsonl"
    ledger.write_bytes(b"".join(lines_of(ledger)[:30]))
    result = cli("audit", str(folder), "--since", str(witnessed), home=home, **TEST_KEYS)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"since {witnessed.name}: INCONSISTENT: truncated" in result.stdout


def test_since_a_head_from_the_run_folder_or_an_untrusted_writer_is_refused(
    cli, run_a: Path, forged_run: Path, tmp_path: Path, home: Path
) -> None:
    folder = copy_of(run_a, tmp_path)
    inside = cli(
        "audit", str(folder), "--since", str(folder / "ledger.head"), home=home, **TEST_KEYS
    )
    assert inside.returncode == 2 and "inside the run folder" in inside.stderr
    forged_head = tmp_path / "forged.head.json"
    shutil.copyfile(forged_run / "ledger.head", forged_head)
    result = cli("audit", str(folder), "--since", str(forged_head), home=home, **TEST_KEYS)
    assert result.returncode == 1, result.stdout
    assert "INCONSISTENT: the earlier head: the head is signed by" in result.stdout
