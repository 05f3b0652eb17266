"""vote: every seat of the voter roles casts a ballot in parallel; the rule decides.

A ballot is ``yes``, ``no`` or, where the vote has ``abstain: true``, ``abstain``;
anything else (``VOTE: abstain`` too, where abstaining is not allowed) is invalid.
The count, in this order:

1. Veto: a valid ``no`` for a seat of a role in ``veto_by`` (the seat's role, even
   when a stand-in casts it) returns ``vetoed`` at once, before quorum and rule; an
   invalid ballot from such a seat is no veto.
2. With no valid ballot the vote is ``unparsable``.
3. Quorum: valid ballots, abstentions included, over all the body's seats (vacant
   ones too), below the ``quorum`` share: ``no_quorum``.
4. When every valid ballot abstains nobody is for the motion: ``fail``.
5. ``min_yes``: fewer yes ballots than that (ballots, not weight): ``fail``.
6. The rule, over yes and no alone: majority (more yes than no), supermajority (yes
   share at least the threshold), unanimity (no valid 'no'), weighted (yes weight
   share above the threshold, default one half). Shares and thresholds compare
   exactly, as fractions (``threshold: 25/41`` means 25 of 41, ``0.667`` means
   667/1000). A share equal to the majority's or weighted threshold is a tie, for the
   tie-breaker: pass, fail, or the chair's own yes or no (the chair may not abstain).
"""

from __future__ import annotations

from fractions import Fraction
from functools import partial

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.formats import VOTE_ABSTAIN_FORMAT, VOTE_FORMAT
from govern.engine.prompts import motion_sections
from govern.engine.stages import election
from govern.engine.stages.common import Consultation, StageNodes, Update, leave, record_turn
from govern.engine.stages.parallel import (
    ask_seat,
    body_seats,
    parallel_stage,
    seat_failure,
    seat_result,
    this_visit,
)
from govern.engine.stages.solo import consult_or_stop
from govern.engine.state import combine
from govern.spec.models import UNPARSABLE, VETOED, VoteStage, exact_share

TIE = "tie"
ABSTAIN = "abstain"


def role_of(seat: str) -> str:
    return seat.split("#")[0]


def vetoes(stage: VoteStage, ballots: list[dict]) -> list[dict]:
    """The valid 'no' ballots cast for seats whose role may veto."""
    vetoing = set(stage.veto_by or ())
    return [b for b in ballots if b["ballot"] == "no" and role_of(b["seat"]) in vetoing]


def tally(stage: VoteStage, ballots: list[dict], eligible: int) -> str:
    """pass, fail, vetoed, no_quorum, unparsable, or tie (for the tie-breaker), in the
    order the module's docstring gives."""
    if vetoes(stage, ballots):
        return VETOED
    counted = ("yes", "no", ABSTAIN) if stage.abstain else ("yes", "no")
    valid = [b for b in ballots if b["ballot"] in counted]
    if not valid:
        return UNPARSABLE
    if stage.quorum is not None and Fraction(len(valid), eligible) < exact_share(stage.quorum):
        return "no_quorum"
    cast = [b for b in valid if b["ballot"] != ABSTAIN]
    if not cast:
        return "fail"
    if stage.min_yes is not None and sum(b["ballot"] == "yes" for b in cast) < stage.min_yes:
        return "fail"
    weights = stage.weights or {}

    def weight(ballot: dict) -> Fraction:
        if stage.rule != "weighted":
            return Fraction(1)
        return Fraction(str(weights.get(role_of(ballot["seat"]), 1.0)))

    yes = sum((weight(b) for b in cast if b["ballot"] == "yes"), Fraction(0))
    no = sum((weight(b) for b in cast if b["ballot"] == "no"), Fraction(0))
    if stage.rule == "unanimity":
        return "pass" if no == 0 else "fail"
    share = yes / (yes + no) if yes + no else Fraction(0)
    if stage.rule == "supermajority":
        assert stage.threshold is not None  # the spec requires one
        return "pass" if share >= exact_share(stage.threshold) else "fail"
    threshold = Fraction(1, 2)
    if stage.rule == "weighted" and stage.threshold is not None:
        threshold = exact_share(stage.threshold)
    if share == threshold:
        return TIE
    return "pass" if share > threshold else "fail"


def _feedback(stage: VoteStage, ballots: list[dict], decision: str) -> str | None:
    """Why the motion did not pass: the count (abstentions too, where allowed), who vetoed
    it, and the reasons of those against."""
    if decision == "pass":
        return None
    count = {k: sum(b["ballot"] == k for b in ballots) for k in ("yes", "no", ABSTAIN)}
    abstained = count[ABSTAIN] if stage.abstain else 0
    invalid = len(ballots) - count["yes"] - count["no"] - abstained
    why = decision
    if decision == VETOED:
        why = "vetoed by " + ", ".join(
            b["seat"] if b["agent"] == b["seat"] else f"{b['seat']} (cast by {b['agent']})"
            for b in vetoes(stage, ballots)
        )
    abstentions = f"{abstained} abstained, " if stage.abstain else ""
    reasons = "\n\n".join(f"{b['seat']}: {b['text']}" for b in ballots if b["ballot"] == "no")
    return (
        f"The vote went against the candidate ({why}): {count['yes']} yes, "
        f"{count['no']} no, {abstentions}{invalid} invalid.\n\n{reasons}"
    ).strip()


def build(stage: VoteStage) -> StageNodes:
    if stage.choice:
        return election.build(stage)
    ballot_format = VOTE_ABSTAIN_FORMAT if stage.abstain else VOTE_FORMAT

    async def cast(payload: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        asked = await ask_seat(
            ctx,
            payload,
            stage.id,
            stage.purpose,
            "vote",
            motion_sections(payload.get("candidate"), ctx.task, ctx.institution),
            ballot_format,
            partial(ctx.read_ballot, abstain=stage.abstain),
            abstain=stage.abstain,
        )
        if not isinstance(asked, Consultation):
            return asked
        return seat_result(ctx, payload, stage.id, asked, "ballot", asked.reading)

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
        pending = combine(pending, {"feedback": _feedback(stage, ballots, decision)})
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
