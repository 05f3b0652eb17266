"""office: is the office held? ``held`` when it has holders in their term, else ``vacant``,
so that an election or a lot runs only when the office needs filling. No model is asked.
With several items in flight, the first to find the office vacant fills it and the others
wait here for its choice (or for it to end without one), so an office is filled once.

``fill_if_office`` is what a stage that chooses seats (a lot, a choice vote) calls once it
has chosen: if the stage ``fills`` an office, the Controller seats the chosen there.
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.stages.common import StageNodes, Update, arrive, leave
from govern.spec.models import HELD, VACANT, LotStage, OfficeStage, VoteStage


def build(stage: OfficeStage) -> StageNodes:
    async def node(state: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        _, arrival = arrive(state, stage.id)
        held = await ctx.controller.office_stage(state["item_id"], stage.office)
        decision = HELD if held else VACANT
        return leave(ctx, state, stage.id, decision, arrival)

    return StageNodes(entry=stage.id, exit=stage.id, nodes={stage.id: node})


def fill_if_office(
    ctx: RunContext, stage: LotStage | VoteStage, seats: list[str], item: str
) -> bool:
    """After ``stage`` chose ``seats``: if it fills an office, they hold it from now on
    (True), unless another item in flight filled it first (False, recorded as such)."""
    return stage.fills is not None and ctx.controller.fill_office(
        item, stage.fills, seats, stage.id
    )
