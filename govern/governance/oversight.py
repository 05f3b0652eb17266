"""Which watched transitions an overseer examines, drawn so that anyone can redo the draw.

Method ``sha256-below/1``. The transition a watched stage made on its ``visit``-th run for
an item is examined by the ``index``-th oversight at ``rate`` when::

    h = first 8 bytes, big-endian, of SHA-256( b"govern oversight\\x00" ||
                                                UTF-8( JSON [seed, item, stage, visit, index] ) )
    h < rate * 2**64     (compared exactly: ``rate`` is a fraction)

with the JSON written as for lots (``govern/governance/lot.py``: no spaces, strings escaped
as JSON requires and nothing more). Each transition is examined independently with
probability ``rate``, whatever the order in which items run, and a higher rate examines a
superset of what a lower one does. Rate 1 examines every transition.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction

from govern.spec.digest import canonical_json

METHOD = "sha256-below/1"
DOMAIN = b"govern oversight\x00"
SPAN = 2**64


def draw(seed: int, item: str, stage: str, visit: int, index: int) -> int:
    """The transition's draw, a whole number in [0, 2**64)."""
    identity = canonical_json([seed, item, stage, visit, index]).encode("utf-8")
    return int.from_bytes(hashlib.sha256(DOMAIN + identity).digest()[:8], "big")


def examined(seed: int, item: str, stage: str, visit: int, index: int, rate: Fraction) -> bool:
    """Whether the ``index``-th oversight examines this transition at ``rate``."""
    return draw(seed, item, stage, visit, index) < rate * SPAN
