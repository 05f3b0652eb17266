"""Each model call's own seed, so that the seats of a body are independent samples.

A provider that honours seeds returns the same text for the same prompt and
seed. Sent the run's one seed, five senators given the same prompt would give
one opinion five times; so each call's seed is derived from what identifies
the call: the run's seed, the item, the stage, the agent, the visit and the
sample. It is stable across runs (reproducible), differs between seats,
visits and samples, and does not depend on concurrency or on the order in
which items finish.
"""

from __future__ import annotations

import hashlib
import json

SEED_BITS = 31  # providers take a signed 32-bit seed; llama.cpp an unsigned one
_IDENTITY = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps' text, made once


def call_seed(
    run_seed: int, item: str, stage: str, agent: str, visit: int, sample: int = 0, reask: int = 0
) -> int:
    """The seed of one call, a whole number in [0, 2**31); a re-ask for the format has its
    own, so that it is not answered with the same text."""
    parts: list[object] = [run_seed, item, stage, agent, visit, sample]
    identity = _IDENTITY([*parts, reask] if reask else parts)
    digest = hashlib.sha256(b"govern call seed\x00" + identity.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)
