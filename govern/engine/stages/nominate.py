"""nominate: every seat of the nominee roles answers the question on its own; the
nominees who gave an answer form a slate, for a choice vote to decide among.

Each nominee works as a member of an ``independent`` cluster does, except that it
sees neither the candidate nor any reasons it was sent back with: a slate is worth
choosing among only if its answers were reached apart. The slate is the nominees
whose answer could be read, in roster order; their seats are what the stage chooses
(``state["chosen"]``), so a later body may be ``{chosen_by: <this stage>}``. The
decision is ``done``, or ``unparsable`` when no nominee gave an answer (the slate is
then empty). A nomination leaves the candidate as it was.
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.stages.common import Consultation, StageNodes, Update, leave
from govern.engine.stages.parallel import (
    ask_seat,
    parallel_stage,
    seat_failure,
    seat_result,
    this_visit,
)
from govern.spec.models import UNPARSABLE, NominateStage


def slate_of(state: dict, nominate_id: str) -> list[dict]:
    """The slate the nomination ``nominate_id`` put up on its latest visit: the reports of
    the nominees it chose, in its order (slate positions count from 1 on a ballot)."""
    visit = state["visits"].get(nominate_id, 0)
    answered = {
        r["seat"]: r
        for r in this_visit(state["reports"], nominate_id, visit)
        if r["answer"] is not None
    }
    return [answered[seat] for seat in state["chosen"].get(nominate_id, []) if seat in answered]


def build(stage: NominateStage) -> StageNodes:
    async def stand(payload: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        alone = {**payload, "candidate": None, "feedback": None}
        asked = await ask_seat(
            ctx,
            alone,
            stage.id,
            stage.purpose,
            "solve",
            [],
            ctx.task.answer_format,
            ctx.read_answer,
        )
        if not isinstance(asked, Consultation):
            return asked
        return seat_result(ctx, payload, stage.id, asked, "answer", asked.reading)

    async def put_up(state: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        if (stop := seat_failure(ctx, state, stage.id)) is not None:
            return stop
        answered = {
            r["seat"]
            for r in this_visit(state["reports"], stage.id, state["visits"][stage.id])
            if r["answer"] is not None
        }
        slate = [seat for seat, _ in state["roster"] if seat in answered]
        decision = "done" if slate else UNPARSABLE
        return leave(ctx, state, stage.id, decision, {"chosen": {stage.id: slate}})

    return parallel_stage(stage.id, stage.nominees, stand, put_up, "nominee", "slate", voting=False)
