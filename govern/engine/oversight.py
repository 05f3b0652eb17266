"""Oversight at run time: after a watched stage decides, its overseers may intervene.

``compile.py`` wraps the deciding node of every watched stage in ``overseen``. Once the
stage's own transition has been checked, applied and logged, the Controller draws which
overseers examine it (``Controller.oversee``); each one examined is consulted in turn
(act ``oversee``) with the decision and the candidate as it stands, and upholds the
decision or answers one of its interventions. The Controller checks and applies an
intervention in place of the stage's route (``Controller.intervene``), and the
overseer's reasons go to whoever reworks the item. An unparsable answer upholds. An
item the stage stopped, or a stage run again with a stand-in, is not overseen; the
item's limits hold after an overseer's call as after any stage's.
"""

from __future__ import annotations

from collections.abc import Callable

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.formats import oversight_format, parse_decision
from govern.engine.prompts import Section, candidate_section, feedback_section
from govern.engine.routing import RETRY, STOP, edge_key
from govern.engine.stages.common import (
    Consultation,
    Update,
    over_limits,
    record_turn,
    route_update,
)
from govern.engine.stages.solo import Reader, consult_or_stop
from govern.engine.state import combine
from govern.spec.models import UPHOLD, Oversight, StageBase

ACT = "oversee"


def overseen(action: Callable, stage_id: str) -> Callable:
    """The deciding node of a watched stage, followed by its overseers' examination."""

    async def node(state: dict, runtime: Runtime[RunContext]) -> Update:
        update = await action(state, runtime)
        if update["route"] in (STOP, RETRY) or update.get("outcome"):
            return update
        return await oversee(runtime.context, state, stage_id, update)

    return node


async def oversee(ctx: RunContext, state: dict, stage_id: str, update: Update) -> Update:
    """The stage's ``update`` as the overseers the Controller chose leave it: unchanged
    but for their turns when all uphold, routed to an intervention's target otherwise."""
    item = state["item_id"]
    stage = ctx.institution.stage(stage_id)
    decision = update["decision"]
    target = update["route"].removeprefix(edge_key(decision, ""))
    visits = combine(state, update)["visits"]
    pending = update
    for index in ctx.controller.oversee(item, stage_id, visits[stage_id], visits):
        oversight = ctx.institution.oversight[index]
        now = combine(state, pending)
        asked = await consult_or_stop(
            ctx,
            now,
            pending,
            stage_id,
            oversight.purpose,
            oversight.role,
            ACT,
            visits[stage_id],
            _sections(ctx, now, stage, decision, target),
            oversight_format(oversight.interventions),
            _reader(ctx, oversight),
            decisions=(*oversight.interventions, UPHOLD),
        )
        if not isinstance(asked, Consultation):
            return asked  # the overseer's call failed, or nobody may oversee: the item stops
        word = asked.reading
        turn = record_turn(ctx, now, stage_id, asked, oversight=True, decision=word)
        pending = combine(pending, turn)
        chosen = word if word in oversight.interventions else UPHOLD
        if over_limits(ctx, state, pending):
            stopped = ctx.controller.stop(item, stage_id, chosen, "cut_off")
            return combine(pending, route_update(stopped, chosen))
        if chosen == UPHOLD:
            continue
        moved = ctx.controller.intervene(
            item, stage_id, index, chosen, asked.agent, visits, update["route"]
        )
        if moved is not None:
            reasons = {"feedback": asked.response.text}
            return combine(pending, reasons, route_update(moved, chosen))
    return pending


def _reader(ctx: RunContext, oversight: Oversight) -> Reader:
    words = (UPHOLD, *oversight.interventions)
    return lambda text: parse_decision(text, words, ctx.parsing.mode)


def _sections(
    ctx: RunContext, now: dict, stage: StageBase, decision: str, target: str
) -> list[Section]:
    """What the overseer sees: the decision and where it sends the item, the candidate as it
    stands, and the reasons the stage gave for sending it back, if it did."""
    watched = (
        "The decision under oversight",
        f"Stage {stage.id} decided '{decision}', which sends the item to {target}. The "
        f"stage's part: {stage.purpose.strip()}",
    )
    candidate = candidate_section(now.get("candidate"), ctx.task, ctx.institution)
    return [watched, *candidate, *feedback_section(now.get("feedback"))]
