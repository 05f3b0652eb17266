"""decompose: the item taken one voted step at a time by the role's micro-agent (MAKER).

The stage is one node: its steps run in ``maker/decompose.py``'s loop, not as graph
supersteps (a million of them would cost more than the work). The Controller lets an agent
act for the role, checks and records every step, and then routes ``done`` or
``undecided``; a step it blocks, a model that fails for good or a spent budget stops the
item with the step named. The item delivers the final state and its result carries the
steps' statistics (``maker``); no turn is kept per sample, so memory stays flat.
"""

from __future__ import annotations

import asyncio

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.prompts import compose
from govern.engine.stages.common import (
    StageNodes,
    Update,
    arrive,
    failed,
    failed_call,
    leave,
    nobody_may_act,
    record_turn,
    route_update,
    spent_budget,
)
from govern.engine.stages.solo import Consultation, consult
from govern.engine.state import combine
from govern.maker.branches import (
    PLAN,
    PLAN_FORMAT,
    SUBANSWER,
    SYNTHESISE,
    BranchRules,
    parse_plan,
    vote_branch,
)
from govern.maker.decompose import (
    BudgetSpent,
    Decomposer,
    Drawer,
    Totals,
    maker_record,
    spending,
)
from govern.maker.voting import Undecided
from govern.models.base import BranchView, ModelError
from govern.models.sim.hanoi import StepClass, step_classes
from govern.models.sim.params import is_simulated
from govern.spec.models import DecomposeStage
from govern.trace.dti import DTIMonitor

PLAN_PURPOSE = (
    "Plan the work: split the task into the sub-questions that solve it. Each will be "
    "answered on its own by others, side by side, and their answers integrated."
)
PARTIAL_PURPOSE = (
    "Integrate the answers so far into the single result they give together; the remaining "
    "sub-questions build on it. State that result as the number of the answer line."
)
FINAL_PURPOSE = "Integrate the sub-questions' answers into the final answer of the task."


