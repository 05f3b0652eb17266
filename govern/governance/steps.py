"""The Controller's side of a decompose stage: every voted step checked before the next is
drawn, and written to the ledger with its vote counts, a block of steps an entry.

A step is applied only when the puzzle's rules allow it (the task's ``fault``: a legal move,
and a next state that is the move's) and its votes show what the manifest asks: the winner
ahead of every other answer by ``k``. Either fault blocks the step: the ledger records the
blocked step and why, and the stage ends; the step is never repaired or drawn again here.

A million single-step entries would make a ledger of some 450 MB; a block of
``STEPS_PER_ENTRY`` steps in one entry keeps each step's decision and votes (about 16 bytes
of it) under one HMAC, so the ledger stays near 20 MB and every step is still on it. Each
block also carries the position after its last step, so a run killed mid-tower resumes at
the last block on disk. A block is flushed to the file as it is written.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Protocol

from govern.ledger.memory import LedgerSink

if TYPE_CHECKING:
    from govern.maker.voting import Decision

STEPS_PER_ENTRY = 1000
STEP_FIELDS = ["decision...", "rounds", "samples", "winner_votes", "other_votes..."]
RULE_VOTES = "maker:ahead_by_k"
RULE_STEP = "maker:task_rules"


class StepRules(Protocol):
    """What the Controller needs of a task's steps: its rules, the compact form of a
    decision, and a snapshot of a position. Pure functions, no model."""

    def fault(self, position: Any, candidate: Any) -> str | None: ...

    def advance(self, position: Any, candidate: Any) -> Any: ...

    def record(self, candidate: Any) -> list[int]: ...

    def snapshot(self, position: Any) -> dict[str, Any]: ...


class StepLog:
    """One decompose stage's steps on one item, as the Controller checks and records them."""

    def __init__(
        self,
        ledger: LedgerSink,
        actor: str,
        item: str,
        stage: str,
        agent: str,
        rules: StepRules,
        k: int,
        first: int = 0,
    ) -> None:
        self.ledger = ledger
        self.actor = actor
        self.item = item
        self.stage = stage
        self.agent = agent
        self.rules = rules
        self.k = k
        self.first = first  # the index of the first step of the pending block
        self.pending: list[list[int]] = []
        self.samples = 0
        self.too_long = 0
        self.format = 0
        self.collisions = 0

    def check(self, step: int, position: Any, decision: Decision[Any]) -> str | None:
        """Apply the step (None) or block it (the reason, also written to the ledger)."""
        candidate, stats = decision.candidate, decision.stats
        votes = stats.votes
        winner = votes[decision.key]
        others = [count for key, count in votes.items() if key != decision.key]
        lead = winner - max(others, default=0)
        fault = self.rules.fault(position, candidate)
        rule = RULE_STEP
        if fault is None and lead < self.k:
            fault, rule = f"the winner leads by {lead}; the manifest asks k = {self.k}", RULE_VOTES
        if fault is not None:
            self._write(position)
            self.ledger.append(
                "transition",
                self.actor,
                {
                    "item": self.item,
                    "stage": self.stage,
                    "step": step,
                    "actor": self.agent,
                    "decision": self.rules.record(candidate),
                    "votes": [winner, *others],
                    "status": "blocked",
                    "reason": fault,
                    "rule": rule,
                    "then": "stop",
                },
            )
            self.ledger.flush()
            return fault
        self.pending.append(
            [*self.rules.record(candidate), stats.rounds, stats.samples, winner, *others]
        )
        self.samples += stats.samples
        self.too_long += stats.red_flags["too_long"]
        self.format += stats.red_flags["format"]
        self.collisions += stats.collision
        if len(self.pending) == STEPS_PER_ENTRY:
            self._write(self.rules.advance(position, candidate))
            self.ledger.flush()
        return None

    def undecided(self, step: int, position: Any, rounds: int, votes: dict[Hashable, int]) -> None:
        """The step found no winner: the steps before it, then the failure naming it."""
        self._write(position)
        self.ledger.append(
            "undecided",
            self.actor,
            {
                "item": self.item,
                "stage": self.stage,
                "step": step,
                "actor": self.agent,
                "rounds": rounds,
                "votes": sorted(votes.values(), reverse=True),
                "rule": RULE_VOTES,
            },
        )
        self.ledger.flush()

    def close(self, position: Any) -> None:
        """The last, partial block, once the stage stops taking steps."""
        self._write(position)
        self.ledger.flush()

    def _write(self, position: Any) -> None:
        if not self.pending:
            return
        self.ledger.append(
            "steps",
            self.actor,
            {
                "item": self.item,
                "stage": self.stage,
                "actor": self.agent,
                "first": self.first,
                "count": len(self.pending),
                "fields": STEP_FIELDS,
                "steps": self.pending,
                "after": self.rules.snapshot(position),
                "samples": self.samples,
                "red_flags": {"too_long": self.too_long, "format": self.format},
                "collisions": self.collisions,
                "k": self.k,
                "status": "applied",
                "rule": RULE_VOTES,
            },
        )
        self.first += len(self.pending)
        self.pending = []
        self.samples = self.too_long = self.format = self.collisions = 0
