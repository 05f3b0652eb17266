"""One agent at a time: the shared behaviour of propose, draft, execute and integrate, and the
consultation every solo stage (review too) goes through.

The answer is read with the task's format under the manifest's parsing policy; an
output without one (after any re-asks the policy allows) is the ``unparsable``
decision and leaves the candidate as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.formats import OutputFormat
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
    spent_budget,
)
from govern.engine.state import combine
from govern.models.base import Message, ModelError, Oracle
from govern.spec.models import UNPARSABLE, SoloStage

SectionsFor = Callable[[RunContext, dict], list[Section]]
Reader = Callable[[str], Any]  # what the parsing policy reads in a reply; None: unparsable
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
    output_format: OutputFormat,
    parse: Reader,
    *,
    agent: str | None = None,
    sample: int = 0,
    **oracle_extra: Any,
) -> Consultation | None:
    """Ask ``agent`` (default: whoever the Controller lets act for ``role``), with its
    notices, and read the reply with ``parse``; an unparsable reply is asked again, quoting
    the format, as often as the manifest's parsing policy allows.

    None when nobody may act; a failed first call raises ModelError.
    """
    if agent is None:
        agent = ctx.controller.actor_for(state["item_id"], stage_id, role)
        if agent is None:
            return None
    notices = notices_section(ctx.controller.notices(agent))
    # an office's holder sits in a seat of another role, and speaks as the office
    speaks_as = role if ctx.controller.offices.is_office(role) else agent.split("#")[0]
    messages = compose(
        ctx.institution,
        speaks_as,
        state["question"],
        purpose,
        notices + sections,
        output_format.prompt(),
    )
    if ctx.merges_system_prompt(agent):
        messages = merge_system_into_user(messages)
    oracle = ctx.oracle(state, stage_id, agent, act, visit, **oracle_extra)
    asked = await _ask(ctx, agent, speaks_as, messages, oracle, sample, parse)
    earlier: list[Consultation] = []
    for reask in range(1, ctx.parsing.reasks + 1):
        if asked.reading is not None or _budget_spent(ctx, state, [*earlier, asked]):
            break
        again = [
            *asked.messages,
            {"role": "assistant", "content": asked.response.text},
            {"role": "user", "content": output_format.reask(asked.response.text)},
        ]
        try:
            reasked = replace(oracle, reask=reask)
            answer = await _ask(ctx, agent, speaks_as, again, reasked, sample, parse)
        except ModelError as exc:  # the unparsable reply stands; the failed call is counted
            return replace(asked, earlier=tuple(earlier), reask_failure=exc)
        earlier.append(asked)
        asked = answer
    return replace(asked, earlier=tuple(earlier)) if earlier else asked


def _budget_spent(ctx: RunContext, state: dict, made: list[Consultation]) -> bool:
    """Whether the item's budget leaves no room for another re-ask, counting the calls this
    consultation made (a seat of a body knows the item's spending when the stage began)."""
    calls = state.get("calls", 0) + len(made)
    tokens = sum(state.get(k, 0) for k in ("prompt_tokens", "completion_tokens")) + sum(
        c.response.prompt_tokens + c.response.completion_tokens for c in made
    )
    return spent_budget(ctx, calls, tokens)


async def _ask(
    ctx: RunContext,
    agent: str,
    role: str,
    messages: list[Message],
    oracle: Oracle,
    sample: int,
    parse: Reader,
) -> Consultation:
    """One call by ``agent`` speaking as ``role`` (an office holder as its office), with that
    role's sampling."""
    settings = ctx.settings(agent, oracle, sample, role)
    response = await ctx.call(agent, messages, oracle, settings)
    return Consultation(
        agent,
        oracle.act,
        oracle.visit,
        messages,
        response,
        settings,
        reading=parse(response.text),
        reask=oracle.reask,
    )


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
            ctx.read_answer,
            **extra,
        )
        if not isinstance(asked, Consultation):
            return asked
        answer = asked.reading
        record = record_turn(ctx, state, stage.id, asked, answer=answer)
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
        return candidate_section(
            state.get("candidate"), ctx.task, ctx.institution
        ) + feedback_section(state.get("feedback"))

    node = answering_node(stage, solve_or_revise, sections)
    return StageNodes(entry=stage.id, exit=stage.id, nodes={stage.id: node})
