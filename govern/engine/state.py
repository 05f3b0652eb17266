"""The state of one item as it moves through an institution's graph.

Everything in it is JSON-serialisable. Lists and counters that parallel voters
or members write at once have reducers; everything else is replaced.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict, get_origin, get_type_hints


def merge_keys(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A mapping several nodes update by key: the newer value of a key wins."""
    return {**old, **new}


class Candidate(TypedDict):
    stage: str
    agent: str
    text: str
    answer: str


class ItemState(TypedDict, total=False):
    item_id: str
    question: str
    candidate: Candidate | None  # the answer currently on the table
    feedback: str | None  # why the candidate was last sent back, for whoever revises it
    decision: str | None  # the last stage's decision
    route: str  # the key of the edge to take next
    steps: int  # stage runs so far
    outcome: str | None  # completed | no_answer | rejected | cut_off | blocked | error
    roster: list[list[str]]  # [seat, acting agent] of the parallel stage now running
    chosen: Annotated[dict[str, list[str]], merge_keys]  # stage id -> the seats it chose last
    visits: Annotated[dict[str, int], merge_keys]  # per stage id, and per "stage>decision"
    path: Annotated[list[str], operator.add]
    turns: Annotated[list[dict[str, Any]], operator.add]  # every model call, with its text
    ballots: Annotated[list[dict[str, Any]], operator.add]
    reports: Annotated[list[dict[str, Any]], operator.add]
    calls: Annotated[int, operator.add]  # model calls made, failed ones included
    failed_attempts: Annotated[int, operator.add]  # attempts of calls that failed in the end
    prompt_tokens: Annotated[int, operator.add]
    completion_tokens: Annotated[int, operator.add]
    cost: Annotated[float, operator.add]
    unknown_cost_calls: Annotated[int, operator.add]
    unparsable: Annotated[int, operator.add]
    errors: Annotated[list[str], operator.add]
    maker: dict[str, Any] | None  # a decompose stage's steps: counts and the theory's figures


def initial_state(item_id: str, question: str) -> ItemState:
    return ItemState(
        item_id=item_id,
        question=question,
        candidate=None,
        feedback=None,
        decision=None,
        route="",
        steps=0,
        roster=[],
        chosen={},
        outcome=None,
        visits={},
        path=[],
        turns=[],
        ballots=[],
        reports=[],
        calls=0,
        failed_attempts=0,
        prompt_tokens=0,
        completion_tokens=0,
        cost=0.0,
        unknown_cost_calls=0,
        unparsable=0,
        errors=[],
        maker=None,
    )


def _reducers() -> dict[str, Any]:
    hints = get_type_hints(ItemState, include_extras=True)
    return {
        name: hint.__metadata__[0] for name, hint in hints.items() if get_origin(hint) is Annotated
    }


REDUCERS = _reducers()


def combine(*updates: dict[str, Any]) -> dict[str, Any]:
    """Fold several partial updates of one node into one, as LangGraph's reducers would."""
    out: dict[str, Any] = {}
    for update in updates:
        for key, value in update.items():
            reducer = REDUCERS.get(key)
            out[key] = reducer(out[key], value) if key in out and reducer else value
    return out
