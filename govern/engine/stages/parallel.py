"""Fan a stage out to every seat of its roles with ``Send``, and find its results again."""

from __future__ import annotations

from collections.abc import Callable

from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Send

from govern.engine.context import RunContext
from govern.engine.stages.common import StageNodes, Update, arrive


def opening_node(stage_id: str) -> Callable:
    async def node(state: dict, runtime: Runtime[RunContext]) -> Update:
        return arrive(state, stage_id)[1]

    return node


def fan_out(stage_id: str, roles: list[str], worker: str) -> Callable:
    """One Send per seat, carrying what the worker needs of the state."""

    def send(state: dict, runtime: Runtime[RunContext]) -> list[Send] | str:
        if state.get("outcome"):
            return END
        ctx = runtime.context
        visit = state["visits"][stage_id]
        shared = {key: state.get(key) for key in ("item_id", "question", "candidate", "feedback")}
        return [
            Send(worker, {**shared, "agent": agent, "visit": visit})
            for role in roles
            for agent in ctx.agents(role)
        ]

    return send


def this_visit(records: list[dict], stage_id: str, visit: int) -> list[dict]:
    return [r for r in records if r["stage"] == stage_id and r["visit"] == visit]


def parallel_stage(
    stage_id: str,
    roles: list[str],
    work: Callable,
    join: Callable,
    worker_suffix: str,
    join_suffix: str,
) -> StageNodes:
    """open -> one ``work`` per seat (Send) -> ``join``, deferred until every seat is in."""
    worker, joined = f"{stage_id}.{worker_suffix}", f"{stage_id}.{join_suffix}"
    return StageNodes(
        entry=stage_id,
        exit=joined,
        nodes={stage_id: opening_node(stage_id), worker: work, joined: join},
        worker=worker,
        fan_out=fan_out(stage_id, roles, worker),
        deferred=frozenset({joined}),
    )
