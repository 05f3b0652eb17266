"""Drawing seats by lot so that anyone can redo the draw from the ledger, in any language.

Method ``sha256-rank/1``. Every seat ``s`` of the pool gets a key::

    key(s) = SHA-256( b"govern lot\\x00" || UTF-8( JSON [seed, item, stage, visit, s] ) )

The JSON is a five-element array written without spaces, whole numbers in decimal and
strings escaped as JSON requires and nothing more (``"``, ``\\`` and control characters;
every other character as itself in UTF-8), which is what ``JSON.stringify`` in JavaScript
and ``json.dumps(..., separators=(",", ":"), ensure_ascii=False)`` in Python write (a
JavaScript auditor writes a seed above 2**53 from the ledger's text, not from a Number,
which would round it: seeds run to 2**63 - 1). For
the run seed 7, item ``item-3``, stage ``sortition``, first visit and seat ``council#4``
the bytes hashed are ``govern lot``, one zero byte, then
``[7,"item-3","sortition",1,"council#4"]``; in a shell::

    printf 'govern lot\\0%s' '[7,"item-3","sortition",1,"council#4"]' | sha256sum

The seats drawn are the ``k`` seats with the smallest keys (compared as 32-byte big-endian
numbers, which is the order of their hex digests), in that order; with fewer than ``k``
seats in the pool every seat is drawn. A seat listed twice is one seat.

Why a rank of hashes rather than a seeded shuffle: the draw depends on these bytes alone,
not on a language's random generator nor on the order in which the pool is listed, and
each seat is equally likely to be drawn. The ``lot`` entry the Controller writes records
the method, seed, item, stage, visit, pool, ``draw`` and the seats drawn; ``govern
audit`` redoes every draw with the seed of the ledger's header (``check_lots``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from govern.governance.draws import is_counting, is_seats, is_text, is_whole, redo, unsound
from govern.spec.digest import canonical_json

METHOD = "sha256-rank/1"
DOMAIN = b"govern lot\x00"


def seat_key(seed: int, item: str, stage: str, visit: int, seat: str) -> bytes:
    """The 32-byte key that ranks ``seat`` in this draw."""
    identity = canonical_json([seed, item, stage, visit, seat]).encode("utf-8")
    return hashlib.sha256(DOMAIN + identity).digest()


def draw(seed: int, item: str, stage: str, visit: int, pool: list[str], k: int) -> list[str]:
    """The ``k`` seats of ``pool`` with the smallest keys, smallest first (all of them, in
    key order, when the pool has fewer)."""
    seats = dict.fromkeys(pool)
    return sorted(seats, key=lambda seat: seat_key(seed, item, stage, visit, seat))[:k]


SHAPES = {
    "item": is_text,
    "stage": is_text,
    "visit": is_counting,
    "seed": is_whole,
    "pool": is_seats,
    "draw": is_counting,
    "drawn": is_seats,
}


def recheck(seq: int, body: Any, run_seed: Any) -> str | None:
    """Why the ``lot`` entry ``seq`` does not follow from the run's seed (the header's), or
    None when the draw recomputes. The seats are drawn again from the recorded pool; the
    seed the entry names is compared with the run's, never used."""
    problem = unsound(seq, "lot", body, METHOD, SHAPES, run_seed)
    if problem is not None:
        return problem
    where = f"entry {seq}"
    if body["seed"] != run_seed:
        return f"{where}: the lot names seed {body['seed']}, but the run's seed is {run_seed}"
    expected = draw(
        run_seed, body["item"], body["stage"], body["visit"], body["pool"], body["draw"]
    )
    if body["drawn"] != expected:
        return (
            f"{where}: the lot in {body['stage']} for {body['item']} (visit {body['visit']}) "
            f"records {_listed(body['drawn'])} drawn, but the run's seed and the pool draw "
            f"{_listed(expected)}"
        )
    return None


def _listed(seats: list[str]) -> str:
    return ", ".join(seats) if seats else "nobody"


def check_lots(lines: list[bytes], kinds: list[bytes]) -> tuple[int, list[str]]:
    """Redo every draw in the verified entries ``lines`` (whose kinds the verifier read)
    from the ledger alone: (lots found, why each one that does not recompute fails)."""
    redone = redo(lines, kinds, b"lot", recheck)
    return len(redone.bodies), redone.problems
