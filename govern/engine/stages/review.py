"""review: a gate. The reviewer approves, rejects or vetoes (its reasons go back to
whoever revises), or amends (its corrected answer becomes the candidate). A review's own
words (``annul``, ``refer``) do what the meaning declared for them under ``means`` does, and
are routed under their own names."""

from __future__ import annotations

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.formats import parse_decision, review_format
from govern.engine.prompts import motion_sections
from govern.engine.stages.common import Consultation, StageNodes, Update, arrive, leave, record_turn
from govern.engine.stages.solo import Reader, consult_or_stop
from govern.engine.state import combine
from govern.spec.models import UNPARSABLE, ReviewStage


def build(stage: ReviewStage) -> StageNodes:
    decisions = tuple(d for d in stage.possible_decisions if d != UNPARSABLE)
    meanings = tuple(stage.meaning(d) for d in decisions)
    explained = {d: m for d, m in zip(decisions, meanings, strict=True) if d != m}

    def read(ctx: RunContext) -> Reader:
        def reading(text: str) -> tuple[str, str | None] | None:
            """(decision, the amended answer); an amendment without an answer cannot be
            applied, so it does not parse."""
            decision = parse_decision(text, decisions, ctx.parsing.mode)
            amends = decision is not None and stage.meaning(decision) == "amend"
            amended = ctx.read_answer(text) if amends else None
            if decision is None or (amends and amended is None):
                return None
            return decision, amended

        return reading

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
            motion_sections(state.get("candidate"), ctx.task, ctx.institution),
            review_format(decisions, ctx.task.answer_format, explained),
            read(ctx),
            decisions=decisions,
            meanings=meanings if explained else (),
        )
        if not isinstance(asked, Consultation):
            return asked
        text = asked.response.text
        decision, amended = asked.reading or (None, None)
        record = record_turn(ctx, state, stage.id, asked, decision=decision, answer=amended)
        if decision is None:
            return leave(ctx, state, stage.id, UNPARSABLE, combine(arrival, record), asked.agent)
        outcome: Update = {"feedback": None}
        meaning = stage.meaning(decision)
        if meaning == "amend":
            outcome["candidate"] = {
                "stage": stage.id,
                "agent": asked.agent,
                "text": text,
                "answer": amended,
            }
        elif meaning != "approve":
            outcome["feedback"] = text
        return leave(ctx, state, stage.id, decision, combine(arrival, record, outcome), asked.agent)

    return StageNodes(entry=stage.id, exit=stage.id, nodes={stage.id: node})
