"""Ledger keys: HMAC secrets that chain the entries, and separate Ed25519 keys that sign seals.

The two are separate secrets with separate roles. The HMAC key is shared with
whoever must check every entry; it cannot forge a seal. The seal key never
leaves the writer; its public half is what anyone may hold to check seals,
consistency proofs and inclusion proofs.

Keys come from the environment (``GOVERN_LEDGER_KEY``: hex, at least 16 bytes;
``GOVERN_SIGNING_KEY``: the 32-byte Ed25519 seed, hex) or from a key file made
by ``govern keys init`` (mode 0600; a group- or world-readable file is
refused). A key file also pins trusted public keys: its own seal keys and any
added with ``govern keys trust``. No function here prints or logs a secret.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from govern.files import parse_json, read_regular, write_atomic

ENV_KEY = "GOVERN_LEDGER_KEY"
ENV_SIGNING_KEY = "GOVERN_SIGNING_KEY"
ENV_KEY_FILE = "GOVERN_KEY_FILE"
MIN_SECRET_BYTES = 16
_KEY_ID = re.compile(r"[0-9a-f]{1,64}")  # written into every ledger line
MAX_KEY_FILE_BYTES = 1 << 20
KEY_FILE_VERSION = 2


class LedgerKeyError(Exception):
    """A key that is missing, malformed or unsafely stored; the message says what to do."""


@dataclass(frozen=True)
class HmacKey:
    id: str
    secret: bytes = b""

    def __repr__(self) -> str:  # never show the secret
        return f"HmacKey(id={self.id!r})"


@dataclass(frozen=True)
class SealKey:
    """An Ed25519 key that signs seals; known by its public key in hex."""

    private: Ed25519PrivateKey

    @property
    def public(self) -> str:
        return public_key_hex(self.private.public_key())

    def __repr__(self) -> str:  # never show the secret
        return f"SealKey(public={self.public!r})"


def key_id(secret: bytes) -> str:
    return sha256(b"govern key id\x00" + secret).hexdigest()[:16]


def public_key_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def load_public_key(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.strip()))
    except ValueError:
        raise LedgerKeyError("not an Ed25519 public key (expected 64 hex digits)") from None


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, HmacKey]  # HMAC keys by id
    active: str | None  # the HMAC key new entries are written with
    source: str  # where the keys came from, for messages
    signers: dict[str, SealKey] = field(default_factory=dict)  # by public key hex
    signer_public: str | None = None  # the seal key new seals are signed with
    pinned: dict[str, str] = field(default_factory=dict)  # other trusted public keys -> name

    @property
    def active_key(self) -> HmacKey:
        if self.active is None:
            raise LedgerKeyError(f"{self.source} holds no HMAC key")
        return self.keys[self.active]

    @property
    def active_signer(self) -> SealKey:
        if self.signer_public is None:
            raise LedgerKeyError(
                f"{self.source} has no seal-signing key: seals are signed with an Ed25519 key "
                f"kept apart from the HMAC key; set {ENV_SIGNING_KEY} (64 hex digits) or run "
                "`govern keys rotate` to add one to the key file"
            )
        return self.signers[self.signer_public]

    def require_writer(self) -> None:
        """Raise LedgerKeyError unless this keyring can write a ledger: both of its keys."""
        self.active_key, self.active_signer  # noqa: B018

    def trusted(self) -> dict[str, str]:
        """Public keys whose seals this keyring vouches for: its own, and those pinned."""
        return {**{public: "own seal key" for public in self.signers}, **self.pinned}


def default_key_file() -> Path:
    configured = os.environ.get(ENV_KEY_FILE)
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "govern" / "ledger-keys.json"


def _secret(text: Any, where: str, *, exact: int | None = None) -> bytes:
    """Hex to bytes, refusing what is not a usable secret; one rule for every source."""
    if not isinstance(text, str):
        raise LedgerKeyError(f"{where} must be a string of hex digits")
    try:
        secret = bytes.fromhex(text.strip())
    except ValueError:
        raise LedgerKeyError(
            f"{where} is not hexadecimal (give hex digits only, without '0x')"
        ) from None
    if exact is not None and len(secret) != exact:
        raise LedgerKeyError(f"{where} must be exactly {exact} bytes ({2 * exact} hex digits)")
    if len(secret) < MIN_SECRET_BYTES:
        raise LedgerKeyError(
            f"{where} is too short: give at least {MIN_SECRET_BYTES} bytes "
            f"({2 * MIN_SECRET_BYTES} hex digits)"
        )
    return secret


def _seal_key(text: Any, where: str) -> SealKey:
    return SealKey(Ed25519PrivateKey.from_private_bytes(_secret(text, where, exact=32)))


def keyring_from_env() -> Keyring:
    """The keys in GOVERN_LEDGER_KEY and (when set) GOVERN_SIGNING_KEY."""
    return keyring_from_secrets(
        os.environ[ENV_KEY], os.environ.get(ENV_SIGNING_KEY), ENV_KEY, ENV_SIGNING_KEY
    )


def keyring_from_secrets(
    hmac_hex: str, seal_hex: str | None, source: str, seal_source: str | None = None
) -> Keyring:
    """A keyring from hex secrets: the environment's, or given in code (tests, benchmarks)."""
    secret = _secret(hmac_hex, source)
    key = HmacKey(key_id(secret), secret)
    signers = {}
    if seal_hex is not None:
        signer = _seal_key(seal_hex, seal_source or source)
        signers[signer.public] = signer
    return Keyring({key.id: key}, key.id, source, signers, next(iter(signers), None))


