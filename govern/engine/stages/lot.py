"""lot: the Controller draws seats from a body by lot; no model is asked.

The seats drawn are what a later body ``{chosen_by: LOT}`` takes (``state["chosen"]``).
The draw is the Controller's, not the stage's, so that it is written to the ledger and
the audit can redo it from the run's seed. Fewer seats than ``draw`` (barred agents are
left out of the pool) is a smaller lot; nobody left to draw stops the item.
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.stages.common import StageNodes, Update, arrive, leave, nobody_may_act
from govern.engine.stages.office import fill_if_office
from govern.engine.stages.parallel import body_seats
from govern.engine.state import combine
from govern.spec.models import LotStage


def build(stage: LotStage) -> StageNodes:
    async def node(state: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        visit, pending = arrive(state, stage.id)
        seats = body_seats(ctx.institution, stage.pool, state)
        drawn = ctx.controller.draw_lot(state["item_id"], stage.id, visit, seats, stage.draw)
        if not drawn:
            return nobody_may_act(ctx, state, stage.id, pending)
        fill_if_office(ctx, stage, drawn, state["item_id"])
        pending = combine(pending, {"chosen": {stage.id: drawn}})
        return leave(ctx, state, stage.id, "done", pending)

    return StageNodes(entry=stage.id, exit=stage.id, nodes={stage.id: node})
