"""Slates and choice among candidates: the nominate stage, choice ballots, their count, the
simulated elector, and an institution that nominates, elects and seats its winners."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govern.engine.formats import ABSTAIN, parse_choice, render_choice
from govern.engine.prompts import slate_section
from govern.engine.stages.election import named_by, tally
from govern.models.base import ModelRequest, ModelResponse, Oracle
from govern.models.sim.behaviour import simulate
from govern.models.sim.client import SimClient, sim_response
from govern.models.sim.params import PRESETS, SimParams
from govern.models.sim.scripted import ScriptedClient
from govern.spec.checks import checked_institution, load_checked
from govern.spec.models import Institution, VoteStage
from govern.tasks.gsm8k import GSM8K
from tests.engine_harness import run_item

RULES = ("plurality", "approval", "borda")
MODES = ("strict", "tolerant", "flexible")

# -- ballots -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "line", "expected"),
    [
        ("plurality", "VOTE: 2", [2]),
        ("plurality", "vote:3", [3]),
        ("plurality", "VOTE: 4", None),  # off the slate
        ("plurality", "VOTE: 0", None),
        ("plurality", "VOTE: 1, 2", None),  # plurality names one
        ("plurality", "VOTE: yes", None),
        ("plurality", "VOTE: two", None),
        ("approval", "VOTE: 1, 3", [1, 3]),
        ("approval", "VOTE: 3,1", [3, 1]),
        ("approval", "VOTE: 2", [2]),
        ("approval", "VOTE: 1, 1", None),  # twice
        ("approval", "VOTE: 1 > 3", None),
        ("approval", "VOTE: 1, ", None),
        ("borda", "VOTE: 3 > 1 > 2", [3, 1, 2]),
        ("borda", "VOTE: 2>3", [2, 3]),  # a partial ranking
        ("borda", "VOTE: 2 > 2", None),
        ("borda", "VOTE: 1, 2", None),
        ("borda", "VOTE: 1 > 9", None),
    ],
)
def test_each_rule_reads_its_own_ballot_form(rule: str, line: str, expected: Any) -> None:
    assert parse_choice(f"I compared them.\n{line}", rule, 3) == expected


def test_abstaining_is_a_ballot_only_where_the_vote_allows_it() -> None:
    for rule in RULES:
        assert parse_choice("VOTE: abstain", rule, 3) is None
        assert parse_choice("VOTE: Abstain", rule, 3, abstain=True) == ABSTAIN


@pytest.mark.parametrize(
    ("text", "strict", "tolerant", "flexible"),
    [
        ("Reasons.\nVOTE: 2", [2], [2], [2]),
        ("Reasons.\n**VOTE: 2**", None, [2], [2]),
        ("VOTE: 2\nThat is my choice.", None, [2], [2]),
        ("VOTE: 2\nOne.\nTwo.\nThree.", None, None, [2]),
        ("I think VOTE: 2, as it checks out.", None, None, [2]),
        ("VOTE: 2, as it checks out.", None, None, [2]),
        ("VOTE: 1 and 3 perhaps", None, None, [1]),
        ("No ballot at all.", None, None, None),
    ],
)
def test_the_parsing_policy_picks_the_ballot_line(
    text: str, strict: Any, tolerant: Any, flexible: Any
) -> None:
    for mode, expected in zip(MODES, (strict, tolerant, flexible), strict=True):
        assert parse_choice(text, "approval", 3, mode) == expected, mode


def test_flexible_reading_does_not_shorten_a_ballot_into_another() -> None:
    # "VOTE: 1, 3" is not a plurality ballot for 1, nor "VOTE: 3 > 1" an approval of 3
    assert parse_choice("VOTE: 1, 3", "plurality", 3, "flexible") is None
    assert parse_choice("VOTE: 3 > 1", "approval", 3, "flexible") is None
    assert parse_choice("VOTE: 00000000000002", "plurality", 3, "flexible") is None


@st.composite
def valid_ballots(draw: st.DrawFn) -> tuple[str, int, list[int] | str, bool]:
    rule = draw(st.sampled_from(RULES))
    size = draw(st.integers(1, 30))
    abstain = draw(st.booleans())
    if abstain and draw(st.booleans()):
        return rule, size, ABSTAIN, abstain
    order = draw(st.permutations(range(1, size + 1)))
    length = 1 if rule == "plurality" else draw(st.integers(1, size))
    return rule, size, list(order[:length]), abstain


@settings(max_examples=300, deadline=None)
@given(valid_ballots(), st.sampled_from(MODES), st.sampled_from(["", "I weighed them.\n"]))
def test_a_rendered_ballot_parses_back(
    case: tuple[str, int, list[int] | str, bool], mode: str, reason: str
) -> None:
    rule, size, ballot, abstain = case
    text = reason + render_choice(ballot, rule)
    assert parse_choice(text, rule, size, mode, abstain=abstain) == ballot


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("VOTE:vote abstain0123456789,> \n*#`-.x")) | st.text(),
    st.sampled_from(RULES),
    st.integers(0, 12),
    st.sampled_from(MODES),
    st.booleans(),
)
def test_junk_never_raises_and_reads_only_valid_ballots(
    text: str, rule: str, size: int, mode: str, abstain: bool
) -> None:
    ballot = parse_choice(text, rule, size, mode, abstain=abstain)
    if ballot is None or (abstain and ballot == ABSTAIN):
        return
    assert isinstance(ballot, list) and ballot
    assert len(set(ballot)) == len(ballot) and all(1 <= n <= size for n in ballot)
    assert rule != "plurality" or len(ballot) == 1


def test_a_voter_sees_numbered_candidates_with_long_working_clipped() -> None:
    long = "A step of the working.\n" * 200 + "#### 9"
    slate = [{"seat": "scholar#1", "answer": "7", "text": "Short.\n#### 7"},
             {"seat": "scholar#3", "answer": "9", "text": long}]  # fmt: skip
    [(title, body)] = slate_section(slate, GSM8K())
    assert title == "The candidates"
    first, second = body.split("\n\n")
    assert first == "### Candidate 1: scholar#1, answer 7\nShort.\n(answer stated: 7)"
    assert second.startswith("### Candidate 2: scholar#3, answer 9\nA step of the working.")
    assert "characters left out" in second and second.endswith("(answer stated: 9)")
    assert len(second) < 1700 < len(long)


# -- the count ------------------------------------------------------------------------------


def vote(**fields: Any) -> VoteStage:
    base = {"id": "elect", "kind": "vote", "voters": ["elder"], "purpose": "p",
            "rule": "plurality", "slate": "nominate"}  # fmt: skip
    return VoteStage.model_validate({**base, **fields})


def ballots(*marks: Any) -> list[dict]:
    return [{"seat": f"elder#{i}", "ballot": m} for i, m in enumerate(marks, start=1)]


def test_plurality_elects_the_most_named_candidate() -> None:
    count = tally(vote(), ballots([2], [2], [1], None), 3, eligible=4)
    assert (count.decision, count.scores, count.winners) == ("pass", (1, 2, 0), (1,))


def test_approval_counts_every_approval() -> None:
    count = tally(vote(rule="approval"), ballots([1, 3], [3], [2, 3], [1]), 3, eligible=4)
    assert (count.decision, count.scores, count.winners) == ("pass", (2, 1, 3), (2,))


def test_borda_gives_m_minus_rank_points_and_none_unranked() -> None:
    # slate of 3: first 2 points, second 1, third and unranked 0
    count = tally(vote(rule="borda"), ballots([3, 1, 2], [3], [2, 3]), 3, eligible=3)
    assert count.scores == (1, 0 + 2, 2 + 2 + 1)
    assert (count.decision, count.winners) == ("pass", (2,))
    # a tie for the one seat fails under the default tie-breaker
    tied = tally(vote(rule="borda"), ballots([3, 1, 2], [1], [2, 3]), 3, eligible=3)
    assert (tied.scores, tied.decision) == ((1 + 2, 0 + 2, 2 + 1), "fail")


def test_min_yes_not_reached_fails() -> None:
    assert tally(vote(min_yes=3), ballots([1], [1], [2]), 2, eligible=3).decision == "fail"
    assert tally(vote(min_yes=2), ballots([1], [1], [2]), 2, eligible=3).decision == "pass"
    # choose 2 needs two candidates at min_yes
    two = vote(choose=2, min_yes=2)
    assert tally(two, ballots([1], [1], [2], [2], [3]), 3, eligible=5).winners == (0, 1)
    assert tally(two, ballots([1], [1], [2], [3]), 3, eligible=4).decision == "fail"


def test_min_yes_counts_ballots_that_name_a_candidate_not_borda_points() -> None:
    # candidate 1 is ranked on three ballots but first on none: 3 ballots, 3 points
    ranked = ballots([2, 1, 3], [3, 1, 2], [2, 1])
    count = tally(vote(rule="borda", min_yes=3), ranked, 3, eligible=3)
    assert count.scores == (1 + 1 + 1, 2 + 0 + 2, 0 + 2)
    assert (count.decision, count.winners) == ("pass", (1,))  # 2 is ranked by all three
    assert tally(vote(rule="borda", min_yes=4), ranked, 3, eligible=3).decision == "fail"


def test_a_candidate_nobody_names_is_never_elected() -> None:
    abstaining = vote(abstain=True, tie_breaker="pass")
    count = tally(abstaining, ballots("abstain", "abstain"), 2, eligible=2)
    assert count.decision == "fail"
    # choosing two of a slate where only one is named: the other cannot make up the number
    assert tally(vote(choose=2, tie_breaker="pass"), ballots([1], [1]), 2, 2).decision == "fail"


@pytest.mark.parametrize(("breaker", "decision", "winners"), [("pass", "pass", (0, 1)),
                                                               ("fail", "fail", ())])  # fmt: skip
def test_a_tie_at_the_cut_goes_to_the_tie_breaker(
    breaker: str, decision: str, winners: tuple
) -> None:
    # scores 2, 1, 1: who takes the second seat is a tie between candidates 2 and 3
    count = tally(vote(choose=2, tie_breaker=breaker), ballots([1], [1], [2], [3]), 3, 4)
    assert (count.decision, count.winners) == (decision, winners)
    # a tie above the cut decides nobody's place: scores 1, 1, 0 elect both
    clear = tally(vote(choose=2, tie_breaker="fail"), ballots([2], [1]), 3, 2)
    assert (clear.decision, clear.winners) == ("pass", (0, 1))


def test_quorum_counts_abstentions_against_every_seat() -> None:
    allowing = vote(quorum="3/5", abstain=True)
    assert tally(allowing, ballots([2], ABSTAIN, ABSTAIN, None, None), 2, 5).winners == (1,)
    assert tally(allowing, ballots([2], ABSTAIN, None, None, None), 2, 5).decision == "no_quorum"
    # where abstaining is not allowed, an abstention is an invalid ballot
    strict = vote(quorum="3/5")
    assert tally(strict, ballots([2], ABSTAIN, ABSTAIN, None, None), 2, 5).decision == "no_quorum"
    assert tally(strict, ballots(None, ABSTAIN), 2, 2).decision == "unparsable"


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(RULES),
    st.integers(1, 6),
    st.integers(1, 3),
    st.sampled_from(["pass", "fail"]),
    st.none() | st.integers(1, 6),
    st.data(),
)
def test_the_count_keeps_its_promises(
    rule: str, size: int, choose: int, breaker: str, min_yes: int | None, data: st.DataObject
) -> None:
    choose = min(choose, size)
    stage = vote(rule=rule, choose=choose, tie_breaker=breaker, min_yes=min_yes)
    cast = data.draw(st.lists(st.permutations(range(1, size + 1)), min_size=1, max_size=8))
    marks = [list(p[:1]) if rule == "plurality" else list(p[: data.draw(st.integers(1, size))])
             for p in cast]  # fmt: skip
    count = tally(stage, ballots(*marks), size, eligible=len(marks))
    per_ballot = [sum(size - r for r in range(1, len(m) + 1)) if rule == "borda" else len(m)
                  for m in marks]  # fmt: skip
    assert sum(count.scores) == sum(per_ballot)
    support = named_by(ballots(*marks), size)
    if count.decision == "pass":
        assert len(count.winners) == choose
        eligible = {i for i in range(size) if support[i] >= (min_yes or 1)}
        assert set(count.winners) <= eligible
        losers = eligible - set(count.winners)
        assert all(count.scores[w] >= count.scores[o] for w in count.winners for o in losers)
        assert [count.scores[w] for w in count.winners] == sorted(
            (count.scores[w] for w in count.winners), reverse=True
        )
    else:
        assert count.decision == "fail" and not count.winners


# -- the simulated elector -----------------------------------------------------------------

SURE = SimParams(skill=0.999999, review_recall=0.5, false_reject=0.1, relay_corruption=0.1,
                 difficulty_spread=0.0)  # fmt: skip


def elector(rule: str, gold: str, slate: tuple[str, ...]) -> str | None:
    oracle = Oracle("item", gold, "elect", "elect", "elder#1", 1, inputs=slate, rule=rule)
    return simulate(oracle, SURE, random.Random(0)).decision


@pytest.mark.parametrize(
    ("rule", "gold", "ballot"),
    [
        ("plurality", "9", "4"),  # its own answer
        ("plurality", "4", "2"),  # not on the slate: the most common answer
        ("approval", "7", "2, 3"),
        ("approval", "4", "2, 3"),
        ("borda", "9", "4 > 2 > 3 > 1"),  # its own, then by how common, then slate order
        ("borda", "4", "2 > 3 > 1 > 4"),
        ("borda", "5.0", "1 > 2 > 3 > 4"),  # answers compare as numbers
    ],
)
def test_a_simulated_elector_backs_its_own_answer(rule: str, gold: str, ballot: str) -> None:
    assert elector(rule, gold, ("5", "7", "7", "9")) == ballot


def test_a_simulated_ballot_on_a_tie_goes_to_the_first_common_answer() -> None:
    assert elector("plurality", "4", ("5", "9", "9", "5")) == "1"
    assert elector("approval", "4", ("5", "9", "9", "5")) == "1, 4"


# -- an institution that nominates, elects and seats its winners ------------------------------

SENATE = """\
id: senate
name: A senate that elects among its scholars' answers
era: test
pattern: consensus
history: Scholars put forward their answers; the elders elect two, who confirm the choice.
roles:
  - {id: scholar, title: Scholar, instructions: Solve the problem on your own., seats: 4}
  - {id: elder, title: Elder, instructions: Choose the best answer., seats: 3}
