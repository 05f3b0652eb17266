"""Ledger keys: HMAC secrets (with ids) and the Ed25519 seal key derived from the active one.

A key comes from ``GOVERN_LEDGER_KEY`` (hex, at least 16 bytes) or from a key
file made by ``govern keys init`` (mode 0600; a group- or world-readable file
is refused). The seal-signing key is derived from the HMAC secret with HKDF,
so one secret serves both and the public key can be handed to anyone. No
function here prints or logs a secret.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ENV_KEY = "GOVERN_LEDGER_KEY"
ENV_KEY_FILE = "GOVERN_KEY_FILE"
SIGNING_INFO = b"govern ledger seal signing key v1"


class LedgerKeyError(Exception):
    """A key that is missing, malformed or unsafely stored; the message says what to do."""


@dataclass(frozen=True)
class HmacKey:
    id: str
    secret: bytes = b""

    def __repr__(self) -> str:  # never show the secret
        return f"HmacKey(id={self.id!r})"


def key_id(secret: bytes) -> str:
    return sha256(b"govern key id\x00" + secret).hexdigest()[:16]


def signing_key(key: HmacKey) -> Ed25519PrivateKey:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SIGNING_INFO).derive(
        key.secret
    )
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def load_public_key(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.strip()))
    except ValueError:
        raise LedgerKeyError("not an Ed25519 public key (expected 64 hex digits)") from None


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, HmacKey]
    active: str
    source: str  # where the keys came from, for messages

    @property
    def active_key(self) -> HmacKey:
        return self.keys[self.active]


def default_key_file() -> Path:
    configured = os.environ.get(ENV_KEY_FILE)
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "govern" / "ledger-keys.json"


def keyring_from_secret(hex_secret: str, source: str) -> Keyring:
    try:
        secret = bytes.fromhex(hex_secret.strip())
    except ValueError:
        raise LedgerKeyError(f"{source} is not hexadecimal") from None
    if len(secret) < 16:
        raise LedgerKeyError(f"{source} is too short: give at least 16 bytes (32 hex digits)")
    key = HmacKey(key_id(secret), secret)
    return Keyring({key.id: key}, key.id, source)


def read_key_file(path: Path) -> Keyring:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise LedgerKeyError(f"no key file at {path}: create one with `govern keys init`") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LedgerKeyError(
            f"key file {path} is readable by group or others (mode "
            f"{stat.S_IMODE(mode):o}); run: chmod 600 {path}"
        )
    try:
        data = json.loads(path.read_text())
        keys = {k["id"]: HmacKey(k["id"], bytes.fromhex(k["secret"])) for k in data["keys"]}
        active = data["active"]
    except (ValueError, KeyError, TypeError):
        raise LedgerKeyError(
            f"key file {path} is damaged: expected govern's key file format"
        ) from None
    if active not in keys:
        raise LedgerKeyError(f"key file {path} names an active key it does not hold")
    return Keyring(keys, active, str(path))


def load_keyring(key_file: Path | None = None) -> Keyring:
    """--key-file, then GOVERN_LEDGER_KEY, then the default key file."""
    if key_file is not None:
        return read_key_file(key_file)
    if os.environ.get(ENV_KEY):
        return keyring_from_secret(os.environ[ENV_KEY], ENV_KEY)
    return read_key_file(default_key_file())


def _write_private(path: Path, data: dict, *, replace: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(path.name + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    if not replace and path.exists():
        partial.unlink()
        raise LedgerKeyError(f"{path} already exists; `govern keys rotate` adds a new key to it")
    partial.replace(path)


def init_key_file(path: Path) -> Keyring:
    secret = secrets.token_bytes(32)
    key = HmacKey(key_id(secret), secret)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    _write_private(
        path,
        {
            "version": 1,
            "active": key.id,
            "keys": [{"id": key.id, "secret": secret.hex(), "created": created}],
        },
        replace=False,
    )
    return Keyring({key.id: key}, key.id, str(path))


def rotate_key_file(path: Path) -> Keyring:
    """Add a new key and make it active; old keys stay, so old ledgers still verify."""
    ring = read_key_file(path)
    data = json.loads(path.read_text())
    secret = secrets.token_bytes(32)
    key = HmacKey(key_id(secret), secret)
    data["keys"].append(
        {
            "id": key.id,
            "secret": secret.hex(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    data["active"] = key.id
    _write_private(path, data, replace=True)
    return Keyring({**ring.keys, key.id: key}, key.id, str(path))