def build(stage: DecomposeStage) -> StageNodes:
    async def node(state: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        item = state["item_id"]
        visit, arrival = arrive(state, stage.id)
        agent = ctx.controller.actor_for(item, stage.id, stage.role)
        if agent is None:
            return nobody_may_act(ctx, state, stage.id, arrival)
        if stage.planner is not None:
            return await _branches(ctx, stage, state, visit, arrival, agent)
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
        resumed = ctx.resumed_visits.pop((item, stage.id, visit), None)
        if resumed is not None:  # a killed run's steps, replayed from its ledger at resume
            decomposer.go_on_from(resumed)
            position, first = resumed.position, resumed.first
            if ctx.report is not None:
                ctx.report(f"{item} {stage.id}: resumed at step {first:,} from the ledger")
        totals = decomposer.totals
        decomposer.log = ctx.controller.step_log(
            item, stage.id, agent, work, stage.voting.k, first=first, visit=visit,
            spent=lambda: spending(totals),
        )  # fmt: skip
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
    return _spent_by(decomposer.totals)


async def _branches(
    ctx: RunContext, stage: DecomposeStage, state: dict, visit: int, arrival: Update, agent: str
) -> Update:
    """An item without steps of its own: the planner splits it into sub-questions, each is
    voted on by the micro-agent's samples, all side by side, and the integrator makes one
    answer of theirs: once, when every branch is answered, or (with ``dti``) also whenever
    the integration deficit exceeds delta, taking the answers since the last integration
    and the synthesis so far. Branch answers are taken in branch order as they are decided
    (later branches are still voting meanwhile), so a run is reproducible."""
    item, controller = state["item_id"], ctx.controller
    assert stage.planner is not None and stage.integrator is not None
    update = arrival
    try:
        planned = await consult(
            ctx, state, stage.id, PLAN_PURPOSE, stage.planner, PLAN, visit, [], PLAN_FORMAT,
            parse_plan,
        )  # fmt: skip
    except ModelError as exc:
        return failed(ctx, state, stage.id, exc, combine(update, failed_call(exc)))
    if planned is None:
        return nobody_may_act(ctx, state, stage.id, update)
    update = combine(update, record_turn(ctx, state, stage.id, planned))
    questions: list[str] | None = planned.reading
    if questions is None:
        reason = f"{stage.id}: the plan could not be read (no SUBQUESTION: lines)"
        return leave(
            ctx, state, stage.id, "undecided", combine(update, {"errors": [reason]}), agent
        )
    count, model, totals = len(questions), ctx.model_for(agent), Totals()
    drawer = Drawer(
        ctx.router,
        model,
        stage.red_flags,
        totals,
        lambda *_: _over_budget(ctx, state, update, totals),
    )
    listing = "\n".join(f"{n}. {q}" for n, q in enumerate(questions, start=1))
    oracle = ctx.oracle(state, stage.id, agent, SUBANSWER, visit)

    def messages(index: int) -> list[dict[str, str]]:
        purpose = f"{stage.purpose}\nAnswer only sub-question {index + 1}: {questions[index]}"
        sections = [("Sub-questions of the task", listing)]
        output = ctx.task.answer_format.prompt()
        return compose(ctx.institution, stage.role, state["question"], purpose, sections, output)

    votes = [
        asyncio.create_task(
            vote_branch(
                drawer, messages(n), oracle, n, count, ctx.read_answer, stage.voting,
                stage.red_flags, seeded=not is_simulated(model),
                concurrent=ctx.router.waits(model),
            )
        )
        for n in range(count)
    ]  # fmt: skip
    log = controller.step_log(
        item, stage.id, agent, BranchRules(), stage.voting.k, visit=visit,
        spent=lambda: spending(totals),
    )  # fmt: skip
    monitor = DTIMonitor(stage.dti) if stage.dti is not None else None
    answers: tuple[str, ...] = ()
    synthesis: Consultation | None = None
    first, fired = 0, 0
    try:
        for index, pending in enumerate(votes):
            try:
                decision = await pending
            except Undecided as undecided:
                log.undecided(index, answers, undecided.rounds, undecided.votes)
                reason = f"{stage.id}: sub-question {index + 1}: {undecided}"
                done = combine(update, _spent_by(totals), {"errors": [reason]})
                return leave(ctx, state, stage.id, "undecided", done, agent)
            except BudgetSpent:
                decision = None
            if decision is not None:
                log.check(index, answers, decision)  # no rule to break: the vote is checked
                totals.add(decision)
                answers = (*answers, decision.candidate)
            if decision is None or _over_budget(ctx, state, update, totals):
                log.close(answers)
                reason = f"{stage.id}: a budget was spent at sub-question {index + 1}"
                transition = controller.stop(item, stage.id, None, "cut_off", reason)
                cut = combine(update, _spent_by(totals), {"errors": [reason]})
                return combine(cut, route_update(transition, ""))
            if monitor is None or index == count - 1 or not monitor.coordination(item):
                continue
            segment, deficit = monitor.segment(item), monitor.deficit(item)
            synthesis = await _integrate(
                ctx, stage, state, visit, questions, answers, first, index, synthesis
            )
            update = combine(update, record_turn(ctx, state, stage.id, synthesis))
            controller.merged(
                item, stage.id, synthesis.agent, "dti", (first, index),
                len(_inputs(answers, first, index, synthesis)), segment, deficit,
            )  # fmt: skip
            monitor.integrated(item)
            first, fired = index + 1, fired + 1
        log.close(answers)
        final = await _integrate(
            ctx, stage, state, visit, questions, answers, first, count - 1, synthesis
        )
    except ModelError as exc:
        log.close(answers)
        return failed(
            ctx, state, stage.id, exc, combine(update, _spent_by(totals), failed_call(exc))
        )
    finally:
        for pending in votes:
            pending.cancel()
        if monitor is not None:
            monitor.forget(item)
    update = combine(update, record_turn(ctx, state, stage.id, final))
    inputs = _inputs(answers, first, count - 1, synthesis)
    controller.merged(item, stage.id, final.agent, "end", (first, count - 1), len(inputs))
    answer = final.reading
    produced = {
        "maker": {
            "branches": count,
            "k": stage.voting.k,
            "integrations": fired + 1,
            "dti": stage.dti.model_dump() if stage.dti is not None else None,
            "dti_integrations": fired,
            "samples": totals.samples,
            "valid_votes": totals.valid,
            "red_flags": {"too_long": totals.too_long, "format": totals.format},
            "collisions": totals.collisions,
            "steps_by_rounds": {str(r): n for r, n in sorted(totals.rounds.items())},
        },
        **(
            {
                "candidate": {
                    "stage": stage.id,
                    "agent": final.agent,
                    "text": final.response.text,
                    "answer": answer,
                }
            }
            if answer is not None
            else {}
        ),
    }
    return leave(ctx, state, stage.id, "done", combine(update, _spent_by(totals), produced), agent)


def _inputs(
    answers: tuple[str, ...], first: int, last: int, synthesis: Consultation | None
) -> tuple[str, ...]:
    """What an integration of branches ``first`` .. ``last`` takes: the synthesis so far
    (its answer), then the branches' answers."""
    carried = () if synthesis is None or first == 0 else (synthesis.reading or "",)
    return (*carried, *answers[first : last + 1])


async def _integrate(
    ctx: RunContext,
    stage: DecomposeStage,
    state: dict,
    visit: int,
    questions: list[str],
    answers: tuple[str, ...],
    first: int,
    last: int,
    synthesis: Consultation | None,
) -> Consultation:
    """One integration by the integrator: the answers of branches ``first`` .. ``last``
    (after the synthesis so far), into the result they give; the last, into the answer."""
    assert stage.integrator is not None
    final = last == len(questions) - 1
    lines = [f"{n + 1}. {questions[n]} -> {answers[n]}" for n in range(first, last + 1)]
    sections = [("Sub-questions and their voted answers", "\n".join(lines))]
    if synthesis is not None and first > 0:
        sections.insert(
            0, (f"The result of sub-questions 1-{first}, integrated", synthesis.response.text)
        )
    purpose = FINAL_PURPOSE if final else PARTIAL_PURPOSE
    asked = await consult(
        ctx, state, stage.id, purpose, stage.integrator, SYNTHESISE, visit, sections,
        ctx.task.answer_format, ctx.read_answer,
        inputs=_inputs(answers, first, last, synthesis),
        branch=BranchView(first, last, len(questions)),
    )  # fmt: skip
    if asked is None:
        raise ModelError(stage.integrator, "no agent may integrate")
    return asked


def _over_budget(ctx: RunContext, state: dict, update: Update, totals: Totals) -> bool:
    """Whether the item's budget is spent by what it spent before the stage, the plan and
    integrations so far (``update``) and the branches' votes (``totals``)."""
    calls = state["calls"] + update.get("calls", 0) + totals.calls
    tokens = sum(state[k] + update.get(k, 0) for k in ("prompt_tokens", "completion_tokens"))
    return spent_budget(ctx, calls, tokens + totals.prompt_tokens + totals.completion_tokens)


def _spent_by(totals: Totals) -> Update:
    """The calls the branches' votes made, for the item's accounting."""
    return {
        "calls": totals.calls,
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "cost": totals.cost,
        "unknown_cost_calls": totals.unknown_cost_calls,
    }