entry: nominate
stages:
  - id: nominate
    kind: nominate
    nominees: [scholar]
    purpose: Put forward your own answer.
    next: {done: elect, unparsable: failed}
  - id: elect
    kind: vote
    voters: [elder]
    rule: plurality
    slate: nominate
    choose: 2
    tie_breaker: pass
    purpose: Choose the answer you think right.
    next: {pass: confirm, fail: failed, unparsable: failed}
  - id: confirm
    kind: cluster
    members: {chosen_by: elect}
    purpose: Check the elected answer and state the final one.
    next: {done: enacted, unparsable: failed}
  - {id: enacted, kind: terminal}
  - {id: failed, kind: terminal, outcome: rejected}
"""


def senate(tmp_path: Path) -> Institution:
    path = tmp_path / "senate.yaml"
    path.write_text(SENATE)
    return checked_institution(load_checked(path))


class Electorate(ScriptedClient):
    """The scripted client, with an entry per agent where a stage's entry is a mapping: a
    nominee's answer (``"!"``: none), or what an elector writes after ``VOTE:``."""

    async def complete(self, request: ModelRequest) -> ModelResponse:
        oracle = request.oracle
        entry = self._entry(oracle.stage, oracle.visit, None)
        if not isinstance(entry, dict):
            return await super().complete(request)
        self.requests.append(request)
        said = entry.get(oracle.agent, entry.get("*"))
        if oracle.act == "elect":
            text = f"I compared them.\nVOTE: {said}"
        else:
            text = "No final line." if said == "!" else f"Worked it out.\n#### {said}"
        return sim_response(request, text, time.perf_counter())


