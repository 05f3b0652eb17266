"""Shared helpers: a small valid institution and a way to collect a file's errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from govern.spec.checks import load_checked
from govern.spec.errors import SpecError, SpecInvalid

ROOT = Path(__file__).resolve().parent.parent

# Line numbers in the error tests refer to this text: keep it stable.
TINY = textwrap.dedent("""\
    id: tiny
    name: Tiny
    era: now
    pattern: gated_pipeline
    history: A small test institution.
    roles:
      - id: writer
        title: Writer
        instructions: Write.
      - id: checker
        title: Checker
        instructions: Check.
    entry: write
    stages:
      - id: write
        kind: draft
        role: writer
        purpose: Write it.
        next: {done: check, unparsable: check}
      - id: check
        kind: review
        role: checker
        purpose: Check it.
        next:
          approve: end
          reject: {to: write, max_visits: 2, exhausted: end}
          unparsable: end
      - id: end
        kind: terminal
    """)


TEST_KEY = "5e" * 32  # a ledger HMAC key for tests only
TEST_SEAL_KEY = "a7" * 32  # a seal-signing key for tests only, a separate secret
TEST_KEYS = {"GOVERN_LEDGER_KEY": TEST_KEY, "GOVERN_SIGNING_KEY": TEST_SEAL_KEY}


@pytest.fixture(autouse=True)
def ledger_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs sign their ledgers with the test keys, never a user's key file; and
    no test is answered from a response cache another test filled (tests of the cache set
    GOVERN_CACHE to a file of their own)."""
    for name, value in TEST_KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GOVERN_CACHE", "off")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder that counts as a project root (reference checks stop here)."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return tmp_path


def spec_errors(path: Path) -> list[SpecError]:
    try:
        load_checked(path)
    except SpecInvalid as exc:
        return exc.errors
    return []


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def clean_environment(**extra: str) -> dict[str, str]:
    """No API keys, no GSM8K location, no user cache or keys: a fresh offline machine.

    The ledger key file lives in runs/.test-config, created on first use as a user's
    would be; GOVERN_LEDGER_KEY is unset unless a test passes it.
    """
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    for name in ("GOVERN_GSM8K", "GOVERN_LEDGER_KEY", "GOVERN_SIGNING_KEY", "GOVERN_KEY_FILE"):
        env.pop(name, None)
    env["XDG_CACHE_HOME"] = str(ROOT / "runs" / ".no-cache")
    env["XDG_CONFIG_HOME"] = str(ROOT / "runs" / ".test-config")
    return {**env, **extra}


def run_cli(
    *args: str, cwd: Path = ROOT, home: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`govern ARGS` in a subprocess, as a user runs it; with ``home``, as a user whose HOME
    and XDG_CONFIG_HOME are there (no key file unless the test makes one)."""
    return govern_process(*args, env=user_environment(home, **env), cwd=cwd)


def govern_process(
    *args: str,
    env: dict[str, str] | None,
    cwd: Path = ROOT,
    timeout: float = 300,
    **popen: Any,
) -> subprocess.CompletedProcess[str]:
    """`govern ARGS` in a subprocess of this Python with exactly ``env``, its output kept."""
    return subprocess.run(
        [sys.executable, "-m", "govern.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        **popen,
    )


def user_environment(home: Path | None = None, **extra: str) -> dict[str, str]:
    """clean_environment, and with ``home`` a user whose HOME and XDG_CONFIG_HOME are there."""
    if home is not None:
        extra = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), **extra}
    return clean_environment(**extra)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """`govern ARGS` in this process (``govern.cli.main``), as a user whose home is ``home``
    and with exactly the keys given: run_cli's exit status and output, without its
    start-up time."""
    from govern.cli import main

    def run(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
        with monkeypatch.context() as patch:
            for name in ("GOVERN_LEDGER_KEY", "GOVERN_SIGNING_KEY", "GOVERN_KEY_FILE"):
                patch.delenv(name, raising=False)
            patch.setenv("HOME", str(home))
            patch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
            for name, value in env.items():
                patch.setenv(name, value)
            capsys.readouterr()
            status = main(list(args))
            out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["govern", *args], status, out, err)

    return run


def signalled_run(
    args: list[str], out: Path, signum: int, *, home: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`govern run ARGS --out OUT` in a subprocess, sent ``signum`` once its first result is
    written (so the run is cut part way); its exit status and standard error."""
    process = subprocess.Popen(
        [sys.executable, "-m", "govern.cli", "run", *args, "--out", str(out)],
        cwd=ROOT,
        env=user_environment(home, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        results = out / "results.jsonl"
        while not (results.is_file() and results.stat().st_size > 0):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no item finished within 60 s"
            time.sleep(0.01)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(args, process.returncode, "", stderr)


def write_key_file(
    path: Path, hmac_hex: str = TEST_KEY, seal_hex: str = TEST_SEAL_KEY, **changes: object
) -> Path:
    """A key file (mode 600) holding these secrets, as `govern keys init` writes one, with
    ``changes`` made to its fields; with no changes and good secrets it loads."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from govern.ledger.keys import key_id, public_key_hex

    seed = bytes.fromhex(seal_hex)
    public = (
        public_key_hex(Ed25519PrivateKey.from_private_bytes(seed).public_key())
        if len(seed) == 32
        else "00" * 32
    )
    hmac_id = key_id(bytes.fromhex(hmac_hex))
    data = {
        "version": 2,
        "active": hmac_id,
        "keys": [{"id": hmac_id, "secret": hmac_hex}],
        "signing_active": public,
        "signing": [{"public": public, "secret": seal_hex}],
        "trusted": [],
        **changes,
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    return path
