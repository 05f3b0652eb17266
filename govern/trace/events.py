"""Events: each agent turn as the tracer sees it, with the events it builds on.

One event per model call an agent made (and one per sanction the Controller applied), typed
from the structure of the run, never by asking a model: what the stage's act was and what
its output decided. An event's id is its ledger entry's: ``RUN:SEQ``, the ``turn`` (or
``state``) entry that recorded the same call, so the two can be matched.

Types and what they build on, by act (a turn's ``act``, as the engine records it):

- ``plan``, and ``solve`` with nothing on the table: **propose**, a root claim;
- ``solve`` or ``revise`` in a stage of several seats (cluster, nominate): **delegate**,
  building on the candidate the work was handed with (none: the seat starts a claim);
- ``revise``: **revise**, building on the candidate;
- ``review`` and ``oversee``: by what the decision means, **endorse** (approve),
  **contradict** (reject, veto) or **revise** (amend: the reviewer's answer replaces the
  candidate); a reply with no decision read is a **review**;
- ``vote`` and ``elect``: **vote**, on the candidate (on a slate, its nominees);
- ``integrate`` and ``synthesise``: **merge**, building on the outputs it integrates (the
  last parallel stage's, else every answer since the last merge);
- ``produce`` (a market's firm): **propose**, building on every firm's previous round;
- a sanction: **sanction**, building on the sanctioned agent's last event of the item.

A reply asked again for its format builds on the reply it replaces. The candidate is what
the last proposing, revising, amending, delegating or merging events put on the table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal[
    "propose", "revise", "contradict", "merge", "endorse", "delegate", "vote", "review",
    "sanction",
]  # fmt: skip
ANSWERING = frozenset({"propose", "revise", "delegate", "merge"})
PARALLEL_KINDS = frozenset({"cluster", "nominate"})
EVENTS_FILE = "events.jsonl"


class Event(BaseModel):
    """One event of a run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="RUN:SEQ, the ledger entry that recorded the same turn")
    run: str
    time: float = Field(
        allow_inf_nan=False, description="seconds since the epoch, when the turn was recorded"
    )
    item: str
    agent: str
    stage: str
    type: EventType
    parents: list[str] = Field(description="ids of the events this one builds on")
    output_sha256: str | None = Field(description="the output's digest, as the ledger's")
    tokens: int = Field(ge=0, le=10**12, description="prompt and completion tokens of the call")


def output_digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


class _Scan:
    """What the derivation remembers while it goes through one item's turns in order."""

    def __init__(self, run: str, item: str) -> None:
        self.run, self.item = run, item
        self.candidate: list[str] = []  # the events behind the candidate on the table
        self.since_merge: list[str] = []  # answering events since the last merge
        self.parallel: dict[tuple[str, int], list[str]] = {}  # (stage, visit) -> seats' events
        self.last_parallel: list[str] = []
        self.last_of: dict[str, str] = {}  # agent -> its last event
        self.rounds: dict[int, list[str]] = {}  # a market's round -> its firms' events
        self.events: list[Event] = []

    def add(self, turn: dict[str, Any], kind: str, parents: list[str]) -> Event:
        event = Event(
            id=f"{self.run}:{turn['seq']}",
            run=self.run,
            time=float(turn.get("at", 0.0)),
            item=self.item,
            agent=turn["agent"],
            stage=turn["stage"],
            type=kind,  # type: ignore[arg-type]
            parents=list(dict.fromkeys(parents)),
            output_sha256=output_digest(turn.get("text")),
            tokens=int(turn.get("prompt_tokens", 0)) + int(turn.get("completion_tokens", 0)),
        )
        self.events.append(event)
        self.last_of[event.agent] = event.id
        return event


