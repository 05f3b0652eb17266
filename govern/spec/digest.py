"""Digests that tie a run to the exact rules it ran under."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel

# NaN and infinities are refused: they are not JSON, and a ledger line must parse anywhere
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(data: object) -> str:
    """Sorted keys, no spaces, UTF-8: the one encoding digests and the ledger use."""
    return _CANONICAL.encode(data)


def semantic_digest(model: BaseModel) -> str:
    """SHA-256 over the model's canonical content: equal for equal meaning, whatever the YAML."""
    return hashlib.sha256(canonical_json(model.model_dump(mode="json")).encode()).hexdigest()
