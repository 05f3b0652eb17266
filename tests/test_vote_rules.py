"""The vote rules, quorum and tie detection, as pure functions."""

from __future__ import annotations

import pytest

from govern.engine.stages.vote import TIE, tally
from govern.spec.models import VoteStage


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
