"""Redoing the Controller's draws (lots, oversight samples) from a ledger alone.

Every draw the Controller makes is a function of the run's seed and what its entry
records, so an auditor redoes it with the seed of the ledger's header, never with a seed an
entry claims. The walk over the entries, the header's seed and the shape checks are the
same for every kind of draw; each kind says only how its own entry is redone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from govern.ledger.format import parse

# (seq, body, the run's seed from the header) -> why the entry does not recompute, or None
Recheck = Callable[[int, Any, Any], str | None]
Shape = Callable[[Any], bool]


def is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_counting(value: Any) -> bool:
    """A whole number from 1, as a visit or a draw's size."""
    return is_whole(value) and value >= 1


def is_text(value: Any) -> bool:
    return isinstance(value, str)


def is_seats(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(seat, str) for seat in value)


def unsound(
    seq: int, what: str, body: Any, method: str, shapes: dict[str, Shape], run_seed: Any
) -> str | None:
    """Why the ``what`` entry ``seq`` cannot be redone at all (no body, another method, a
    field missing or malformed, no run seed in the header), or None when it can."""
    where = f"entry {seq}"
    if not isinstance(body, dict):
        return f"{where}: the {what} entry has no body"
    if body.get("method") != method:
        return f"{where}: the {what} names method {body.get('method')!r}, which is not {method}"
    bad = [name for name, ok in shapes.items() if not ok(body.get(name))]
    if bad:
        return f"{where}: the {what} entry's {', '.join(bad)} is missing or malformed"
    if not is_whole(run_seed):
        return f"{where}: the ledger's header records no run seed to redo the {what} with"
    return None


@dataclass
class Redone:
    """The draws of one kind in a ledger: their bodies in ledger order, and why each one
    that does not recompute fails."""

    bodies: list[Any] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def redo(lines: list[bytes], kinds: list[bytes], kind: bytes, recheck: Recheck) -> Redone:
    """Redo every ``kind`` entry of the verified entries ``lines`` (whose kinds the verifier
    read) with the seed of the ledger's header."""
    seqs = [seq for seq, kind_of_line in enumerate(kinds) if kind_of_line == kind]
    redone = Redone()
    if not seqs:
        return redone
    header = parse(lines[0]) or {}
    config = (header.get("body") or {}).get("config") if header.get("kind") == "header" else None
    run_seed = config.get("seed") if isinstance(config, dict) else None
    for seq in seqs:
        body = (parse(lines[seq]) or {}).get("body")
        redone.bodies.append(body)
        problem = recheck(seq, body, run_seed)
        if problem is not None:
            redone.problems.append(problem)
    return redone
