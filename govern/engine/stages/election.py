"""A choice vote (``rule: plurality | approval | borda``): every seat of the voters chooses
among the candidates of a slate, in parallel; the winner's answer becomes the candidate.

The slate is the one the nominate stage ``slate`` put up on its latest visit: its nominees
who gave an answer, in roster order, numbered from 1. Each voter sees every candidate (its
number, its nominee's seat, its answer and its working) and casts a ballot by number:

- plurality: one candidate, ``VOTE: 2``;
- approval: one or more distinct candidates, ``VOTE: 1, 3``;
- borda: a ranking of distinct candidates, best first, ``VOTE: 3 > 1 > 2`` (it need not
  rank them all);
- ``VOTE: abstain``, only where the vote has ``abstain: true``.

A number off the slate, a number given twice, or any other form is an invalid ballot
(the manifest's parsing policy decides which line is read, as for any ballot). The count,
in exact integers, in this order:

1. With no valid ballot (an abstention is valid) the vote is ``unparsable``.
2. Quorum: valid ballots, abstentions included, over all the body's seats (vacant ones
   too), below the ``quorum`` share: ``no_quorum``.
3. Scores: plurality gives the candidate named 1 point, approval each candidate approved
   1 point; borda gives a candidate ranked r-th on a slate of m candidates m - r points,
   and an unranked one none.
4. A candidate may win only if some ballot names it and, where ``min_yes`` is set, at
   least ``min_yes`` ballots name it (a plurality vote for it, an approval of it, or a
   place anywhere in a borda ranking): the Doge needed 25 of the 41, however they ranked.
5. The ``choose`` winners are the candidates that may win with the highest scores (the
   earlier on the slate first among equal scores). With fewer than ``choose`` such
   candidates the vote fails. When a candidate left out scores as much as the last winner,
   a tie decides who is in: ``tie_breaker: pass`` lets the earlier slate positions win,
   ``fail`` fails the vote.

On ``pass`` the first winner's answer and working become the candidate, the winners'
seats, best first, are what the stage chooses (``state["chosen"]``, for a later
``{chosen_by: <this stage>}`` body), and the feedback is cleared. On anything else the
candidate stays, the stage chooses nobody, and the feedback gives every candidate's score.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.formats import ABSTAIN, choice_format, parse_choice
from govern.engine.prompts import slate_section
from govern.engine.stages.common import Consultation, StageNodes, Update, leave
from govern.engine.stages.nominate import slate_of
from govern.engine.stages.office import fill_if_office
from govern.engine.stages.parallel import (
    ask_seat,
    body_seats,
    parallel_stage,
    seat_failure,
    seat_result,
    this_visit,
)
from govern.spec.models import UNPARSABLE, VoteStage, exact_share


@dataclass(frozen=True)
class Count:
    """A choice vote's result: the decision, every slate position's score, and on ``pass``
    the winners' slate positions (from 0), best first."""

    decision: str
    scores: tuple[int, ...]
    winners: tuple[int, ...] = ()


def valid(stage: VoteStage, ballot: list[int] | str | None) -> bool:
    return isinstance(ballot, list) or (ballot == ABSTAIN and stage.abstain)


def scores(rule: str, ballots: list[dict], size: int) -> tuple[int, ...]:
    """Each slate position's points from the ballots that name candidates."""
    points = [0] * size
    for ballot in ballots:
        named = ballot["ballot"]
        if not isinstance(named, list):
            continue
        for rank, number in enumerate(named):
            points[number - 1] += size - 1 - rank if rule == "borda" else 1
    return tuple(points)


def named_by(ballots: list[dict], size: int) -> tuple[int, ...]:
    """Each slate position's number of ballots that name it (in any place)."""
    counts = [0] * size
    for ballot in ballots:
        if isinstance(ballot["ballot"], list):
            for number in set(ballot["ballot"]):
                counts[number - 1] += 1
    return tuple(counts)