def item_events(
    run: str,
    record: dict[str, Any],
    stage_kind: Callable[[str], str | None],
    meaning: Callable[[str, str], str],
    sanctions: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> list[Event]:
    """The events of one item's result line (``record``), its turns in the order they were
    recorded; turns without a ledger seq (a run that kept no ledger) make no event.
    ``stage_kind(stage)`` is a stage's kind, ``meaning(stage, decision)`` what a review's
    word does; ``sanctions`` the Controller's (seq, at, agent) for the item."""
    scan = _Scan(run, record["id"])
    previous_reply: dict[tuple[str, str, int], str] = {}  # a consultation's last reply
    for turn in record.get("turns", []):
        if "seq" not in turn:
            continue
        consultation = (turn["stage"], turn["agent"], int(turn.get("visit", 0)))
        if turn.get("reask") and consultation in previous_reply:
            kind, parents = _typed(scan, turn, stage_kind, meaning)
            event = scan.add(turn, kind, [previous_reply[consultation]])
        else:
            kind, parents = _typed(scan, turn, stage_kind, meaning)
            event = scan.add(turn, kind, parents)
        previous_reply[consultation] = event.id
        _advance(scan, turn, event, stage_kind)
    for sanction in sanctions:
        agent = sanction["agent"]
        parents = [scan.last_of[agent]] if agent in scan.last_of else []
        scan.events.append(
            Event(
                id=f"{run}:{sanction['seq']}",
                run=run,
                time=float(sanction.get("at", 0.0)),
                item=scan.item,
                agent=agent,
                stage=str(sanction.get("stage") or "controller"),
                type="sanction",
                parents=parents,
                output_sha256=None,
                tokens=0,
            )
        )
    return scan.events


def _typed(
    scan: _Scan,
    turn: dict[str, Any],
    stage_kind: Callable[[str], str | None],
    meaning: Callable[[str, str], str],
) -> tuple[str, list[str]]:
    """The event type of a turn and the events it builds on."""
    act, stage = turn.get("act"), turn["stage"]
    if act == "plan":
        return "propose", []
    if act == "produce":  # a market's firm: it saw every firm's previous round
        return "propose", scan.rounds.get(int(turn["round"]) - 1, [])
    if act in ("solve", "revise") and stage_kind(stage) in PARALLEL_KINDS:
        return "delegate", list(scan.candidate)
    if act == "solve":
        return ("propose", []) if not scan.candidate else ("revise", list(scan.candidate))
    if act == "revise":
        return "revise", list(scan.candidate)
    if act in ("review", "oversee"):
        decision = turn.get("decision")
        if decision is None:
            return "review", list(scan.candidate)
        means = meaning(stage, str(decision))
        kind = {"approve": "endorse", "reject": "contradict", "veto": "contradict",
                "amend": "revise", "uphold": "endorse"}.get(means, "review")  # fmt: skip
        return kind, list(scan.candidate)
    if act in ("vote", "elect"):
        return "vote", list(scan.last_parallel if act == "elect" else scan.candidate)
    if act in ("integrate", "synthesise"):
        inputs = scan.last_parallel or scan.since_merge or scan.candidate
        return "merge", list(inputs)
    return "review", list(scan.candidate)


def _advance(
    scan: _Scan, turn: dict[str, Any], event: Event, stage_kind: Callable[[str], str | None]
) -> None:
    """What the event puts on the table for the turns after it."""
    if turn.get("act") == "produce":
        scan.rounds.setdefault(int(turn["round"]), []).append(event.id)
        return
    if event.type not in ANSWERING:
        return
    if event.type == "delegate":
        key = (turn["stage"], int(turn.get("visit", 0)))
        seats = scan.parallel.setdefault(key, [])
        seats.append(event.id)
        scan.last_parallel = seats
        scan.candidate = list(seats)  # the stage's merged answer rests on all its seats
    elif event.type == "merge":
        scan.candidate, scan.since_merge, scan.last_parallel = [event.id], [], []
        return
    elif turn.get("answer") is not None or event.type == "propose":
        scan.candidate = [event.id]
    scan.since_merge.append(event.id)


def events_of(
    institution: Any, run: str, record: dict[str, Any], sanctions: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The events of one finished item of a run of ``institution`` (its stages' kinds and
    its reviews' words decide the types), as JSON objects."""
    from govern.spec.models import ReviewStage

    kinds = {stage.id: stage.kind for stage in institution.stages}

    def meaning(stage: str, word: str) -> str:
        spec = institution.stage(stage) if stage in kinds else None
        return spec.meaning(word) if isinstance(spec, ReviewStage) else word

    return [e.model_dump() for e in item_events(run, record, kinds.get, meaning, sanctions)]
