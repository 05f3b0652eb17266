"""One agent writes an answer: the shared behaviour of propose, draft, execute and integrate.

The answer is parsed strictly with the task's format; an output without one is
the ``unparsable`` decision and leaves the candidate as it was.
"""

from __future__ import annotations

from collections.abc import Callable

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.prompts import Section, candidate_section, compose, feedback_section
from govern.engine.stages.common import StageNodes, Update, arrive, failed, leave, turn
from govern.engine.state import combine
from govern.models.base import ModelError
from govern.spec.models import UNPARSABLE, SoloStage

SectionsFor = Callable[[RunContext, dict], list[Section]]
ActFor = Callable[[dict], str]


def answering_node(
    stage: SoloStage, act_for: ActFor, sections_for: SectionsFor, **oracle_extra
) -> Callable:
    """A node in which the stage's agent answers; ``oracle_extra`` may compute hidden inputs."""

    async def node(state: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        visit, arrival = arrive(state, stage.id)
        agent = ctx.agents(stage.role)[0]
        act = act_for(state)
        messages = compose(
            ctx.institution,
            stage.role,
            state["question"],
            stage.purpose,
            sections_for(ctx, state),
            ctx.task.answer_format,
        )
        extra = {k: f(ctx, state) for k, f in oracle_extra.items()}
        try:
            response = await ctx.call(
                agent, messages, ctx.oracle(state, stage.id, agent, act, visit, **extra)
            )
        except ModelError as exc:
            return failed(stage.id, exc, arrival)
        answer = ctx.task.parse_answer(response.text)
        record = turn(stage.id, agent, act, visit, response, answer=answer)
        if answer is None:
            return leave(ctx, state, stage.id, UNPARSABLE, combine(arrival, record))
        candidate = {"stage": stage.id, "agent": agent, "text": response.text, "answer": answer}
        produced = {"candidate": candidate, "feedback": None}
        return leave(ctx, state, stage.id, "done", combine(arrival, record, produced))

    return node


def solve_or_revise(state: dict) -> str:
    return "revise" if state.get("candidate") else "solve"


def build_answering(stage: SoloStage) -> StageNodes:
    """A stage whose agent answers with the candidate and any reasons it was sent back."""

    def sections(ctx: RunContext, state: dict) -> list[Section]:
        return candidate_section(state.get("candidate")) + feedback_section(state.get("feedback"))

    node = answering_node(stage, solve_or_revise, sections)
    return StageNodes(entry=stage.id, exit=stage.id, nodes={stage.id: node})