NOMINEES = {"scholar#1": "7", "scholar#2": "!", "scholar#3": "9", "scholar#4": "7"}


def test_nominees_stand_and_the_winners_take_their_seats(tmp_path: Path) -> None:
    client = Electorate({
        "nominate": [NOMINEES],
        "elect": [{"elder#1": "2", "elder#2": "2", "elder#3": "3"}],
        "confirm": [{"*": "9"}],
    })  # fmt: skip
    state = run_item(senate(tmp_path), client)
    assert state["path"] == ["nominate", "elect", "confirm", "enacted"]
    assert state["outcome"] == "completed"
    # the slate: the nominees who answered, in seat order; scholar#3 (candidate 2) won
    assert state["chosen"]["nominate"] == ["scholar#1", "scholar#3", "scholar#4"]
    assert state["chosen"]["elect"] == ["scholar#3", "scholar#4"]
    assert state["candidate"]["answer"] == "9"
    elected = [t for t in state["turns"] if t["stage"] == "elect"]
    assert sorted((t["seat"], t["ballot"], t["act"]) for t in elected) == [
        ("elder#1", [2], "elect"), ("elder#2", [2], "elect"), ("elder#3", [3], "elect"),
    ]  # fmt: skip
    # the winners, and only they, confirm
    assert sorted(t["agent"] for t in state["turns"] if t["stage"] == "confirm") == [
        "scholar#3",
        "scholar#4",
    ]
    prompts = {r.oracle.stage: r.messages[-1]["content"] for r in client.requests}
    assert "### Candidate 2: scholar#3, answer 9" in prompts["elect"]
    assert "`VOTE: <number>`" in prompts["elect"]
    assert "Candidate" not in prompts["nominate"]  # nominees answer alone
    assert "Candidate answer (from elect, by scholar#3)" in prompts["confirm"]
    oracle = next(r.oracle for r in client.requests if r.oracle.act == "elect")
    assert (oracle.inputs, oracle.rule) == (("7", "9", "7"), "plurality")


