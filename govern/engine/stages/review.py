"""review: a gate. The reviewer approves, rejects or vetoes (its reasons go back to
whoever revises), or amends (its corrected answer becomes the candidate)."""

from __future__ import annotations

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.formats import parse_decision, review_format
from govern.engine.prompts import candidate_section
from govern.engine.stages.common import Consultation, StageNodes, Update, arrive, leave, record_turn
from govern.engine.stages.solo import consult_or_stop
from govern.engine.state import combine
from govern.spec.models import UNPARSABLE, ReviewStage


def build(stage: ReviewStage) -> StageNodes:
    decisions = tuple(d for d in stage.possible_decisions if d != UNPARSABLE)

    async def node(state: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        visit, arrival = arrive(state, stage.id)
        asked = await consult_or_stop(
            ctx,
            state,
            arrival,
            stage.id,
            stage.purpose,
            stage.role,
            "review",
            visit,
            candidate_section(state.get("candidate")),
            review_format(decisions, ctx.task.answer_format),
            decisions=decisions,
        )
        if not isinstance(asked, Consultation):
            return asked
        text = asked.response.text
        decision = parse_decision(text, decisions, ctx.parsing)
        amended = ctx.task.parse_answer(text, ctx.parsing) if decision == "amend" else None
        if decision == "amend" and amended is None:
            decision = None  # an amendment without an answer cannot be applied
        record = record_turn(
            ctx, state, stage.id, asked, decision is not None, decision=decision, answer=amended
        )
        if decision is None:
            return leave(ctx, state, stage.id, UNPARSABLE, combine(arrival, record), asked.agent)
        outcome: Update = {"feedback": None}
        if decision == "amend":
            outcome["candidate"] = {
                "stage": stage.id,
                "agent": asked.agent,
                "text": text,
                "answer": amended,
            }
        elif decision != "approve":
            outcome["feedback"] = text
        return leave(ctx, state, stage.id, decision, combine(arrival, record, outcome), asked.agent)

    return StageNodes(entry=stage.id, exit=stage.id, nodes={stage.id: node})