def tally(stage: VoteStage, ballots: list[dict], size: int, eligible: int) -> Count:
    """The count of a choice vote on a slate of ``size`` candidates with ``eligible`` seats,
    in the order the module's docstring gives."""
    cast = [b for b in ballots if valid(stage, b["ballot"])]
    points = scores(stage.rule, cast, size)
    if not cast:
        return Count(UNPARSABLE, points)
    if stage.quorum is not None and Fraction(len(cast), eligible) < exact_share(stage.quorum):
        return Count("no_quorum", points)
    support = named_by(cast, size)
    needed = max(stage.min_yes or 1, 1)
    ranked = sorted(range(size), key=lambda i: -points[i])  # stable: slate order among equals
    standing = [i for i in ranked if support[i] >= needed]
    k = stage.choose
    if len(standing) < k:
        return Count("fail", points)
    tied_at_cut = len(standing) > k and points[standing[k]] == points[standing[k - 1]]
    if tied_at_cut and stage.tie_breaker != "pass":
        return Count("fail", points)
    return Count("pass", points, tuple(standing[:k]))


def _feedback(stage: VoteStage, slate: list[dict], ballots: list[dict], count: Count) -> str:
    """Why the vote chose nobody: every candidate's score, the abstentions and the invalid
    ballots."""
    lines = [
        f"{n}. {r['seat']} (answer {r['answer']}): {points}"
        for n, (r, points) in enumerate(zip(slate, count.scores, strict=True), start=1)
    ]
    abstained = sum(b["ballot"] == ABSTAIN for b in ballots if valid(stage, b["ballot"]))
    invalid = sum(not valid(stage, b["ballot"]) for b in ballots)
    return (
        f"The {stage.rule} vote chose no winner ({count.decision}). Scores:\n"
        + ("\n".join(lines) or "no candidates")
        + f"\n{abstained} abstained, {invalid} invalid."
    )


def build(stage: VoteStage) -> StageNodes:
    slate_id = stage.slate
    assert slate_id is not None  # the spec requires a slate for a choice vote
    ballot_format = choice_format(stage.rule, stage.abstain)

    def briefing(state: dict) -> dict:
        return {"slate": slate_of(state, slate_id)}

    async def cast(payload: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        slate = payload["slate"]

        def read(text: str) -> list[int] | str | None:
            return parse_choice(
                text, stage.rule, len(slate), ctx.parsing.mode, abstain=stage.abstain
            )

        asked = await ask_seat(
            ctx,
            payload,
            stage.id,
            stage.purpose,
            "elect",
            slate_section(slate, ctx.task),
            ballot_format,
            read,
            inputs=tuple(r["answer"] for r in slate),
            rule=stage.rule,
            abstain=stage.abstain,
        )
        if not isinstance(asked, Consultation):
            return asked
        return seat_result(ctx, payload, stage.id, asked, "ballot", asked.reading)

    async def count(state: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        if (stop := seat_failure(ctx, state, stage.id)) is not None:
            return stop
        ballots = this_visit(state["ballots"], stage.id, state["visits"][stage.id])
        slate = slate_of(state, slate_id)
        eligible = len(body_seats(ctx.institution, stage.voters, state))
        result = tally(stage, ballots, len(slate), eligible)
        if result.decision != "pass":
            pending = {
                "feedback": _feedback(stage, slate, ballots, result),
                "chosen": {stage.id: []},
            }
            return leave(ctx, state, stage.id, result.decision, pending)
        first = slate[result.winners[0]]
        candidate = {
            "stage": stage.id,
            "agent": first["agent"],
            "text": first["text"],
            "answer": first["answer"],
        }
        winners = [slate[i]["seat"] for i in result.winners]
        fill_if_office(ctx, stage, winners, state["item_id"])
        pending = {"candidate": candidate, "feedback": None, "chosen": {stage.id: winners}}
        return leave(ctx, state, stage.id, "pass", pending)

    return parallel_stage(
        stage.id, stage.voters, cast, count, "ballot", "tally", voting=True, briefing=briefing
    )