def test_an_election_without_a_valid_ballot_chooses_nobody(tmp_path: Path) -> None:
    client = Electorate({"nominate": [NOMINEES], "elect": [{"*": "4"}]})  # off the slate
    state = run_item(senate(tmp_path), client)
    assert state["path"] == ["nominate", "elect", "failed"]
    assert state["decision"] == "unparsable" and state["chosen"]["elect"] == []
    assert state["candidate"] is None
    assert "1. scholar#1 (answer 7): 0" in state["feedback"]
    assert "0 abstained, 3 invalid" in state["feedback"]


def test_a_nomination_nobody_answers_puts_up_no_slate(tmp_path: Path) -> None:
    state = run_item(senate(tmp_path), Electorate({"nominate": [{"*": "!"}]}))
    assert state["path"] == ["nominate", "failed"]
    assert state["decision"] == "unparsable" and state["chosen"]["nominate"] == []


def test_the_simulated_senate_elects_the_plurality_answer(tmp_path: Path) -> None:
    institution = senate(tmp_path)
    for gold in ("7", "12", "30", "45", "128"):
        state = run_item(institution, SimClient(PRESETS["medium"]), gold=gold)
        assert state["outcome"] == "completed", state["path"]
        assert state["path"][:3] == ["nominate", "elect", "confirm"]
        slate = state["chosen"]["nominate"]
        named = Counter(b["ballot"][0] for b in state["ballots"] if isinstance(b["ballot"], list))
        top = min(named, key=lambda n: (-named[n], n))  # most ballots, then slate order
        assert state["chosen"]["elect"][0] == slate[top - 1]
        elected = next(t for t in state["turns"] if t["stage"] == "elect")
        assert elected["ballot"] is not None
