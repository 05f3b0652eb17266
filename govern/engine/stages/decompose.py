"""decompose: the item taken one voted step at a time by the role's micro-agent (MAKER).

The stage is one node: its steps run in ``maker/decompose.py``'s loop, not as graph
supersteps (a million of them would cost more than the work). The Controller lets an agent
act for the role, checks and records every step, and then routes ``done`` or
``undecided``; a step it blocks, a model that fails for good or a spent budget stops the
item with the step named. The item delivers the final state and its result carries the
steps' statistics (``maker``); no turn is kept per sample, so memory stays flat.
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.stages.common import (
    StageNodes,
    Update,
    arrive,
    failed,
    failed_call,
    leave,
    nobody_may_act,
    route_update,
    spent_budget,
)
from govern.engine.state import combine
from govern.maker.decompose import Decomposer, ReplayError, maker_record
from govern.models.base import ModelError
from govern.models.sim.hanoi import StepClass, step_classes
from govern.models.sim.params import is_simulated
from govern.spec.models import DecomposeStage


def build(stage: DecomposeStage) -> StageNodes:
    async def node(state: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        item = state["item_id"]
        visit, arrival = arrive(state, stage.id)
        agent = ctx.controller.actor_for(item, stage.id, stage.role)
        if agent is None:
            return nobody_may_act(ctx, state, stage.id, arrival)
        work, scorer = ctx.task.work(item), ctx.task.scorer()  # type: ignore[attr-defined]
        model = ctx.model_for(agent)
        decomposer = Decomposer(
            work=work,
            scorer=scorer,
            router=ctx.router,
            model=model,
            item=item,
            stage=stage.id,
            agent=agent,
            voting=stage.voting,
            red_flags=stage.red_flags,
            seed=ctx.seed,
            visit=visit,
            spent=lambda calls, tokens: spent_budget(
                ctx,
                state["calls"] + calls,
                state["prompt_tokens"] + state["completion_tokens"] + tokens,
            ),
            report=ctx.report,
            label=f" [{model}: SIMULATED]" if is_simulated(model) else f" [{model}]",
        )
        position, first = work.start(), 0
        resumed = ctx.resumed_steps.pop(item, None)
        if resumed:  # a killed run's steps: replayed from the ledger, not taken again
            try:
                position, first = decomposer.replay(resumed)
            except ReplayError as exc:
                transition = ctx.controller.stop(item, stage.id, None, "error", str(exc))
                return combine(arrival, {"errors": [str(exc)]}, route_update(transition, ""))
            if ctx.report is not None:
                ctx.report(f"{item} {stage.id}: resumed at step {first:,} from the ledger")
        decomposer.log = ctx.controller.step_log(item, stage.id, agent, work, stage.voting.k, first)
        try:
            outcome = await decomposer.run(position, first)
        except ModelError as exc:
            spent = _spent(decomposer)
            step = decomposer.totals.steps
            return failed(
                ctx, state, stage.id, ModelError(exc.model, f"step {step}: {exc.reason}",
                exc.attempts), combine(arrival, spent, failed_call(exc))
            )  # fmt: skip
        done = {
            **_spent(decomposer),
            "maker": maker_record(decomposer, stage.voting, _classes(ctx, model)),
            "candidate": {
                "stage": stage.id,
                "agent": agent,
                "text": work.delivered(outcome.position),
                "answer": work.delivered(outcome.position),
            },
        }
        pending = combine(arrival, done)
        if outcome.decision in ("done", "undecided"):
            if outcome.reason is not None and ctx.report is not None:
                ctx.report(outcome.reason)  # a loud failure: the console, not only the files
            errors = {"errors": [outcome.reason]} if outcome.reason else {}
            return leave(ctx, state, stage.id, outcome.decision, combine(pending, errors), agent)
        reason = outcome.reason or outcome.decision
        if ctx.report is not None:
            ctx.report(reason)
        transition = ctx.controller.stop(item, stage.id, None, outcome.decision, reason)
        return combine(pending, {"errors": [reason]}, route_update(transition, ""))

    return StageNodes(entry=stage.id, exit=stage.id, nodes={stage.id: node})


def _classes(ctx: RunContext, model: str) -> list[StepClass] | None:
    """A simulated micro-agent's classes of steps, for the theory's prediction."""
    if not is_simulated(model):
        return None
    return step_classes(ctx.router.client(model).params)  # type: ignore[attr-defined]


def _spent(decomposer: Decomposer) -> Update:
    """The calls the steps made, for the item's accounting (one sample, one call)."""
    totals = decomposer.totals
    return {
        "calls": totals.calls,
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "cost": totals.cost,
        "unknown_cost_calls": totals.unknown_cost_calls,
    }
