"""`govern audit` and `govern keys` as a user runs them: exit 0 intact, 1 damaged, 2 misuse."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from govern.ledger.keys import key_id
from tests.conftest import ROOT, TEST_KEYS
from tests.conftest import run_cli as govern

KEY = TEST_KEYS


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audited") / "run"
    result = govern(
        "run",
        "manifests/senate.yaml",
        "--limit",
        "3",
        "--out",
        str(out),
        "--data",
        str(ROOT / "tasks" / "gsm8k_sample.jsonl"),
        **KEY,
    )
    assert result.returncode == 0, result.stderr
    return out


def test_an_intact_run_audits_with_exit_0(run_dir: Path) -> None:
    result = govern("audit", str(run_dir), **KEY)
    assert result.returncode == 0 and result.stdout.startswith("intact: ")
    report = json.loads(govern("audit", str(run_dir / "ledger.jsonl"), "--json", **KEY).stdout)
    assert report["ledger"]["intact"] and report["ledger"]["mode"] == "hmac"


def test_a_damaged_ledger_exits_1_naming_the_entry_and_kind(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    lines = (run_dir / "ledger.jsonl").read_text().splitlines()
    lines[4] = lines[4].replace('"parsed":true', '"parsed":false', 1)
    (copy / "ledger.jsonl").write_text("\n".join(lines) + "\n")
    (copy / "ledger.head").write_text((run_dir / "ledger.head").read_text())
    result = govern("audit", str(copy), **KEY)
    assert result.returncode == 1
    assert result.stdout.startswith("edited at entry 4: its MAC does not match its content")


def test_the_wrong_key_exits_1(run_dir: Path) -> None:
    result = govern("audit", str(run_dir), GOVERN_LEDGER_KEY="77" * 32)
    assert result.returncode == 1 and result.stdout.startswith("wrong key at entry 0")


def test_the_public_key_alone_checks_seals_and_proofs(run_dir: Path, tmp_path: Path) -> None:
    public = str(tmp_path / "seal.pub")  # obtained from the writer, kept outside the run folder
    Path(public).write_text(govern("keys", "public", **KEY).stdout)
    result = govern("audit", str(run_dir), "--public-key", public, "--prove", "5")
    assert result.returncode == 0, result.stdout
    assert "seals checked (public key)" in result.stdout
    assert "proof of entry 5: valid" in result.stdout
    proof = json.loads(
        govern("audit", str(run_dir), "--public-key", public, "--prove", "5", "--json").stdout
    )["proof"]
    assert proof["valid"] and proof["seq"] == 5 and proof["audit_path"]


def test_explain_prints_every_agent(run_dir: Path) -> None:
    result = govern("audit", str(run_dir), "--explain", **KEY)
    for agent in ("consul#1", "senator#1", "senator#5", "tribune#1"):
        assert f"\n{agent}" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/run"], "no ledger at /nonexistent/run: give a run folder"),
        (["RUN", "--prove", "99999"], "there is no entry 99999"),
        (["RUN", "--key-file", "/nonexistent/keys.json"], "no key file at /nonexistent/keys.json"),
    ],
)
def test_audit_misuse_exits_2(run_dir: Path, args: list[str], message: str) -> None:
    args = [str(run_dir) if a == "RUN" else a for a in args]
    result = govern("audit", *args, **KEY)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_keys_init_makes_a_private_file_and_never_prints_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    result = govern("keys", "init", "--file", str(path))
    assert result.returncode == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = json.loads(path.read_text())["keys"][0]["secret"]
    assert secret not in result.stdout + result.stderr
    again = govern("keys", "init", "--file", str(path))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert govern("keys", "rotate", "--file", str(path)).returncode == 0
    assert len(json.loads(path.read_text())["keys"]) == 2
    public = govern("keys", "public", "--file", str(path)).stdout.strip()
    assert len(public) == 64 and secret not in public


def test_a_readable_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    assert govern("keys", "init", "--file", str(path)).returncode == 0
    os.chmod(path, 0o644)
    result = govern(
        "run",
        "manifests/senate.yaml",
        "--limit",
        "1",
        "--key-file",
        str(path),
        "--out",
        str(tmp_path / "r"),
    )
    assert result.returncode == 2 and f"chmod 600 {path}" in result.stderr


def test_a_key_file_from_an_earlier_govern_gets_a_seal_key_on_the_next_run(
    tmp_path: Path,
) -> None:
    """Earlier key files held HMAC keys only (the seal key was derived from them): the
    first run adds a separate seal key, says so, and the run audits."""
    path = tmp_path / "config" / "govern" / "ledger-keys.json"
    path.parent.mkdir(parents=True)
    key = {"id": key_id(bytes.fromhex("ab" * 32)), "secret": "ab" * 32}
    old = {"version": 1, "active": key["id"], "keys": [key]}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(old, handle)
    home = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    out = tmp_path / "run"
    result = govern("run", "institutions/bare.yaml", "--task", "gsm8k", "--limit", "1",
                    "--out", str(out), **home)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "added a seal-signing key" in result.stderr
    upgraded = json.loads(path.read_text())
    assert upgraded["keys"] == old["keys"] and len(upgraded["signing"]) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert govern("audit", str(out), **home).returncode == 0
