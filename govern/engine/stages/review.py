"""review: a gate. The reviewer approves, rejects or vetoes (its reasons go back to
whoever revises), or amends (its corrected answer becomes the candidate)."""

from __future__ import annotations

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.formats import parse_decision, review_format
from govern.engine.prompts import candidate_section, compose
from govern.engine.stages.common import StageNodes, Update, arrive, failed, leave, turn
from govern.engine.state import combine
from govern.models.base import ModelError
from govern.spec.models import UNPARSABLE, ReviewStage


def build(stage: ReviewStage) -> StageNodes:
    decisions = tuple(d for d in stage.possible_decisions if d != UNPARSABLE)

    async def node(state: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        visit, arrival = arrive(state, stage.id)
        agent = ctx.agents(stage.role)[0]
        messages = compose(
            ctx.institution,
            stage.role,
            state["question"],
            stage.purpose,
            candidate_section(state.get("candidate")),
            review_format(decisions, ctx.task.answer_format),
        )
        oracle = ctx.oracle(state, stage.id, agent, "review", visit, decisions=decisions)
        try:
            response = await ctx.call(agent, messages, oracle)
        except ModelError as exc:
            return failed(stage.id, exc, arrival)
        decision = parse_decision(response.text, decisions)
        amended = ctx.task.parse_answer(response.text) if decision == "amend" else None
        if decision == "amend" and amended is None:
            decision = None  # an amendment without an answer cannot be applied
        record = turn(stage.id, agent, "review", visit, response, decision=decision, answer=amended)
        if decision is None:
            return leave(ctx, state, stage.id, UNPARSABLE, combine(arrival, record))
        outcome: Update = {"feedback": None}
        if decision == "amend":
            outcome["candidate"] = {
                "stage": stage.id,
                "agent": agent,
                "text": response.text,
                "answer": amended,
            }
        elif decision != "approve":
            outcome["feedback"] = response.text
        return leave(ctx, state, stage.id, decision, combine(arrival, record, outcome))

    return StageNodes(entry=stage.id, exit=stage.id, nodes={stage.id: node})
