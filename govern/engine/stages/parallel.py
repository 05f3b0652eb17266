"""Fan a stage out to every seat of its roles with ``Send``, and find its results again.

The opening node asks the Controller who sits in each seat (a barred agent's
seat is vacant or held by a stand-in), stores that roster and sends one worker
per seat on it (a ``Command`` whose ``goto`` is the ``Send``s, so no routing
function runs between the two).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from govern.engine.context import RunContext
from govern.engine.formats import OutputFormat
from govern.engine.stages.common import (
    Consultation,
    StageNodes,
    Update,
    arrive,
    failed_call,
    nobody_may_act,
    record_turn,
    route_update,
)
from govern.engine.stages.solo import Reader, consult
from govern.engine.state import combine
from govern.models.base import ModelError
from govern.spec.models import ChosenBy, Institution

# what a seat's worker gets of the item's state: the question and candidate, and the item's
# spending so far (re-asks must leave the per-item budgets room)
SEAT_SEES = ("item_id", "question", "candidate", "feedback", "calls", "prompt_tokens",
             "completion_tokens")  # fmt: skip


def body_seats(institution: Institution, body: list[str] | ChosenBy, state: dict) -> list[str]:
    """The seats of a body on this item: every seat of its roles, or the seats its
    choosing stage chose last (the static checks make sure that stage ran first)."""
    if isinstance(body, ChosenBy):
        return list(state["chosen"].get(body.chosen_by, []))
    return [
        f"{role.id}#{n}"
        for role_id in body
        for role in (institution.role(role_id),)
        for n in range(1, role.seats + 1)
    ]


def opening_node(
    stage_id: str,
    body: list[str] | ChosenBy,
    worker: str,
    voting: bool,
    briefing: Callable[[dict], dict] | None = None,
) -> Callable:
    """Seat the stage and send one worker per seat on the roster, each carrying what it
    needs of the state (and what ``briefing`` makes of it: a choice vote's slate); with
    nobody to seat, the item stops here."""

    async def node(state: dict, runtime: Runtime[RunContext]) -> Command:
        ctx = runtime.context
        visit, arrival = arrive(state, stage_id)
        seats = body_seats(ctx.institution, body, state)
        roster = ctx.controller.seat_actors(state["item_id"], stage_id, seats, voting=voting)
        if not roster:
            return Command(update=nobody_may_act(ctx, state, stage_id, arrival), goto=END)
        shared = {key: state.get(key) for key in SEAT_SEES}
        if briefing is not None:
            shared.update(briefing(state))
        sends = [
            Send(worker, {**shared, "seat": seat, "agent": agent, "visit": visit, "sample": i})
            for i, (seat, agent) in enumerate(roster)
        ]
        update = combine(arrival, {"roster": [list(pair) for pair in roster]})
        return Command(update=update, goto=sends)

    return node


async def ask_seat(
    ctx: RunContext,
    payload: dict,
    stage_id: str,
    purpose: str,
    act: str,
    sections: list,
    output_format: OutputFormat,
    parse: Reader,
    **oracle_extra: Any,
) -> Consultation | Update:
    """A worker's call for its seat (the seat's place on the roster is its sample index);
    a failure becomes an error the join will act on. ``oracle_extra`` is hidden input for
    the simulator, as ``consult`` takes it."""
    try:
        asked = await consult(
            ctx,
            payload,
            stage_id,
            purpose,
            payload["seat"].split("#")[0],
            act,
            payload["visit"],
            sections,
            output_format,
            parse,
            agent=payload["agent"],
            sample=payload["sample"],
            **oracle_extra,
        )
    except ModelError as exc:
        return {"errors": [f"{stage_id}: {exc}"], **failed_call(exc)}
    assert asked is not None  # the roster named this agent
    return asked


def seat_result(
    ctx: RunContext, payload: dict, stage_id: str, asked: Consultation, key: str, value: Any
) -> Update:
    """A seat's turn, recorded, and what it gave (``answer`` or ``ballot``) added to the
    item's ``reports`` or ``ballots`` for the join to find."""
    entry = {
        "stage": stage_id,
        "visit": asked.visit,
        "seat": payload["seat"],
        "agent": asked.agent,
        key: value,
        "text": asked.response.text,
    }
    record = record_turn(ctx, payload, stage_id, asked, **{key: value}, seat=payload["seat"])
    return combine(record, {"ballots" if key == "ballot" else "reports": [entry]})


def seat_failure(ctx: RunContext, state: dict, stage_id: str) -> Update | None:
    """At the join: a seat whose call failed ends the item, once, with the error. Each failed
    seat's worker has already added its error to the item's (one per failed call), so the
    stop adds none of its own."""
    errors = [e for e in state["errors"] if e.startswith(f"{stage_id}: ")]
    if not errors:
        return None
    stopped = ctx.controller.stop(state["item_id"], stage_id, None, "error", errors[-1])
    return route_update(stopped, "")


def this_visit(records: list[dict], stage_id: str, visit: int) -> list[dict]:
    return [r for r in records if r["stage"] == stage_id and r["visit"] == visit]


def parallel_stage(
    stage_id: str,
    body: list[str] | ChosenBy,
    work: Callable,
    join: Callable,
    worker_suffix: str,
    join_suffix: str,
    *,
    voting: bool,
    briefing: Callable[[dict], dict] | None = None,
) -> StageNodes:
    """open -> one ``work`` per seat of ``body`` (Send) -> ``join``, deferred until every
    seat is in."""
    worker, joined = f"{stage_id}.{worker_suffix}", f"{stage_id}.{join_suffix}"
    return StageNodes(
        entry=stage_id,
        exit=joined,
        nodes={
            stage_id: opening_node(stage_id, body, worker, voting, briefing),
            worker: work,
            joined: join,
        },
        worker=worker,
        deferred=frozenset({joined}),
    )
