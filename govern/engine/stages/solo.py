"""One agent at a time: the shared behaviour of propose, draft, execute and integrate, and the
consultation every solo stage (review too) goes through.

The answer is parsed strictly with the task's format; an output without one is
the ``unparsable`` decision and leaves the candidate as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.prompts import (
    Section,
    candidate_section,
    compose,
    feedback_section,
    merge_system_into_user,
    notices_section,
)
from govern.engine.stages.common import (
    Consultation,
    StageNodes,
    Update,
    arrive,
    failed,
    failed_call,
    leave,
    nobody_may_act,
    record_turn,
)
from govern.engine.state import combine
from govern.models.base import ModelError
from govern.spec.models import UNPARSABLE, SoloStage

SectionsFor = Callable[[RunContext, dict], list[Section]]
ActFor = Callable[[dict], str]


async def consult(
    ctx: RunContext,
    state: dict,
    stage_id: str,
    purpose: str,
    role: str,
    act: str,
    visit: int,
    sections: list[Section],
    output_format: str,
    *,
    agent: str | None = None,
    **oracle_extra: Any,
) -> Consultation | None:
    """Ask ``agent`` (default: whoever the Controller lets act for ``role``), with its notices.

    None when nobody may act; a failed call raises ModelError.
    """
    if agent is None:
        agent = ctx.controller.actor_for(state["item_id"], stage_id, role)
        if agent is None:
            return None
    notices = notices_section(ctx.controller.notices(agent))
    messages = compose(
        ctx.institution,
        agent.split("#")[0],
        state["question"],
        purpose,
        notices + sections,
        output_format,
    )
    if ctx.merges_system_prompt(agent):
        messages = merge_system_into_user(messages)
    oracle = ctx.oracle(state, stage_id, agent, act, visit, **oracle_extra)
    settings = ctx.settings(agent, oracle)
    response = await ctx.call(agent, messages, oracle, settings)
    return Consultation(agent, act, visit, messages, response, settings)


async def consult_or_stop(
    ctx: RunContext, state: dict, arrival: Update, stage_id: str, *args: Any, **kwargs: Any
) -> Consultation | Update:
    """``consult`` for a solo stage; an Update instead means the item stops here."""
    try:
        asked = await consult(ctx, state, stage_id, *args, **kwargs)
    except ModelError as exc:
        return failed(ctx, state, stage_id, exc, combine(arrival, failed_call(exc)))
    return asked if asked is not None else nobody_may_act(ctx, state, stage_id, arrival)


def answering_node(
    stage: SoloStage, act_for: ActFor, sections_for: SectionsFor, **oracle_extra: Callable
) -> Callable:
    """A node in which the stage's agent answers; ``oracle_extra`` may compute hidden inputs."""

    async def node(state: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        visit, arrival = arrive(state, stage.id)
        extra = {k: f(ctx, state) for k, f in oracle_extra.items()}
        asked = await consult_or_stop(
            ctx,
            state,
            arrival,
            stage.id,
            stage.purpose,
            stage.role,
            act_for(state),
            visit,
            sections_for(ctx, state),
            ctx.task.answer_format,
            **extra,
        )
        if not isinstance(asked, Consultation):
            return asked
        answer = ctx.task.parse_answer(asked.response.text, ctx.parsing)
        record = record_turn(ctx, state, stage.id, asked, answer is not None, answer=answer)
        if answer is None:
            return leave(ctx, state, stage.id, UNPARSABLE, combine(arrival, record), asked.agent)
        candidate = {
            "stage": stage.id,
            "agent": asked.agent,
            "text": asked.response.text,
            "answer": answer,
        }
        produced = {"candidate": candidate, "feedback": None}
        return leave(ctx, state, stage.id, "done", combine(arrival, record, produced), asked.agent)

    return node


def solve_or_revise(state: dict) -> str:
    return "revise" if state.get("candidate") else "solve"


def build_answering(stage: SoloStage) -> StageNodes:
    """A stage whose agent answers with the candidate and any reasons it was sent back."""

    def sections(ctx: RunContext, state: dict) -> list[Section]:
        return candidate_section(state.get("candidate")) + feedback_section(state.get("feedback"))

    node = answering_node(stage, solve_or_revise, sections)
    return StageNodes(entry=stage.id, exit=stage.id, nodes={stage.id: node})
