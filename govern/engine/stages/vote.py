"""vote: every seat of the voter roles casts a ballot in parallel; the rule decides.

Rules: majority (more yes than no), supermajority (yes share at least the
threshold), unanimity (no valid 'no'), weighted (yes weight share above the
threshold, default one half). Ballots that cannot be parsed are invalid; below
the quorum share of valid ballots the vote returns ``no_quorum``; with none
valid it is ``unparsable``. Ties go to the tie-breaker: pass, fail, or the
chair's own ballot.
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.formats import VOTE_FORMAT
from govern.engine.prompts import motion_sections
from govern.engine.stages import election
from govern.engine.stages.common import Consultation, StageNodes, Update, leave, record_turn
from govern.engine.stages.parallel import (
    ask_seat,
    body_seats,
    parallel_stage,
    seat_failure,
    this_visit,
)
from govern.engine.stages.solo import consult_or_stop
from govern.engine.state import combine
from govern.spec.models import UNPARSABLE, VoteStage

TIE = "tie"


def tally(stage: VoteStage, ballots: list[dict], eligible: int) -> str:
    """pass, fail, no_quorum, unparsable, or tie (for the tie-breaker)."""
    valid = [b for b in ballots if b["ballot"] in ("yes", "no")]
    if not valid:
        return UNPARSABLE
    if stage.quorum is not None and len(valid) / eligible < stage.quorum:
        return "no_quorum"
    weights = stage.weights or {}

    def weight(ballot: dict) -> float:
        return weights.get(ballot["seat"].split("#")[0], 1.0) if stage.rule == "weighted" else 1.0

    yes = sum(weight(b) for b in valid if b["ballot"] == "yes")
    no = sum(weight(b) for b in valid if b["ballot"] == "no")
    if stage.rule == "unanimity":
        return "pass" if no == 0 else "fail"
    share = yes / (yes + no) if yes + no else 0.0
    if stage.rule == "supermajority":
        return "pass" if share >= stage.threshold else "fail"
    threshold = stage.threshold if stage.rule == "weighted" and stage.threshold else 0.5
    if share == threshold:
        return TIE
    return "pass" if share > threshold else "fail"


def _feedback(ballots: list[dict], decision: str) -> str | None:
    if decision == "pass":
        return None
    counts = {k: sum(b["ballot"] == k for b in ballots) for k in ("yes", "no", None)}
    reasons = "\n\n".join(f"{b['seat']}: {b['text']}" for b in ballots if b["ballot"] == "no")
    return (
        f"The vote went against the candidate ({decision}): {counts['yes']} yes, "
        f"{counts['no']} no, {counts[None]} invalid.\n\n{reasons}"
    ).strip()


def build(stage: VoteStage) -> StageNodes:
    if stage.choice:
        return election.build(stage)

    async def cast(payload: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        asked = await ask_seat(
            ctx,
            payload,
            stage.id,
            stage.purpose,
            "vote",
            motion_sections(payload.get("candidate"), ctx.task, ctx.institution),
            VOTE_FORMAT,
            ctx.read_ballot,
        )
        if not isinstance(asked, Consultation):
            return asked
        ballot = asked.reading
        entry = {
            "stage": stage.id,
            "visit": asked.visit,
            "seat": payload["seat"],
            "agent": asked.agent,
            "ballot": ballot,
            "text": asked.response.text,
        }
        record = record_turn(ctx, payload, stage.id, asked, ballot=ballot, seat=payload["seat"])
        return combine(record, {"ballots": [entry]})

    async def decide(state: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        if (stop := seat_failure(ctx, state, stage.id)) is not None:
            return stop
        visit = state["visits"][stage.id]
        ballots = this_visit(state["ballots"], stage.id, visit)
        eligible = len(body_seats(ctx.institution, stage.voters, state))
        decision = tally(stage, ballots, eligible)
        pending: Update = {}
        if decision == TIE:
            decision, pending = await _break_tie(ctx, state, visit)
            if decision is None:
                return pending
        pending = combine(pending, {"feedback": _feedback(ballots, decision)})
        return leave(ctx, state, stage.id, decision, pending)

    async def _break_tie(ctx: RunContext, state: dict, visit: int) -> tuple[str | None, Update]:
        if stage.tie_breaker != "chair":
            return stage.tie_breaker, {}
        asked = await consult_or_stop(
            ctx,
            state,
            {},
            stage.id,
            stage.purpose,
            stage.chair,
            "vote",
            visit,
            motion_sections(state.get("candidate"), ctx.task, ctx.institution),
            VOTE_FORMAT,
            ctx.read_ballot,
        )
        if not isinstance(asked, Consultation):
            return None, asked
        ballot = asked.reading
        record = record_turn(ctx, state, stage.id, asked, ballot=ballot, chair=True)
        return ("pass" if ballot == "yes" else "fail"), record

    return parallel_stage(stage.id, stage.voters, cast, decide, "ballot", "tally", voting=True)
