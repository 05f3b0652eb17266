"""The vote rules, quorum, abstention, veto and tie detection, as pure functions, and the
reading of a ballot."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govern.engine.formats import parse_ballot
from govern.engine.stages.vote import TIE, tally
from govern.spec.models import VETOED, VoteStage


def stage(**fields) -> VoteStage:
    base = {"id": "v", "kind": "vote", "voters": ["a", "b"], "purpose": "p"}
    return VoteStage.model_validate({**base, **fields})


def ballots(*marks: str | None, role: str = "a") -> list[dict]:
    return [{"seat": f"{role}#{i}", "ballot": m} for i, m in enumerate(marks, start=1)]


@pytest.mark.parametrize(
    ("marks", "expected"),
    [
        (("yes", "yes", "no"), "pass"),
        (("yes", "no", "no"), "fail"),
        (("yes", "no"), TIE),
        (("yes", "no", None), TIE),
        ((None, None), "unparsable"),
    ],
)
def test_majority(marks: tuple, expected: str) -> None:
    assert tally(stage(), ballots(*marks), eligible=len(marks)) == expected


def test_supermajority_needs_the_threshold() -> None:
    rule = stage(rule="supermajority", threshold=0.667)
    assert tally(rule, ballots("yes", "yes", "no"), 3) == "fail"  # 0.6667 < 0.667
    assert tally(rule, ballots("yes", "yes", "yes", "no"), 4) == "pass"


def test_unanimity_fails_on_one_no_and_ignores_invalid_ballots() -> None:
    rule = stage(rule="unanimity")
    assert tally(rule, ballots("yes", "yes", None), 3) == "pass"
    assert tally(rule, ballots("yes", "yes", "no"), 3) == "fail"


def test_weighted_votes_count_by_role() -> None:
    rule = stage(rule="weighted", weights={"a": 3.0})
    mixed = ballots("yes") + ballots("no", "no", role="b")
    assert tally(rule, mixed, 3) == "pass"  # 3 against 2
    assert tally(stage(rule="weighted", weights={"a": 2.0}), mixed, 3) == TIE


def test_quorum_counts_valid_ballots_against_all_seats() -> None:
    rule = stage(quorum=0.6)
    assert tally(rule, ballots("yes", "yes", None, None, None), 5) == "no_quorum"
    assert tally(rule, ballots("yes", "yes", "no", None, None), 5) == "pass"


# -- exact shares, min_yes, abstention, veto ------------------------------------------------


def seats(role: str, *marks: str | None, agent: str | None = None) -> list[dict]:
    """Ballots of the seats of ``role``, each cast by its own seat (or by ``agent``)."""
    return [
        {"seat": f"{role}#{i}", "agent": agent or f"{role}#{i}", "ballot": m}
        for i, m in enumerate(marks, start=1)
    ]


def counted(yes: int, no: int, abstain: int = 0, invalid: int = 0) -> list[dict]:
    marks = ["yes"] * yes + ["no"] * no + ["abstain"] * abstain + [None] * invalid
    return seats("a", *marks)


@pytest.mark.parametrize(("yes", "expected"), [(25, "pass"), (24, "fail")])
def test_threshold_25_of_41_is_exact(yes: int, expected: str) -> None:
    rule = stage(rule="supermajority", threshold="25/41")
    assert tally(rule, counted(yes, 41 - yes), 41) == expected


@pytest.mark.parametrize(("yes", "expected"), [(25, "pass"), (24, "fail")])
def test_min_yes_25_of_41_on_a_majority(yes: int, expected: str) -> None:
    assert tally(stage(min_yes=25), counted(yes, 41 - yes), 41) == expected


def test_min_yes_counts_ballots_not_weight() -> None:
    heavy = seats("a", "yes") + seats("b", "no", "no")  # 10 against 2 by weight
    assert tally(stage(rule="weighted", weights={"a": 10.0}), heavy, 3) == "pass"
    assert tally(stage(rule="weighted", weights={"a": 10.0}, min_yes=2), heavy, 3) == "fail"


def test_weights_add_up_exactly() -> None:
    """0.1 + 0.7 against 0.8 is a tie, though in floating point the share is 0.49999999999999994."""
    weights = {"a": 0.1, "b": 0.7, "c": 0.8}
    rule = stage(voters=["a", "b", "c"], rule="weighted", weights=weights)
    assert tally(rule, seats("a", "yes") + seats("b", "yes") + seats("c", "no"), 3) == TIE


def test_abstentions_count_toward_the_quorum_only() -> None:
    marks = ("yes", "yes", "abstain", None, None)
    assert tally(stage(quorum="3/5", abstain=True), seats("a", *marks), 5) == "pass"
    # where abstaining is not allowed an abstain ballot is invalid: 2 of 5 is below 3/5
    assert tally(stage(quorum="3/5"), seats("a", *marks), 5) == "no_quorum"
    # abstentions are neither yes nor no: 1 yes against 1 no is a tie, not a defeat
    assert tally(stage(abstain=True), counted(1, 1, abstain=3), 5) == TIE


def test_when_everyone_abstains_the_motion_fails_unless_the_quorum_is_missed_first() -> None:
    assert tally(stage(abstain=True), counted(0, 0, abstain=3), 3) == "fail"
    assert tally(stage(abstain=True, rule="unanimity"), counted(0, 0, abstain=3), 3) == "fail"
    assert tally(stage(abstain=True, quorum=0.6), counted(0, 0, abstain=2), 5) == "no_quorum"
    assert tally(stage(abstain=True), counted(0, 0, abstain=0, invalid=3), 3) == "unparsable"


def test_unanimity_ignores_abstentions() -> None:
    assert tally(stage(abstain=True, rule="unanimity"), counted(1, 0, abstain=2), 3) == "pass"


def test_a_veto_comes_before_quorum_and_rule() -> None:
    rule = stage(veto_by=["b"], quorum=0.9)
    # eight yes and one tribune's no, with the quorum missed: still vetoed
    assert tally(rule, counted(8, 0) + seats("b", "no"), 20) == VETOED
    assert tally(rule, counted(8, 0) + seats("b", "no"), 9) == VETOED
    # a no from a role that may not veto is an ordinary no
    assert tally(stage(veto_by=["b"]), counted(2, 1), 3) == "pass"
    # an unparsable ballot of a vetoing seat is invalid, not a veto
    assert tally(stage(veto_by=["b"]), counted(2, 0) + seats("b", None), 3) == "pass"
    # a stand-in casting the vetoing seat's ballot vetoes for that seat
    assert tally(stage(veto_by=["b"]), counted(2, 0) + seats("b", "no", agent="a#9"), 3) == VETOED
    # and a vetoing role's stand-in in another role's seat does not
    assert tally(stage(veto_by=["b"]), counted(2, 0) + seats("a", "no", agent="b#1"), 3) == "pass"


def test_a_veto_needs_no_quorum_of_valid_ballots() -> None:
    ballots = seats("a", None, None, None) + seats("b", "no")
    assert tally(stage(veto_by=["b"], quorum=0.5), ballots, 4) == VETOED


# -- tally against a reference count, on random votes ---------------------------------------

ROLES = ("a", "b", "c")
MARKS = ("yes", "no", "abstain", None)


def reference(
    rule: str,
    marks: list[tuple[str, str | None]],
    eligible: int,
    threshold: Fraction | None,
    quorum: Fraction | None,
    min_yes: int | None,
    abstain: bool,
    veto_by: list[str],
    weights: dict[str, Fraction],
) -> str:
    """The count as the docstring states it, over (role, mark) pairs."""
    if any(role in veto_by and mark == "no" for role, mark in marks):
        return VETOED
    yes = [role for role, mark in marks if mark == "yes"]
    no = [role for role, mark in marks if mark == "no"]
    abstaining = [role for role, mark in marks if mark == "abstain"] if abstain else []
    valid = len(yes) + len(no) + len(abstaining)
    if valid == 0:
        return "unparsable"
    if quorum is not None and valid * quorum.denominator < quorum.numerator * eligible:
        return "no_quorum"
    if not yes and not no:
        return "fail"
    if min_yes is not None and len(yes) < min_yes:
        return "fail"
    if rule == "unanimity":
        return "fail" if no else "pass"
    weight = {r: weights.get(r, Fraction(1)) if rule == "weighted" else Fraction(1) for r in ROLES}
    for_, against = sum(weight[r] for r in yes), sum(weight[r] for r in no)
    if rule == "supermajority":
        assert threshold is not None
        return (
            "pass"
            if for_ * threshold.denominator >= threshold.numerator * (for_ + against)
            else "fail"
        )
    bar = threshold if threshold is not None else Fraction(1, 2)
    if for_ + against == 0:
        return "fail"
    lhs, rhs = for_ * bar.denominator, bar.numerator * (for_ + against)
    return TIE if lhs == rhs else ("pass" if lhs > rhs else "fail")


def fraction_text(q: int) -> st.SearchStrategy[tuple[Fraction, str]]:
    """A share above one half written p/q, as given (not reduced): 50/100 too."""
    return st.integers(q // 2 + 1, q).map(lambda p: (Fraction(p, q), f"{p}/{q}"))


# (the exact share, how the spec gives it): a fraction as text, or a decimal number
thresholds = st.one_of(
    st.integers(1, 60).flatmap(fraction_text),
    st.integers(501, 1000).map(lambda k: (Fraction(k, 1000), k / 1000)),
)
quorums = st.one_of(
    st.none(),
    st.integers(1, 20).flatmap(
        lambda q: st.integers(1, q).map(lambda p: (Fraction(p, q), f"{p}/{q}"))
    ),
    st.integers(1, 100).map(lambda k: (Fraction(k, 100), k / 100)),
)


@given(
    rule=st.sampled_from(["majority", "supermajority", "unanimity", "weighted"]),
    marks=st.lists(st.tuples(st.sampled_from(ROLES), st.sampled_from(MARKS)), max_size=12),
    vacant=st.integers(0, 4),
    threshold=thresholds,
    use_threshold=st.booleans(),
    quorum=quorums,
    min_yes=st.one_of(st.none(), st.integers(1, 8)),
    abstain=st.booleans(),
    veto_by=st.lists(st.sampled_from(ROLES), max_size=2, unique=True),
    weights=st.dictionaries(
        st.sampled_from(ROLES), st.sampled_from([0.1, 0.2, 0.3, 0.5, 1.0, 1.5, 2.0, 3.0])
    ),
)
@settings(max_examples=400, deadline=None)
def test_tally_agrees_with_a_reference_count(
    rule: str,
    marks: list[tuple[str, str | None]],
    vacant: int,
    threshold: tuple[Fraction, float | str],
    use_threshold: bool,
    quorum: tuple[Fraction, float | str] | None,
    min_yes: int | None,
    abstain: bool,
    veto_by: list[str],
    weights: dict[str, float],
) -> None:
    has_threshold = rule == "supermajority" or (rule == "weighted" and use_threshold)
    fields = {
        "voters": list(ROLES),
        "rule": rule,
        "abstain": abstain,
        **({"threshold": threshold[1]} if has_threshold else {}),
        **({"quorum": quorum[1]} if quorum else {}),
        **({"min_yes": min_yes} if min_yes else {}),
        **({"veto_by": veto_by} if veto_by else {}),
        **({"weights": weights} if rule == "weighted" else {}),
    }
    vote = stage(**fields)
    ballots = [
        {"seat": f"{role}#{i}", "agent": f"{role}#{i}", "ballot": mark}
        for i, (role, mark) in enumerate(marks, start=1)
    ]
    eligible = len(marks) + vacant
    if eligible == 0:
        return
    expected = reference(
        rule,
        marks,
        eligible,
        threshold[0] if has_threshold else None,
        quorum[0] if quorum else None,
        min_yes,
        abstain,
        veto_by,
        {r: Fraction(str(w)) for r, w in weights.items()},
    )
    assert tally(vote, ballots, eligible) == expected


# -- reading a ballot -----------------------------------------------------------------------

MODES = ("strict", "tolerant", "flexible")


@pytest.mark.parametrize("mode", MODES)
def test_abstain_is_a_ballot_only_where_allowed(mode: str) -> None:
    text = (
        "I cannot decide on this one.\n**VOTE: Abstain**" if mode != "strict" else "VOTE: abstain"
    )
    assert parse_ballot(text, mode, abstain=True) == "abstain"
    assert parse_ballot(text, mode) is None
    assert parse_ballot("Reasons.\nVOTE: no", mode, abstain=True) == "no"
    assert parse_ballot("VOTE: undecided", mode, abstain=True) is None


lines = st.lists(
    st.one_of(
        st.sampled_from(
            ["VOTE: yes", "VOTE: no", "VOTE: abstain", "**vote: ABSTAIN**", "> VOTE: no", ""]
        ),
        st.text(st.characters(codec="ascii"), max_size=30),
    ),
    max_size=6,
)


@given(lines=lines, mode=st.sampled_from(MODES))
@settings(max_examples=300, deadline=None)
def test_allowing_abstention_changes_nothing_but_abstentions(lines: list[str], mode: str) -> None:
    """Where the reading with abstention allowed is yes or no, or the text never says
    abstain, the two readings agree; allowed, abstain is the only new value."""
    text = "\n".join(lines)
    allowed, plain = parse_ballot(text, mode, abstain=True), parse_ballot(text, mode)
    assert allowed in ("yes", "no", "abstain", None)
    assert plain in ("yes", "no", None)
    if allowed in ("yes", "no") or "abstain" not in text.lower():
        assert allowed == plain
