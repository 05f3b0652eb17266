"""The Controller's side of a decompose stage: every voted step checked before the next is
drawn, and written to the ledger with its vote counts, a block of steps an entry.

A step is applied only when the puzzle's rules allow it (the task's ``fault``: a legal move,
and a next state that is the move's) and its votes show what the manifest asks: the winner
ahead of every other answer by ``k``. Either fault blocks the step: the ledger records the
blocked step and why, and the stage ends; the step is never repaired or drawn again here.

A million single-step entries would make a ledger of some 450 MB; a block of
``STEPS_PER_ENTRY`` steps in one entry keeps each step's decision and votes (about 16 bytes
of it) under one HMAC, so the ledger stays near 20 MB and every step is still on it. Each
block also carries the position after its last step and what the steps have spent so far,
so a run killed mid-tower resumes at the last block on disk. A block is flushed to the file
as it is written.

:func:`replay` goes through recorded blocks again and trusts none of them: every record's
shape, every move against the task's rules, every lead against k, every block's state. A
resumed run replays before it goes on, and ``govern audit`` replays every stage's steps.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from govern.ledger.memory import LedgerSink

if TYPE_CHECKING:
    from govern.maker.voting import Decision

Payload = TypeVar("Payload")
STEPS_PER_ENTRY = 1000
STEP_FIELDS = ["decision...", "rounds", "samples", "winner_votes", "other_votes..."]
RULE_VOTES = "maker:ahead_by_k"
RULE_STEP = "maker:task_rules"


class StepRules(Protocol):
    """What the Controller needs of a task's steps: its rules, the compact form of a
    decision (``record_size`` values) and back, and a snapshot of a position. Pure
    functions, no model."""

    record_size: int

    def start(self) -> Any: ...

    def fault(self, position: Any, candidate: Any) -> str | None: ...

    def advance(self, position: Any, candidate: Any) -> Any: ...

    def record(self, candidate: Any) -> list[Any]: ...

    def replay(self, position: Any, record: list[Any]) -> Any: ...

    def snapshot(self, position: Any) -> dict[str, Any]: ...


class StepRecordError(ValueError):
    """Recorded steps that do not stand up: malformed, against the task's rules or the
    vote's, or not following on from one another. The message names the step."""


class Replayed(Protocol):
    """Told of each replayed step: its index, position, candidate and record's counts."""

    def __call__(
        self, step: int, position: Any, candidate: Any, counts: tuple[int, int, int, list[int]]
    ) -> None: ...


def replay(
    rules: StepRules,
    bodies: Iterable[dict[str, Any]],
    k: int,
    on_step: Replayed | None = None,
) -> tuple[Any, int]:
    """Go through one stage visit's recorded blocks from the start, checking each as the
    Controller checked it when it was written: the position reached and the next step's
    index. StepRecordError at the first thing that does not stand up."""
    position, step, size = rules.start(), 0, rules.record_size
    for body in bodies:
        try:
            if body["first"] != step or body["k"] != k or body["count"] != len(body["steps"]):
                raise StepRecordError(
                    f"the block recorded from step {body['first']} (k {body['k']}) does not "
                    f"follow step {step} at k {k}"
                )
            for record in body["steps"]:
                decision, counts = record[:size], record[size:]
                if len(counts) < 3 or not all(_count(n) for n in counts):
                    raise StepRecordError(f"step {step}: the record {record} is malformed")
                rounds, samples, winner, *others = counts
                if rounds < 1 or winner - max(others, default=0) < k:
                    raise StepRecordError(
                        f"step {step}: the winner's {winner} votes do not lead "
                        f"{others or 'no other answer'} by k = {k}"
                    )
                if samples < winner + sum(others):
                    raise StepRecordError(f"step {step}: {samples} samples cannot cast the votes")
                try:
                    candidate = rules.replay(position, decision)
                except (TypeError, ValueError) as exc:
                    raise StepRecordError(f"step {step}: {exc}") from None
                fault = rules.fault(position, candidate)
                if fault is not None:
                    raise StepRecordError(f"step {step}: {fault}")
                if on_step is not None:
                    on_step(step, position, candidate, (rounds, samples, winner, others))
                position = rules.advance(position, candidate)
                step += 1
            if body["after"] != rules.snapshot(position):
                raise StepRecordError(f"step {step}: the recorded state is not the one reached")
        except (KeyError, TypeError, IndexError) as exc:
            raise StepRecordError(f"step {step}: a block is malformed ({exc!r})") from None
    return position, step


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


VisitKey = tuple[str, str, int]  # (item, stage, visit)


def visits_of(
    entries: Iterable[tuple[str, dict[str, Any], Payload]],
) -> list[tuple[VisitKey, list[Payload]]]:
    """The ``steps`` blocks of each (item, stage, visit) as chains, in ledger order, from
    (kind, body, payload) triples (the payload is what the caller keeps of each block: its
    body, or its line). A resumed run whose item started again from step 0 starts a new
    chain for the same visit; only after a ``resume`` entry may a chain restart."""
    open_chains: dict[VisitKey, list[Payload]] = {}
    done: list[tuple[VisitKey, list[Payload]]] = []
    resumed: set[VisitKey] = set()
    for kind, body, payload in entries:
        if kind == "resume":
            resumed = set(open_chains)
            continue
        if kind != "steps":
            continue
        key = (str(body.get("item")), str(body.get("stage")), body.get("visit", 1))
        if key in open_chains and body.get("first") == 0 and key in resumed:
            done.append((key, open_chains.pop(key)))
        resumed.discard(key)
        open_chains.setdefault(key, []).append(payload)
    return done + list(open_chains.items())


def check_steps(
    entries: Iterable[tuple[str, dict[str, Any], dict[str, Any]]],
    rules_for: Callable[[str, str], StepRules | None],
) -> tuple[int, list[str]]:
    """Replay every stage visit's recorded steps with its task's rules (``rules_for(item,
    stage)``; None: the task is unknown, and only the votes are checked): (steps checked,
    what does not stand up)."""
    checked, problems = 0, []
    for (item, stage, visit), bodies in visits_of(entries):
        rules = rules_for(item, stage)
        k = bodies[0].get("k")
        try:
            if rules is None:
                raise StepRecordError("no rules to replay with")
            _, steps = replay(rules, bodies, k if isinstance(k, int) else 0)
            checked += steps
        except StepRecordError as exc:
            problems.append(f"{item} {stage} (visit {visit}): {exc}")
    return checked, problems


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
        visit: int = 1,
        spent: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.ledger = ledger
        self.actor = actor
        self.visit = visit
        self.spent = spent  # what the stage's calls have cost so far, for a resumed run
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
                    **self._at(step),
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
                **self._at(step),
                "rounds": rounds,
                "votes": sorted(votes.values(), reverse=True),
                "rule": RULE_VOTES,
            },
        )
        self.ledger.flush()

    def _at(self, step: int) -> dict[str, Any]:
        """Where an entry about one step belongs: the item, stage visit, step and agent."""
        return {
            "item": self.item,
            "stage": self.stage,
            "visit": self.visit,
            "step": step,
            "actor": self.agent,
        }

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
                "visit": self.visit,
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
                **({"spent": self.spent()} if self.spent is not None else {}),
                "status": "applied",
                "rule": RULE_VOTES,
            },
        )
        self.first += len(self.pending)
        self.pending = []
        self.samples = self.too_long = self.format = self.collisions = 0
