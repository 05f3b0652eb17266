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

The ``oversight`` entry the Controller writes for every draw, examined or not, records the
item, stage, visit, overseer (``index``), method, rate (as an exact fraction, ``1/5``) and
whether it was ``sampled``; ``govern audit`` redoes every draw with the seed of the
ledger's header (``check_oversight``) and counts how many transitions were examined.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from govern.governance.draws import is_counting, is_text, is_whole, redo, unsound
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


def _exact_rate(value: Any) -> bool:
    """A rate as the Controller records it: a fraction in its lowest terms, above 0, at
    most 1 (``1/5``, ``1``)."""
    try:
        rate = Fraction(value) if isinstance(value, str) else None
    except (ValueError, ZeroDivisionError):
        return False
    return rate is not None and str(rate) == value and 0 < rate <= 1


SHAPES = {
    "item": is_text,
    "stage": is_text,
    "visit": is_counting,
    "overseer": lambda value: is_whole(value) and value >= 0,
    "rate": _exact_rate,
    "sampled": lambda value: isinstance(value, bool),
}


def recheck(seq: int, body: Any, run_seed: Any) -> str | None:
    """Why the ``oversight`` entry ``seq`` does not follow from the run's seed (the
    header's), or None when the draw recomputes at the rate it records.

    What this proves: given that rate, whether the transition was examined follows from the
    run's seed and the transition alone, so nobody chose which transitions to examine. What
    it does not: that the rate is the institution's. The ledger holds the institution's
    digest, not its text, so the rate is checked against the institution only by whoever
    holds that institution file and compares its digest with the header's."""
    problem = unsound(seq, "oversight draw", body, METHOD, SHAPES, run_seed)
    if problem is not None:
        return problem
    item, stage, visit, index = body["item"], body["stage"], body["visit"], body["overseer"]
    expected = examined(run_seed, item, stage, visit, index, Fraction(body["rate"]))
    if body["sampled"] != expected:
        return (
            f"entry {seq}: the oversight draw of overseer {index} in {stage} for {item} "
            f"(visit {visit}) records {_verdict(body['sampled'])}, but the run's seed at rate "
            f"{body['rate']} draws {_verdict(expected)}"
        )
    return None


def _verdict(sampled: bool) -> str:
    return "examined" if sampled else "not examined"


@dataclass(frozen=True)
class Coverage:
    """The oversight draws of a ledger: how many, how many examined a transition, and why
    each one that does not recompute fails."""

    draws: int
    examined: int
    problems: list[str]


def check_oversight(lines: list[bytes], kinds: list[bytes]) -> Coverage:
    """Redo every oversight draw in the verified entries ``lines`` (whose kinds the verifier
    read) from the ledger alone, and count those that examined a transition."""
    redone = redo(lines, kinds, b"oversight", recheck)
    sampled = sum(isinstance(b, dict) and b.get("sampled") is True for b in redone.bodies)
    return Coverage(len(redone.bodies), sampled, redone.problems)
