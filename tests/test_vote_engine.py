"""Motion votes run end to end: vetoes and defeats routed apart, abstentions read and
counted, simulated voters abstaining, and the spec's exact thresholds and counts."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from govern.engine.formats import VOTE_ABSTAIN_FORMAT, VOTE_FORMAT
from govern.models.sim.client import SimClient
from govern.models.sim.params import PRESETS, resolve_sim_params
from govern.models.sim.scripted import ScriptedClient
from govern.spec.checks import checked_institution, load_checked
from govern.spec.models import Institution, SimOverride
from tests.conftest import spec_errors, write
from tests.engine_harness import run_item

FORUM = textwrap.dedent("""\
    id: forum
    name: Forum
    era: test
    pattern: consensus
    history: A small republic whose tribune may veto the senate's motions.
    roles:
      - id: consul
        title: Consul
        instructions: Propose.
      - id: senator
        title: Senator
        seats: {senators}
        instructions: Vote.
      - id: tribune
        title: Tribune of the plebs
        instructions: Vote; your no is a veto.
    entry: propose
    stages:
      - id: propose
        kind: propose
        role: consul
        purpose: Propose.
        next: {{done: senate, unparsable: rejected}}
      - id: senate
        kind: vote
        voters: [senator, tribune]
        veto_by: [tribune]
    {extra}    purpose: Vote on the proposal.
        next:
          pass: adopted
          fail: rejected
          vetoed: vetoed
          unparsable: rejected
    {routes}  - id: adopted
        kind: terminal
        outcome: completed
      - id: rejected
        kind: terminal
        outcome: rejected
      - id: vetoed
        kind: terminal
        outcome: rejected
    """)


def forum(tmp_path: Path, extra: str = "", senators: int = 3) -> Institution:
    """The forum, its senate vote given ``extra`` keys (a quorum routes no_quorum too)."""
    keys = "".join(f"    {line}\n" for line in extra.splitlines())
    routes = "      no_quorum: rejected\n" if "quorum" in extra else ""
    text = FORUM.format(senators=senators, extra=keys, routes=routes)
    return checked_institution(load_checked(write(tmp_path, "forum.yaml", text)))


def voted(state: dict[str, Any]) -> dict[str, str | None]:
    return {b["seat"]: b["ballot"] for b in state["ballots"]}


def test_the_tribunes_no_vetoes_and_is_routed_apart(tmp_path: Path) -> None:
    script = {"senate": [{"tribune#1": "no", "*": "yes"}]}
    state = run_item(forum(tmp_path), ScriptedClient(script))
    assert state["path"] == ["propose", "senate", "vetoed"]
    assert state["feedback"].startswith(
        "The vote went against the candidate (vetoed by tribune#1): 3 yes, 1 no, 0 invalid."
    )


def test_an_ordinary_defeat_takes_the_fail_route(tmp_path: Path) -> None:
    script = {"senate": [{"tribune#1": "yes", "*": "no"}]}
    state = run_item(forum(tmp_path), ScriptedClient(script))
    assert state["path"] == ["propose", "senate", "rejected"]
    assert "(fail): 1 yes, 3 no, 0 invalid." in state["feedback"]


def test_an_unparsable_tribune_ballot_is_no_veto(tmp_path: Path) -> None:
    script = {"senate": [{"tribune#1": "?", "*": "yes"}]}
    state = run_item(forum(tmp_path), ScriptedClient(script))
    assert state["path"] == ["propose", "senate", "adopted"]


@pytest.mark.parametrize(
    ("abstain", "path_end", "ballot"),
    [("true", "adopted", "abstain"), ("false", "rejected", None)],
)
def test_an_abstention_makes_the_quorum_only_where_allowed(
    tmp_path: Path, abstain: str, path_end: str, ballot: str | None
) -> None:
    """Four seats, quorum 3/4: two yes, one abstention and one unparsable ballot."""
    script = {"senate": [{"senator#1": "abstain", "senator#2": "?", "*": "yes"}]}
    client = ScriptedClient(script)
    state = run_item(forum(tmp_path, f"quorum: 3/4\nabstain: {abstain}"), client)
    assert state["path"] == ["propose", "senate", path_end]
    assert voted(state) == {
        "senator#1": ballot,
        "senator#2": None,
        "senator#3": "yes",
        "tribune#1": "yes",
    }
    ballot_format = VOTE_ABSTAIN_FORMAT if abstain == "true" else VOTE_FORMAT
    prompts = [r.messages[-1]["content"] for r in client.requests if r.oracle.act == "vote"]
    assert len(prompts) == 4
    assert all(p.endswith(ballot_format.prompt()) for p in prompts)
    assert all(r.oracle.abstain == (abstain == "true") for r in client.requests[1:])


def test_the_feedback_counts_abstentions(tmp_path: Path) -> None:
    script = {"senate": [{"senator#1": "abstain", "senator#2": "?", "tribune#1": "yes", "*": "no"}]}
    state = run_item(forum(tmp_path, "abstain: true"), ScriptedClient(script))
    assert state["path"] == ["propose", "senate", "rejected"]
    assert "(fail): 1 yes, 1 no, 1 abstained, 1 invalid." in state["feedback"]


def test_when_every_valid_ballot_abstains_the_motion_fails(tmp_path: Path) -> None:
    script = {"senate": [{"tribune#1": "?", "*": "abstain"}]}
    state = run_item(forum(tmp_path, "abstain: true"), ScriptedClient(script))
    assert state["path"] == ["propose", "senate", "rejected"]


@pytest.mark.parametrize(("yes", "end"), [(25, "adopted"), (24, "rejected")])
@pytest.mark.parametrize("rule", ["rule: supermajority\nthreshold: 25/41", "min_yes: 25"])
def test_25_of_41_end_to_end(tmp_path: Path, rule: str, yes: int, end: str) -> None:
    """40 senators and the tribune: the tribune and ``yes - 1`` senators for the motion."""
    ballots = {f"senator#{n}": "yes" for n in range(1, yes)}
    no = {f"senator#{n}": "no" for n in range(yes, 41)}
    script = {"senate": [{**ballots, **no, "tribune#1": "yes"}]}
    state = run_item(forum(tmp_path, rule, senators=40), ScriptedClient(script))
    assert list(voted(state).values()).count("yes") == yes
    assert state["path"] == ["propose", "senate", end]


# -- the simulator ---------------------------------------------------------------------------


def simulated_ballots(institution: Institution, rate: float) -> list[tuple[str, str | None, str]]:
    params = PRESETS["medium"].model_copy(update={"abstain_rate": rate})
    state = run_item(institution, SimClient(params), gold="1")
    return [(t["seat"], t["ballot"], t["text"]) for t in state["turns"] if t["act"] == "vote"]


def test_simulated_voters_abstain_at_the_rate(tmp_path: Path) -> None:
    allowed = forum(tmp_path, "abstain: true", senators=30)
    ballots = simulated_ballots(allowed, 0.5)
    abstaining = [seat for seat, ballot, _ in ballots if ballot == "abstain"]
    assert 5 <= len(abstaining) <= 26
    assert all(text.endswith("VOTE: abstain") for _, ballot, text in ballots if ballot == "abstain")
    # never where abstaining is not allowed, nor at rate 0
    assert "abstain" not in {b for _, b, _ in simulated_ballots(forum(tmp_path), 0.5)}
    assert "abstain" not in {b for _, b, _ in simulated_ballots(allowed, 0.0)}


def test_allowing_abstention_shifts_no_other_draw(tmp_path: Path) -> None:
    """The abstain coin is a stream of its own: every seat that does not abstain casts the
    ballot it casts where abstaining is not allowed."""
    plain = {seat: b for seat, b, _ in simulated_ballots(forum(tmp_path, senators=30), 0.5)}
    allowed = forum(tmp_path / "allowed", "abstain: true", senators=30)
    for rate in (0.0, 0.5):
        for seat, ballot, _ in simulated_ballots(allowed, rate):
            assert ballot == "abstain" or ballot == plain[seat], seat


def test_a_manifest_sets_the_abstain_rate() -> None:
    overrides = {"sim/medium": SimOverride(abstain_rate=0.25)}
    assert resolve_sim_params("sim/medium", overrides).abstain_rate == 0.25
    assert PRESETS["medium"].abstain_rate == 0.0


# -- the spec --------------------------------------------------------------------------------


def vote_spec(tmp_path: Path, extra: str) -> tuple[str, list[Any]]:
    """The forum's text with ``extra`` keys on its senate vote, and the errors it gives."""
    keys = "".join(f"    {line}\n" for line in extra.splitlines())
    text = FORUM.format(senators=40, extra=keys, routes="")
    return text, spec_errors(write(tmp_path, "forum.yaml", text))


def line_of(text: str, start: str) -> int:
    (number,) = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith(start)]
    return number


@pytest.mark.parametrize(
    "extra", ["rule: supermajority\nthreshold: 25/41", "rule: supermajority\nthreshold: 0.6"]
)
def test_exact_and_decimal_thresholds_load(tmp_path: Path, extra: str) -> None:
    assert vote_spec(tmp_path, extra)[1] == []


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        (
            "rule: supermajority\nthreshold: 1/3",
            "threshold",
            "a threshold is a share above one half",
        ),
        ('rule: supermajority\nthreshold: "a/b"', "threshold", "'a/b' is not a share"),
        ("min_yes: 50", "min_yes", "min_yes 50 can never be reached by 41 voters"),
    ],
)
def test_bad_counts_are_errors_at_their_line(
    tmp_path: Path, extra: str, key: str, message: str
) -> None:
    """At the key's line, or for a check across the vote's keys at the stage's."""
    text, errors = vote_spec(tmp_path, extra)
    (error,) = errors
    assert message in error.message, str(error)
    assert error.line in (line_of(text, f"    {key}:"), line_of(text, "  - id: senate")), str(error)
    assert str(error).startswith(f"{error.file}:{error.line}:{error.column}: error: ")