def read_key_file(path: Path) -> Keyring:
    data = _read_private_json(path)
    where = f"key file {path}"
    try:
        keys = {
            k["id"]: HmacKey(k["id"], _secret(k["secret"], f"{where}: key {k['id']}"))
            for k in data.get("keys", [])
        }
        signers = {
            s.public: s
            for s in (_seal_key(k["secret"], f"{where}: seal key") for k in data.get("signing", []))
        }
        pinned = {p["public"]: str(p.get("name", "")) for p in data.get("trusted", [])}
        for public in pinned:
            load_public_key(public)
        active, signer = data.get("active"), data.get("signing_active")
        if not all(isinstance(name, str | None) for name in (active, signer)):
            raise TypeError("an active key is named by its id")
        if not all(_KEY_ID.fullmatch(name) for name in keys):
            raise TypeError("a key id is 1 to 64 lowercase hex digits")
    except (KeyError, TypeError, AttributeError):
        raise LedgerKeyError(f"{where} is damaged: expected govern's key file format") from None
    if active is not None and active not in keys:
        raise LedgerKeyError(f"{where} names an active key it does not hold")
    if signer is not None and signer not in signers:
        raise LedgerKeyError(f"{where} names an active seal key it does not hold")
    return Keyring(keys, active, str(path), signers, signer, pinned)


def _read_private_json(path: Path) -> dict[str, Any]:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise LedgerKeyError(f"no key file at {path}: create one with `govern keys init`") from None
    except OSError as exc:
        raise LedgerKeyError(f"cannot read the key file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise LedgerKeyError(f"the key file {path} is not a regular file")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LedgerKeyError(
            f"key file {path} is readable by group or others (mode "
            f"{stat.S_IMODE(info.st_mode):o}); run: chmod 600 {path}"
        )
    if info.st_size > MAX_KEY_FILE_BYTES:
        raise LedgerKeyError(f"the key file {path} is too large to be a key file")
    try:
        data = parse_json(read_regular(path, MAX_KEY_FILE_BYTES))
    except OSError as exc:
        raise LedgerKeyError(f"cannot read the key file {path}: {exc.strerror}") from None
    except ValueError:
        raise LedgerKeyError(f"key file {path} is damaged: it is not JSON") from None
    if not isinstance(data, dict):
        raise LedgerKeyError(f"key file {path} is damaged: expected govern's key file format")
    return data


def load_keyring(key_file: Path | None = None) -> Keyring:
    """--key-file, then GOVERN_LEDGER_KEY (even when set to something unusable), then the
    default key file."""
    if key_file is not None:
        return read_key_file(key_file)
    if ENV_KEY in os.environ:
        return keyring_from_env()
    if ENV_SIGNING_KEY in os.environ:
        raise LedgerKeyError(
            f"{ENV_SIGNING_KEY} is set without {ENV_KEY}: set both, or neither to use the key file"
        )
    return read_key_file(default_key_file())


def _write_private(path: Path, data: dict[str, Any], *, replace: bool) -> None:
    """Mode 0600 from the start, and a crash leaves the old file whole."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not replace and (path.exists() or path.is_symlink()):
        raise LedgerKeyError(f"{path} already exists; `govern keys rotate` adds a new key to it")
    write_atomic(path, json.dumps(data, indent=2), private=True, fsync=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _new_hmac_entry() -> dict[str, str]:
    secret = secrets.token_bytes(32)
    return {"id": key_id(secret), "secret": secret.hex(), "created": _now()}


def _new_seal_entry() -> dict[str, str]:
    seed = secrets.token_bytes(32)
    public = public_key_hex(Ed25519PrivateKey.from_private_bytes(seed).public_key())
    return {"public": public, "secret": seed.hex(), "created": _now()}


def init_key_file(path: Path) -> Keyring:
    hmac_entry, seal_entry = _new_hmac_entry(), _new_seal_entry()
    data = {
        "version": KEY_FILE_VERSION,
        "active": hmac_entry["id"],
        "keys": [hmac_entry],
        "signing_active": seal_entry["public"],
        "signing": [seal_entry],
        "trusted": [],
    }
    _write_private(path, data, replace=False)
    return read_key_file(path)


def rotate_key_file(path: Path) -> Keyring:
    """Add a new HMAC key and a new seal key and make them active; old keys stay, so old
    ledgers still verify and their seals stay trusted."""
    return _add_keys(path, hmac=True)


def add_seal_key(path: Path) -> Keyring:
    """Give a key file from an earlier govern (HMAC keys only) a seal key of its own."""
    return _add_keys(path, hmac=False)


def _add_keys(path: Path, *, hmac: bool) -> Keyring:
    path = path.resolve()  # a symlinked key file is updated where it lives
    read_key_file(path)  # refuses an unsafe or damaged file before touching it
    data = _read_private_json(path)
    if hmac:
        hmac_entry = _new_hmac_entry()
        data["keys"] = [*data.get("keys", []), hmac_entry]
        data["active"] = hmac_entry["id"]
    seal_entry = _new_seal_entry()
    data["signing"] = [*data.get("signing", []), seal_entry]
    data["signing_active"] = seal_entry["public"]
    data["version"] = KEY_FILE_VERSION
    _write_private(path, data, replace=True)
    return read_key_file(path)


def trust_public_key(path: Path, public: str, name: str) -> Keyring:
    """Pin another writer's seal public key, so audits accept seals it signed."""
    public = public_key_hex(load_public_key(public))
    path = path.resolve()
    read_key_file(path)
    data = _read_private_json(path)
    pinned = [p for p in data.get("trusted", []) if p.get("public") != public]
    data["trusted"] = [*pinned, {"public": public, "name": name, "added": _now()}]
    _write_private(path, data, replace=True)
    return read_key_file(path)
